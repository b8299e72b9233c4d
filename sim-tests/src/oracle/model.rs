//! The server's streams as the oracle knows them: every event released, in
//! every lifetime of the server, and every event a recovery rebuilt. Built
//! in time order, it is where durability is judged: a restart must rebuild
//! every room with at least what was released before the crash, and no
//! number may ever name two events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_core::protocol::{Seq, ServerFrame};
use chat_core::room::{MemberId, RoomId};

use super::{About, Property};
use crate::world::{Lifetime, Observations, StreamOf};

/// A room event as the oracle models it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Joined.
    Joined(String),
    /// Left.
    Left(String),
    /// Said something.
    Message {
        /// Who.
        nick: String,
        /// What.
        text: String,
        /// As an action.
        action: bool,
    },
    /// Changed nickname.
    Renamed {
        /// From.
        from: String,
        /// To.
        to: String,
    },
}

impl Event {
    /// The nickname it is about (the old one, for a rename).
    pub fn nick(&self) -> &str {
        match self {
            Event::Joined(nick) | Event::Left(nick) | Event::Message { nick, .. } => nick,
            Event::Renamed { from, .. } => from,
        }
    }
}

/// An event of a room's log.
#[derive(Clone, Debug)]
pub struct Logged {
    /// When it was released (or, if it never was, when a recovery showed it).
    pub at: Duration,
    /// What it was.
    pub event: Event,
}

/// One room's log: one room id, so one life of a room name.
#[derive(Clone, Debug)]
pub struct RoomLog {
    /// The room's name.
    pub name: String,
    /// When its first event was known.
    pub created: Duration,
    /// Its events by number (gaps where events were durable but never
    /// released and are no longer kept).
    pub events: BTreeMap<Seq, Logged>,
}

impl RoomLog {
    /// The highest number known.
    pub fn last_seq(&self) -> Seq {
        self.events.keys().next_back().copied().unwrap_or(0)
    }

    /// The highest number known at `at`.
    pub fn last_seq_by(&self, at: Duration) -> Seq {
        self.events
            .iter()
            .filter(|(_, logged)| logged.at <= at)
            .map(|(seq, _)| *seq)
            .max()
            .unwrap_or(0)
    }

    /// Whether it holds a message.
    pub fn has_messages(&self) -> bool {
        self.events
            .values()
            .any(|logged| matches!(logged.event, Event::Message { .. }))
    }
}

/// A private event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateEvent {
    /// When released.
    pub at: Duration,
    /// Its number in its owner's stream.
    pub seq: Seq,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Text.
    pub text: String,
}

/// A problem found while building the model: property, whether it holds,
/// what it is about, what happened.
pub type Problem = (Property, bool, About, String);

/// The server's side, as a model.
#[derive(Debug, Default)]
pub struct Model {
    /// Room logs by room id.
    pub rooms: BTreeMap<RoomId, RoomLog>,
    /// Private streams by owner.
    pub privates: BTreeMap<MemberId, BTreeMap<Seq, PrivateEvent>>,
    /// When the server (re)started after the first time.
    pub restarts: Vec<Duration>,
}

/// A room event's room, number and event.
pub fn room_event(frame: &ServerFrame) -> Option<(&str, Seq, Event)> {
    match frame {
        ServerFrame::Joined { room, seq, nick } => Some((room, *seq, Event::Joined(nick.clone()))),
        ServerFrame::Left { room, seq, nick } => Some((room, *seq, Event::Left(nick.clone()))),
        ServerFrame::Message {
            room,
            seq,
            nick,
            text,
            action,
        } => Some((
            room,
            *seq,
            Event::Message {
                nick: nick.clone(),
                text: text.clone(),
                action: *action,
            },
        )),
        ServerFrame::Renamed {
            room,
            seq,
            from,
            to,
        } => Some((
            room,
            *seq,
            Event::Renamed {
                from: from.clone(),
                to: to.clone(),
            },
        )),
        _ => None,
    }
}

/// Whether a server start failed only because of a fault the scenario
/// injected into its disk (which a supervisor's restart then gets past).
fn injected(failure: &str) -> bool {
    failure.contains("injected failure") || failure.contains("no space left")
}

impl Model {
    /// Builds the model, in time order, and reports what the building
    /// itself checks: numbering, uniqueness, durability across restarts.
    pub fn build(observations: &Observations) -> (Model, Vec<Problem>) {
        let mut model = Model::default();
        let mut problems = Vec::new();
        let mut builder = Builder {
            restarted: BTreeSet::new(),
            problems: &mut problems,
        };
        let lifetimes = &observations.server.lifetimes;
        let mut next_lifetime = 1;
        for event in &observations.server.events {
            while next_lifetime < lifetimes.len() && lifetimes[next_lifetime].started <= event.at {
                builder.restart(&mut model, &lifetimes[next_lifetime]);
                next_lifetime += 1;
            }
            match event.stream {
                StreamOf::Room(room) => {
                    builder.room_event(&mut model, room, event.at, &event.frame)
                }
                StreamOf::Private(owner) => {
                    builder.private_event(&mut model, owner, event.at, &event.frame)
                }
            }
        }
        for lifetime in &lifetimes[next_lifetime.min(lifetimes.len())..] {
            builder.restart(&mut model, lifetime);
        }
        let up = lifetimes.last().is_some_and(|last| last.up);
        let failure = lifetimes
            .last()
            .and_then(|last| last.failed.clone())
            .unwrap_or_default();
        problems.push((
            Property::AckedDurable,
            up,
            About::default(),
            format!("the server was not running at the end: {failure}"),
        ));
        (model, problems)
    }

    /// The room id that a client's line (room `name`, event `seq` equal to
    /// `event`, shown at `at`) belongs to: of the rooms of that name whose
    /// log holds that event, the latest created by then.
    pub fn bind(&self, name: &str, seq: Seq, event: &Event, at: Duration) -> Option<RoomId> {
        self.rooms
            .iter()
            .filter(|(_, log)| log.name == name && log.created <= at)
            .filter(|(_, log)| {
                log.events
                    .get(&seq)
                    .is_some_and(|logged| logged.event == *event)
            })
            .map(|(id, _)| *id)
            .next_back()
    }

    /// A private event with this content, in any stream.
    pub fn private_like(&self, seq: Seq, from: &str, to: &str, text: &str) -> bool {
        self.privates.values().any(|stream| {
            stream
                .get(&seq)
                .is_some_and(|event| event.from == from && event.to == to && event.text == text)
        })
    }
}

struct Builder<'a> {
    /// Rooms whose released numbering may skip (a restart rebuilt events
    /// that were never released).
    restarted: BTreeSet<RoomId>,
    problems: &'a mut Vec<Problem>,
}

impl Builder<'_> {
    fn room_event(&mut self, model: &mut Model, room: RoomId, at: Duration, frame: &ServerFrame) {
        let Some((name, seq, event)) = room_event(frame) else {
            return;
        };
        let log = model.rooms.entry(room).or_insert_with(|| RoomLog {
            name: name.to_owned(),
            created: at,
            events: BTreeMap::new(),
        });
        if let Some(existing) = log.events.get(&seq) {
            let same = existing.event == event;
            self.problems.push((
                Property::SeqUnique,
                same,
                About::default().seqs(vec![seq]).at(at),
                format!(
                    "{name} event {seq} was {:?} and is now {event:?}",
                    existing.event
                ),
            ));
            return;
        }
        let next = log.last_seq() + 1;
        let fits = seq == next || (seq > next && self.restarted.contains(&room));
        self.problems.push((
            Property::LogContiguous,
            fits,
            About::default().seqs(vec![next, seq]).at(at),
            format!("{name} released event {seq} after event {}", next - 1),
        ));
        log.events.insert(seq, Logged { at, event });
    }

    fn private_event(
        &mut self,
        model: &mut Model,
        owner: MemberId,
        at: Duration,
        frame: &ServerFrame,
    ) {
        let ServerFrame::Private {
            seq,
            from,
            to,
            text,
            ..
        } = frame
        else {
            return;
        };
        let event = PrivateEvent {
            at,
            seq: *seq,
            from: from.clone(),
            to: to.clone(),
            text: text.clone(),
        };
        let stream = model.privates.entry(owner).or_default();
        if let Some(existing) = stream.get(seq) {
            let same = existing.from == event.from
                && existing.to == event.to
                && existing.text == event.text;
            self.problems.push((
                Property::SeqUnique,
                same,
                About::default().seqs(vec![*seq]).at(at),
                format!(
                    "private event {seq} of member {} was {existing:?} and is now {event:?}",
                    owner.0
                ),
            ));
            return;
        }
        stream.insert(*seq, event);
    }

    /// A restart: every room released so far must be there, at least as
    /// far as it was released, with the same events.
    fn restart(&mut self, model: &mut Model, lifetime: &Lifetime) {
        if let Some(failure) = &lifetime.failed {
            self.problems.push((
                Property::AckedDurable,
                injected(failure),
                About::default().at(lifetime.started),
                format!("the server could not start again: {failure}"),
            ));
            return;
        }
        if !lifetime.up {
            return; // Crashed again while it recovered.
        }
        model.restarts.push(lifetime.started);
        let recovered: BTreeMap<RoomId, &crate::world::RecoveredRoom> =
            lifetime.rooms.iter().map(|room| (room.id, room)).collect();
        for (id, log) in &model.rooms {
            let released = log.last_seq();
            let kept = recovered.get(id).map_or(0, |room| room.last_seq);
            let needed = log.has_messages() || recovered.contains_key(id);
            self.problems.push((
                Property::AckedDurable,
                !needed || kept >= released,
                About::default()
                    .seqs(vec![released, kept])
                    .at(lifetime.started),
                format!(
                    "{} had released events up to {released}; after the restart it has {kept}",
                    log.name
                ),
            ));
        }
        for room in &lifetime.rooms {
            self.merge_recovered(model, room, lifetime.started);
            self.restarted.insert(room.id);
        }
        for (owner, history) in &lifetime.privates {
            for frame in history {
                self.private_event(model, *owner, lifetime.started, frame);
            }
        }
    }

    fn merge_recovered(
        &mut self,
        model: &mut Model,
        room: &crate::world::RecoveredRoom,
        at: Duration,
    ) {
        let log = model.rooms.entry(room.id).or_insert_with(|| RoomLog {
            name: room.name.clone(),
            created: at,
            events: BTreeMap::new(),
        });
        for frame in &room.history {
            let Some((_, seq, event)) = room_event(frame) else {
                continue;
            };
            match log.events.get(&seq) {
                Some(existing) => {
                    let same = existing.event == event;
                    self.problems.push((
                        Property::SeqUnique,
                        same,
                        About::default().seqs(vec![seq]).at(at),
                        format!(
                            "{} event {seq} was {:?}; recovery rebuilt {event:?}",
                            room.name, existing.event
                        ),
                    ));
                }
                None => {
                    log.events.insert(seq, Logged { at, event });
                }
            }
        }
    }
}
