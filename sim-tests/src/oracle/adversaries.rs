//! The adversaries' contract: what PROTOCOL.md promises a program that
//! writes anything at all, judged over each episode's recorded
//! conversation.
//!
//! Always, on every connection: nothing comes after a fatal error or a
//! `bye`, and every ack names an event of the adversary's own that the
//! server released first (an ack is a promise that the message is kept,
//! so it never runs ahead of the event). Per episode, when no server crash
//! or restart overlapped it (they break connections for everyone): the
//! exact answers its frames call for.

use std::time::Duration;

use chat_core::protocol::{ErrorCode, MESSAGE_ID_MAX, ServerFrame};
use chat_core::room::{CloseReason, Notice};

use super::{About, Checker, Property};
use crate::adversary::{Conversation, Episode, Garbage};

/// Leeway for the server's timers and the network, on top of a deadline.
const DEADLINE_SLACK: Duration = Duration::from_secs(3);

/// What an episode's conversation received, in one list, to check.
struct Answers<'a> {
    frames: Vec<&'a ServerFrame>,
}

impl<'a> Answers<'a> {
    /// The frames received, but heartbeats (which come whatever was sent).
    fn new(conversation: &'a Conversation) -> Self {
        Answers {
            frames: conversation
                .received
                .iter()
                .map(|(_, frame)| frame)
                .filter(|frame| !matches!(frame, ServerFrame::Heartbeat))
                .collect(),
        }
    }

    fn welcomes(&self) -> usize {
        self.frames
            .iter()
            .filter(|frame| matches!(frame, ServerFrame::Welcome { .. }))
            .count()
    }

    fn errors(&self) -> Vec<(ErrorCode, Option<u64>)> {
        self.frames
            .iter()
            .filter_map(|frame| match frame {
                ServerFrame::Error { code, id, .. } => Some((*code, *id)),
                _ => None,
            })
            .collect()
    }

    fn acked(&self) -> Vec<u64> {
        self.frames
            .iter()
            .filter_map(|frame| match frame {
                ServerFrame::Ack { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn entered(&self) -> bool {
        self.frames
            .iter()
            .any(|frame| matches!(frame, ServerFrame::Entered { .. }))
    }

    fn last(&self) -> Option<&&'a ServerFrame> {
        self.frames.last()
    }
}

fn ends_conversation(frame: &ServerFrame) -> bool {
    match frame {
        ServerFrame::Bye => true,
        ServerFrame::Error { code, .. } => code.is_fatal(),
        _ => false,
    }
}

fn is_error(frame: &ServerFrame, expected: ErrorCode) -> bool {
    matches!(frame, ServerFrame::Error { code, .. } if *code == expected)
}

impl Checker<'_> {
    /// Judges every adversary episode.
    pub(super) fn adversaries(&mut self) {
        for conversation in &self.observations.adversaries {
            if conversation.connected.is_none() {
                continue; // The server was down: nothing was promised.
            }
            self.nothing_after_the_end(conversation);
            self.acks_follow_events(conversation);
            if !self.disturbed(conversation) {
                self.episode_contract(conversation);
            }
        }
    }

    /// Whether a server crash, stop or restart fell within the episode.
    fn disturbed(&self, conversation: &Conversation) -> bool {
        let Some(connected) = conversation.connected else {
            return true;
        };
        let within = |at: Duration| at >= connected && at <= conversation.ended;
        let server = &self.observations.server;
        server.crashes.iter().any(|at| within(*at))
            || server
                .lifetimes
                .iter()
                .any(|lifetime| within(lifetime.started) || lifetime.stopped_at.is_some_and(within))
    }

    fn nothing_after_the_end(&mut self, conversation: &Conversation) {
        let mut bounds = conversation.connections.clone();
        bounds.push(conversation.received.len());
        for window in bounds.windows(2) {
            let frames = &conversation.received[window[0]..window[1]];
            let end = frames
                .iter()
                .position(|(_, frame)| ends_conversation(frame));
            let Some(end) = end else { continue };
            let after = frames.len() - end - 1;
            self.expect(
                Property::AdversaryContract,
                after == 0,
                About::client(&conversation.nick).at(frames[end].0),
                || {
                    format!(
                        "{after} frames came after {:?}: {:?}",
                        frames[end].1,
                        frames[end + 1].1
                    )
                },
            );
        }
    }

    fn acks_follow_events(&mut self, conversation: &Conversation) {
        for (at, frame) in &conversation.received {
            let ServerFrame::Ack {
                room: Some(room),
                seq,
                id,
                ..
            } = frame
            else {
                continue;
            };
            let released = self.observations.server.events.iter().any(|event| {
                event.at <= *at
                    && matches!(&event.frame, ServerFrame::Message { room: logged, seq: number, nick, .. }
                        if logged == room && number == seq && *nick == conversation.nick)
            });
            self.expect(
                Property::AdversaryContract,
                released,
                About::client(&conversation.nick).seqs(vec![*seq]).at(*at),
                || format!("ack of id {id} for {room} #{seq}, an event of its own the server had not released"),
            );
        }
    }

    fn episode_contract(&mut self, conversation: &Conversation) {
        let Some(episode) = &conversation.episode else {
            return;
        };
        let answers = Answers::new(conversation);
        let (holds, expected) = self.verdict(episode, conversation, &answers);
        let about =
            About::client(&conversation.nick).at(conversation.connected.unwrap_or_default());
        self.expect(Property::AdversaryContract, holds, about, || {
            format!(
                "{episode:?} expected {expected}; it received {:?}, {}",
                answers.frames,
                match conversation.closed {
                    Some(at) => format!("closed at {:.3} s", at.as_secs_f64()),
                    None => "not closed".to_owned(),
                }
            )
        });
    }

    /// Whether the conversation of `episode` got the answers PROTOCOL.md
    /// promises, and what those are, in words.
    fn verdict(
        &self,
        episode: &Episode,
        conversation: &Conversation,
        answers: &Answers<'_>,
    ) -> (bool, &'static str) {
        let nick = conversation.nick.as_str();
        let closed = conversation.closed.is_some();
        let closed_by = |code| answers.last().is_some_and(|frame| is_error(frame, code)) && closed;
        match episode {
            Episode::PipelinedRefusal => (
                answers.welcomes() == 0
                    && closed_by(ErrorCode::ProtocolViolation)
                    && !self.logged_join(nick),
                "a protocol violation, the connection closed, and the pipelined hello ignored",
            ),
            Episode::AfterQuit => (
                answers.welcomes() == 1
                    && answers.acked() == [1]
                    && answers
                        .last()
                        .is_some_and(|frame| matches!(frame, ServerFrame::Bye))
                    && !self.logged_text(&format!("{nick} after quit")),
                "a welcome, the ack of id 1, bye last, and the send after quit ignored",
            ),
            Episode::AfterLeave => self.after_leave(nick, answers),
            Episode::EveryFrame => (
                every_answer(answers),
                "welcome, entered twice, the message and its ack, the private copy and its ack, \
                 nick_changed, members, room_list, parted, bye, in order",
            ),
            Episode::SecondHello => (
                answers.welcomes() == 1 && closed_by(ErrorCode::ProtocolViolation),
                "a welcome, then a protocol violation and the connection closed",
            ),
            Episode::Garbage(kind) => garbage(*kind, answers, closed),
            Episode::ByteByByte => (
                answers.welcomes() == 1 && answers.entered() && answers.acked() == [1],
                "a welcome, the room entered and the ack of id 1",
            ),
            Episode::GuessedResume { .. } => (
                answers.welcomes() == 0
                    && answers
                        .frames
                        .first()
                        .is_some_and(|frame| is_error(frame, ErrorCode::SessionUnknown)),
                "session_unknown, and no welcome to the victim's session",
            ),
            Episode::ExpiredResume => self.expired_resume(conversation, answers),
            Episode::IdAbuse => id_abuse(answers),
            Episode::Flood { count } => flood(*count, answers, closed),
            Episode::Silent { .. } => (
                self.silent_closed(conversation, answers),
                "handshake_timeout within the handshake deadline",
            ),
            Episode::HalfClose => (
                answers.welcomes() == 1 && closed,
                "a welcome, then the connection closed by the server",
            ),
            Episode::ResetMidFrame => (answers.welcomes() == 1, "a welcome"),
            Episode::NeverReads => (
                self.dropped_unread(conversation),
                "its connection dropped as a reader that does not keep up",
            ),
        }
    }

    fn after_leave(&self, nick: &str, answers: &Answers<'_>) -> (bool, &'static str) {
        (
            answers.welcomes() == 1
                && answers.acked() == [1]
                && answers.errors() == [(ErrorCode::NotInRoom, Some(2))]
                && answers
                    .frames
                    .iter()
                    .any(|frame| matches!(frame, ServerFrame::Parted { .. }))
                && own_message_before_ack(answers, &format!("{nick} before leave"))
                && !self.logged_text(&format!("{nick} after leave")),
            "its message before its ack, parted, then not_in_room for the send after leave",
        )
    }

    fn expired_resume(
        &self,
        conversation: &Conversation,
        answers: &Answers<'_>,
    ) -> (bool, &'static str) {
        let second = conversation.connections.get(1).copied();
        let refusals: Vec<&ServerFrame> = second
            .map(|start| {
                conversation.received[start..]
                    .iter()
                    .map(|(_, frame)| frame)
                    .filter(|frame| !matches!(frame, ServerFrame::Heartbeat))
                    .collect()
            })
            .unwrap_or_default();
        let refused = refusals.len() >= 2
            && refusals[..2]
                .iter()
                .all(|frame| is_error(frame, ErrorCode::SessionUnknown));
        (
            answers.welcomes() == 1
                && second.is_some()
                && refused
                && !refusals
                    .iter()
                    .any(|frame| matches!(frame, ServerFrame::Welcome { .. })),
            "one welcome, bye; then session_unknown to the dead token and to the wrong incarnation",
        )
    }

    fn silent_closed(&self, conversation: &Conversation, answers: &Answers<'_>) -> bool {
        let (Some(connected), Some(closed)) = (conversation.connected, conversation.closed) else {
            return false;
        };
        let deadline = self.observations.room_config.handshake_timeout;
        answers.frames.len() == 1
            && answers
                .last()
                .is_some_and(|frame| is_error(frame, ErrorCode::HandshakeTimeout))
            && closed >= connected + deadline
            && closed <= connected + deadline + DEADLINE_SLACK
    }

    /// Whether the server dropped the connection for a full queue while the
    /// episode wrote without reading.
    fn dropped_unread(&self, conversation: &Conversation) -> bool {
        let Some(connected) = conversation.connected else {
            return false;
        };
        self.observations.server.notices.iter().any(|(at, notice)| {
            *at >= connected
                && *at <= conversation.ended
                && matches!(notice, Notice::Dropped { nick: Some(nick), reason: CloseReason::QueueOverflow, .. }
                    if *nick == conversation.nick)
        })
    }

    fn logged_join(&self, nick: &str) -> bool {
        self.observations
            .server
            .events
            .iter()
            .any(|event| matches!(&event.frame, ServerFrame::Joined { nick: joined, .. } if joined == nick))
    }

    fn logged_text(&self, text: &str) -> bool {
        self.observations
            .server
            .events
            .iter()
            .any(|event| matches!(&event.frame, ServerFrame::Message { text: logged, .. } if logged == text))
    }
}

/// Whether the sender was shown its message before the ack of it.
fn own_message_before_ack(answers: &Answers<'_>, text: &str) -> bool {
    let shown = answers
        .frames
        .iter()
        .position(|frame| matches!(frame, ServerFrame::Message { text: said, .. } if said == text));
    let acked = answers
        .frames
        .iter()
        .position(|frame| matches!(frame, ServerFrame::Ack { .. }));
    matches!((shown, acked), (Some(shown), Some(acked)) if shown < acked)
}

/// Whether [`Episode::EveryFrame`]'s answers came, in order (other frames,
/// such as events of other members, may come between them).
fn every_answer(answers: &Answers<'_>) -> bool {
    let expected: [fn(&ServerFrame) -> bool; 11] = [
        |frame| matches!(frame, ServerFrame::Welcome { .. }),
        |frame| matches!(frame, ServerFrame::Entered { .. }),
        |frame| matches!(frame, ServerFrame::Entered { .. }),
        |frame| {
            matches!(
                frame,
                ServerFrame::Ack {
                    id: 1,
                    room: Some(_),
                    ..
                }
            )
        },
        |frame| matches!(frame, ServerFrame::Private { sent: true, .. }),
        |frame| {
            matches!(
                frame,
                ServerFrame::Ack {
                    id: 2,
                    to: Some(_),
                    ..
                }
            )
        },
        |frame| matches!(frame, ServerFrame::NickChanged { .. }),
        |frame| matches!(frame, ServerFrame::Members { .. }),
        |frame| matches!(frame, ServerFrame::RoomList { .. }),
        |frame| matches!(frame, ServerFrame::Parted { .. }),
        |frame| matches!(frame, ServerFrame::Bye),
    ];
    let mut frames = answers.frames.iter();
    expected
        .iter()
        .all(|wanted| frames.any(|frame| wanted(frame)))
        && answers.errors().is_empty()
}

/// Garbage gets one error naming what is wrong with it, and a close.
fn garbage(kind: Garbage, answers: &Answers<'_>, closed: bool) -> (bool, &'static str) {
    let (code, expected) = match kind {
        Garbage::Http | Garbage::UnknownType => (
            ErrorCode::BadFrame,
            "one bad_frame error, the connection closed",
        ),
        Garbage::Latin1 => (
            ErrorCode::InvalidUtf8,
            "one invalid_utf8 error, the connection closed",
        ),
        Garbage::Oversized => (
            ErrorCode::FrameTooLarge,
            "one frame_too_large error, the connection closed",
        ),
    };
    (
        answers.errors() == [(code, None)] && answers.frames.len() == 1 && closed,
        expected,
    )
}

/// Ids 0, 3 (below the highest, never sent), 5 again with another text and
/// the maximum + 1, beside ids 5 and 6 that are fine.
fn id_abuse(answers: &Answers<'_>) -> (bool, &'static str) {
    let mut errors = answers.errors();
    errors.sort_by_key(|(_, id)| *id);
    let mut expected = vec![
        (ErrorCode::IdInvalid, Some(0)),
        (ErrorCode::IdStale, Some(3)),
        (ErrorCode::IdConflict, Some(5)),
        (ErrorCode::IdInvalid, Some(MESSAGE_ID_MAX + 1)),
    ];
    expected.sort_by_key(|(_, id)| *id);
    (
        answers.welcomes() == 1 && answers.acked() == [5, 6] && errors == expected,
        "acks of ids 5 and 6, id_conflict for 5, id_invalid for 0 and the maximum + 1, id_stale for 3",
    )
}

/// A flood is throttled, never answered out of order.
fn flood(count: u64, answers: &Answers<'_>, closed: bool) -> (bool, &'static str) {
    let acked = answers.acked();
    let in_order = acked.iter().copied().eq(1..=acked.len() as u64);
    let complete = acked.len() as u64 == count;
    let only_rate = answers
        .errors()
        .iter()
        .all(|(code, _)| *code == ErrorCode::RateLimited);
    // A flood that outruns the queue limit before the writer runs is
    // dropped as a reader that does not keep up, its welcome unsent:
    // allowed, as long as it is closed.
    (
        answers.welcomes() <= 1 && in_order && (complete || closed) && only_rate,
        "acks of ids 1, 2, 3... in order, all of them unless the connection was closed",
    )
}
