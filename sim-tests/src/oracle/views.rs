//! What each client showed: every room event real, once, in order, with
//! every skip announced and justified; history on join a true suffix of
//! the room's messages; private messages only for their two parties.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_core::protocol::Seq;
use chat_core::room::RoomId;
use chat_core::session::Line;

use super::model::Event;
use super::{About, Checker, Property};

/// One room as one client run showed it.
#[derive(Default)]
struct RoomView {
    /// The room id its events belong to, once the first was shown.
    binding: Option<RoomId>,
    previous: Option<Seq>,
    expected_next: Option<Seq>,
}

/// Recent history being shown for a room, until the member's own join.
struct HistoryShown {
    room: String,
    count: u64,
    lines: Vec<(Seq, Event)>,
}

/// A client run's screen, as the checker walks it.
struct Screen {
    who: String,
    nick: String,
    /// Every nickname this session has had (private messages keep the
    /// names they were sent under).
    nicks: BTreeSet<String>,
    rooms: BTreeMap<String, RoomView>,
    history: Option<HistoryShown>,
    private_previous: Option<Seq>,
    private_seen: BTreeSet<Seq>,
}

/// The room event a line shows, if it shows one.
pub fn line_event(line: &Line) -> Option<(&str, Seq, Event)> {
    match line {
        Line::Joined {
            room, nick, seq, ..
        } => Some((room, *seq, Event::Joined(nick.clone()))),
        Line::Left {
            room, nick, seq, ..
        } => Some((room, *seq, Event::Left(nick.clone()))),
        Line::Message {
            room,
            nick,
            text,
            action,
            seq,
            ..
        } => Some((
            room,
            *seq,
            Event::Message {
                nick: nick.clone(),
                text: text.clone(),
                action: *action,
            },
        )),
        Line::Renamed {
            room,
            from,
            to,
            seq,
            ..
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

impl Checker<'_> {
    /// Safety of what one client host showed.
    pub fn client_views(&mut self, host: usize) {
        let observations = self.observations;
        let record = &observations.clients[host];
        let mut seen = BTreeSet::new();
        for run in &record.runs {
            let mut screen = Screen {
                who: format!("{} ({})", record.host, run.nick),
                nick: run.nick.clone(),
                nicks: BTreeSet::from([run.nick.clone()]),
                rooms: BTreeMap::new(),
                history: None,
                private_previous: None,
                private_seen: BTreeSet::new(),
            };
            for (at, line) in &run.shown {
                self.walk(&mut screen, &mut seen, *at, line);
            }
        }
    }

    fn walk(
        &mut self,
        screen: &mut Screen,
        seen: &mut BTreeSet<(RoomId, Seq)>,
        at: Duration,
        line: &Line,
    ) {
        match line {
            Line::Gap {
                room: Some(room),
                count,
            } => self.gap(screen, room, at, *count),
            Line::Gap { room: None, count } => {
                screen.private_previous = screen.private_previous.map(|previous| previous + count);
            }
            Line::Rejoining => {
                screen.history = None;
                screen.nicks = BTreeSet::from([screen.nick.clone()]);
                screen.rooms.clear();
                screen.private_previous = None;
                screen.private_seen.clear();
            }
            Line::Parted(room) => {
                screen.rooms.remove(room);
            }
            Line::NickChanged(nick) => {
                screen.nick = nick.clone();
                screen.nicks.insert(nick.clone());
            }
            Line::HistoryStart { room, count } => {
                screen.history = Some(HistoryShown {
                    room: room.clone(),
                    count: *count,
                    lines: Vec::new(),
                });
            }
            Line::History {
                room,
                nick,
                text,
                action,
                seq,
            } => {
                if let Some(history) = screen
                    .history
                    .as_mut()
                    .filter(|history| history.room == *room)
                {
                    let event = Event::Message {
                        nick: nick.clone(),
                        text: text.clone(),
                        action: *action,
                    };
                    history.lines.push((*seq, event));
                }
            }
            Line::Private { .. } => self.private_line(screen, at, line),
            _ => {
                if let Some((room, seq, event)) = line_event(line) {
                    self.room_line(screen, seen, at, (room, seq, event));
                }
            }
        }
    }

    fn room_line(
        &mut self,
        screen: &mut Screen,
        seen: &mut BTreeSet<(RoomId, Seq)>,
        at: Duration,
        shown: (&str, Seq, Event),
    ) {
        let (room, seq, event) = shown;
        let about = || About::client(&screen.who).seqs(vec![seq]).at(at);
        let view = screen.rooms.entry(room.to_owned()).or_default();
        let binding = view
            .binding
            .or_else(|| self.model.bind(room, seq, &event, at));
        let Some(id) = binding else {
            return self.expect(Property::NoFabrication, false, about(), || {
                format!("showed {event:?} as event {seq} of {room}, which no log of {room} has")
            });
        };
        view.binding = Some(id);
        let logged = self.model.rooms[&id]
            .events
            .get(&seq)
            .map(|logged| logged.event.clone());
        let (previous, expected) = (view.previous, view.expected_next);
        view.previous = Some(seq);
        view.expected_next = Some(seq + 1);
        self.expect(
            Property::NoFabrication,
            logged.as_ref() == Some(&event),
            about(),
            || format!("showed {event:?} as event {seq} of {room}, but the log has {logged:?}"),
        );
        self.expect(
            Property::NoDuplicate,
            seen.insert((id, seq)),
            about(),
            || format!("showed event {seq} of {room} twice"),
        );
        let in_order = previous.is_none_or(|previous| seq > previous);
        self.expect(Property::SequenceOrder, in_order, about(), || {
            format!(
                "showed event {seq} of {room} after event {}",
                previous.unwrap_or(0)
            )
        });
        if let Some(next) = expected {
            self.expect(Property::NoSilentGap, seq == next, about(), || {
                format!(
                    "after event {} of {room} it showed event {seq} with no gap notice",
                    next - 1
                )
            });
        }
        if event == Event::Joined(screen.nick.clone())
            && let Some(history) = screen.history.take_if(|history| history.room == room)
        {
            self.history_on_join(&screen.who, id, seq, history, at);
        }
    }

    /// A gap notice is justified only if the room's history no longer held
    /// the skipped events.
    fn gap(&mut self, screen: &mut Screen, room: &str, at: Duration, count: u64) {
        let history_max = self.observations.room_config.history_max as Seq;
        let Some(view) = screen.rooms.get_mut(room) else {
            return;
        };
        let (Some(id), Some(first)) = (view.binding, view.expected_next) else {
            return;
        };
        view.expected_next = Some(first + count);
        let last = first + count - 1;
        let evicted_up_to = self.model.rooms[&id]
            .last_seq_by(at)
            .saturating_sub(history_max);
        let about = About::client(&screen.who).seqs(vec![first, last]).at(at);
        self.expect(Property::GapJustified, last <= evicted_up_to, about, || {
            format!("a gap notice skipped events {first}..={last} of {room}, but history still held events after {evicted_up_to}")
        });
    }

    /// History on join: the room's last messages before the member's own
    /// join (event `joined`), each as it was.
    fn history_on_join(
        &mut self,
        who: &str,
        room: RoomId,
        joined: Seq,
        history: HistoryShown,
        at: Duration,
    ) {
        let log = &self.model.rooms[&room];
        let complete = (1..joined).all(|seq| log.events.contains_key(&seq));
        if !complete {
            return; // Events never released and no longer kept: nothing to compare with.
        }
        let expected: Vec<(Seq, Event)> = log
            .events
            .range(..joined)
            .filter(|(_, logged)| matches!(logged.event, Event::Message { .. }))
            .map(|(seq, logged)| (*seq, logged.event.clone()))
            .collect();
        let count = usize::try_from(history.count).unwrap_or(usize::MAX);
        let expected = &expected[expected.len().saturating_sub(count)..];
        // A connection lost while history came leaves a prefix of it.
        let holds = history.lines.len() <= expected.len()
            && history.lines[..] == expected[..history.lines.len()];
        let detail = format!(
            "joining {} at event {joined} showed history {:?}; its last messages were {expected:?}",
            log.name, history.lines
        );
        let about = About::client(who).seqs(vec![joined]).at(at);
        self.expect(Property::HistoryOnJoin, holds, about, || detail);
    }

    fn private_line(&mut self, screen: &mut Screen, at: Duration, line: &Line) {
        let Line::Private {
            seq,
            from,
            to,
            text,
            outgoing,
            ..
        } = line
        else {
            return;
        };
        let about = || About::client(&screen.who).seqs(vec![*seq]).at(at);
        let party =
            (*outgoing && screen.nicks.contains(from)) || (!*outgoing && screen.nicks.contains(to));
        self.expect(Property::PrivateParties, party, about(), || {
            format!(
                "{} was shown the private message {text:?} from {from} to {to}",
                screen.nick
            )
        });
        let real = self.model.private_like(*seq, from, to, text);
        self.expect(Property::NoFabrication, real, about(), || {
            format!(
                "showed private event {seq} ({from} to {to}: {text:?}), which no private stream has"
            )
        });
        self.expect(
            Property::NoDuplicate,
            screen.private_seen.insert(*seq),
            about(),
            || format!("showed private event {seq} twice"),
        );
        let in_order = screen
            .private_previous
            .is_none_or(|previous| *seq > previous);
        self.expect(Property::SequenceOrder, in_order, about(), || {
            format!(
                "showed private event {seq} after {}",
                screen.private_previous.unwrap_or(0)
            )
        });
        screen.private_previous = Some(*seq);
    }
}
