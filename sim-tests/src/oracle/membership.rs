//! Who is where: each room's membership from its log, every nickname on
//! the server from the console, renames, and the order of each sender's
//! messages.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_core::protocol::Seq;
use chat_core::room::Notice;

use super::model::Event;
use super::{About, Checker, Property, sender_of};

/// The key under which the sim's nicknames are unique (they are ASCII).
fn key(nick: &str) -> String {
    nick.to_ascii_lowercase()
}

impl Checker<'_> {
    /// In every stream, each sender's messages come in the order sent, and
    /// no message is logged twice.
    pub fn per_sender_fifo(&mut self) {
        let model = std::mem::take(&mut self.model);
        for log in model.rooms.values() {
            let texts = log
                .events
                .iter()
                .filter_map(|(seq, logged)| match &logged.event {
                    Event::Message { text, .. } => Some((*seq, logged.at, text.as_str())),
                    _ => None,
                });
            self.stream_order(&log.name, texts);
        }
        for (owner, stream) in &model.privates {
            let texts = stream
                .iter()
                .map(|(seq, event)| (*seq, event.at, event.text.as_str()));
            self.stream_order(&format!("the private stream of member {}", owner.0), texts);
        }
        self.model = model;
    }

    fn stream_order<'t>(
        &mut self,
        stream: &str,
        texts: impl Iterator<Item = (Seq, Duration, &'t str)>,
    ) {
        let mut last_number: BTreeMap<&str, u64> = BTreeMap::new();
        let mut logged = BTreeSet::new();
        for (seq, at, text) in texts {
            let fresh = logged.insert(text);
            self.expect(
                Property::NoDuplicate,
                fresh,
                About::default().seqs(vec![seq]).at(at),
                || format!("{stream} holds the message {text:?} twice"),
            );
            let Some((host, number)) = sender_of(text) else {
                continue;
            };
            let previous = last_number.insert(host, number);
            let in_order = previous.is_none_or(|previous| number > previous);
            self.expect(
                Property::PerSenderFifo,
                in_order,
                About::client(host).seqs(vec![seq]).at(at),
                || {
                    format!(
                        "in {stream}, message m{number} came after m{}",
                        previous.unwrap_or(0)
                    )
                },
            );
        }
    }

    /// Each member joins, then leaves, once per session; nobody speaks
    /// outside their membership; nicknames are unique in every room and on
    /// the server; a rename is announced once in each of the member's rooms.
    pub fn membership(&mut self) {
        let model = std::mem::take(&mut self.model);
        for log in model.rooms.values() {
            let mut members: BTreeSet<String> = BTreeSet::new();
            let mut previous: Option<Seq> = None;
            for (seq, logged) in &log.events {
                if previous.is_some_and(|previous| *seq != previous + 1) {
                    // Events never released and no longer kept: the
                    // membership between is unknown, so start over.
                    members.clear();
                }
                previous = Some(*seq);
                self.member_event(&log.name, &mut members, *seq, logged.at, &logged.event);
            }
        }
        self.model = model;
        self.server_nicknames();
        self.renames_announced();
    }

    fn member_event(
        &mut self,
        room: &str,
        members: &mut BTreeSet<String>,
        seq: Seq,
        at: Duration,
        event: &Event,
    ) {
        let nick = key(event.nick());
        let member = members.contains(&nick);
        let about = || About::client(event.nick()).seqs(vec![seq]).at(at);
        match event {
            Event::Joined(_) => {
                self.expect(Property::UniqueNicknames, !member, about(), || {
                    format!(
                        "{} joined {room} while a member of that name was in it",
                        event.nick()
                    )
                });
                members.insert(nick);
            }
            Event::Left(_) => {
                self.expect(Property::JoinLeaveOnce, member, about(), || {
                    format!(
                        "{} left {room} without being in it (a second departure?)",
                        event.nick()
                    )
                });
                members.remove(&nick);
            }
            Event::Message { .. } => {
                self.expect(Property::JoinLeaveOnce, member, about(), || {
                    format!("{} spoke in {room} while not in it", event.nick())
                });
            }
            Event::Renamed { to, .. } => {
                self.expect(Property::JoinLeaveOnce, member, about(), || {
                    format!("{} was renamed in {room} while not in it", event.nick())
                });
                let taken = members.contains(&key(to));
                self.expect(Property::UniqueNicknames, !taken, about(), || {
                    format!(
                        "{} was renamed {to} in {room}, where {to} already was",
                        event.nick()
                    )
                });
                members.remove(&nick);
                members.insert(key(to));
            }
        }
    }

    /// On the whole server, from the console: a session starts with a free
    /// nickname and renames only to a free one.
    fn server_nicknames(&mut self) {
        let notices = &self.observations.server.notices;
        let lifetimes = &self.observations.server.lifetimes;
        let mut live: BTreeSet<String> = BTreeSet::new();
        let mut next_lifetime = 1;
        for (at, notice) in notices {
            // A restart keeps the durable sessions, and only those: a session
            // that ended just before the crash may have been ended on disk
            // without its notice ever being shown.
            while next_lifetime < lifetimes.len() && lifetimes[next_lifetime].started <= *at {
                let lifetime = &lifetimes[next_lifetime];
                if lifetime.up {
                    live = lifetime.members.iter().map(|nick| key(nick)).collect();
                }
                next_lifetime += 1;
            }
            match notice {
                Notice::Nickname { nick, .. } => {
                    let free = live.insert(key(nick));
                    self.expect(
                        Property::UniqueNicknames,
                        free,
                        About::client(nick).at(*at),
                        || format!("a session started as {nick} while another held that nickname"),
                    );
                }
                Notice::Renamed { from, to } => {
                    live.remove(&key(from));
                    let free = live.insert(key(to));
                    self.expect(
                        Property::UniqueNicknames,
                        free,
                        About::client(from).at(*at),
                        || format!("{from} was renamed {to}, which another session held"),
                    );
                }
                Notice::LeftServer(nick) => {
                    live.remove(&key(nick));
                }
                _ => {}
            }
        }
    }

    /// A rename is announced once in every room the member was in, at the
    /// moment of the rename, and nowhere else.
    fn renames_announced(&mut self) {
        let renames: Vec<(Duration, String, String)> = self
            .observations
            .server
            .notices
            .iter()
            .filter_map(|(at, notice)| match notice {
                Notice::Renamed { from, to } => Some((*at, from.clone(), to.clone())),
                _ => None,
            })
            .collect();
        for (at, from, to) in renames {
            let mut results = Vec::new();
            for log in self.model.rooms.values() {
                let member = member_before(log, &from, at);
                let announced = log
                    .events
                    .values()
                    .filter(|logged| {
                        logged.at == at
                            && logged.event
                                == Event::Renamed {
                                    from: from.clone(),
                                    to: to.clone(),
                                }
                    })
                    .count();
                results.push((log.name.clone(), member, announced));
            }
            for (room, member, announced) in results {
                let holds = announced == usize::from(member);
                self.expect(Property::RenameAnnounced, holds, About::client(&from).at(at), || {
                    format!("{from} -> {to} was announced {announced} times in {room}, where {from} was {}a member", if member { "" } else { "not " })
                });
            }
        }
    }
}

/// Whether `nick` was a member of the room when it was renamed at `at`:
/// its events in order up to that moment (those released with the rename,
/// in the same batch, count up to the rename's own event).
pub(super) fn member_before(log: &super::model::RoomLog, nick: &str, at: Duration) -> bool {
    let mut member = false;
    for logged in log.events.values().filter(|logged| logged.at <= at) {
        if logged.at == at && matches!(&logged.event, Event::Renamed { from, .. } if from == nick) {
            break;
        }
        match &logged.event {
            Event::Joined(joined) if joined == nick => member = true,
            Event::Left(left) if left == nick => member = false,
            Event::Renamed { from, .. } if from == nick => member = false,
            Event::Renamed { to, .. } if to == nick => member = true,
            _ => {}
        }
    }
    member
}
