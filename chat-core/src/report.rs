//! What a real process saw, as JSON lines: what a client showed and how its
//! session ended; what a server released, told its console and rebuilt at
//! each start.
//!
//! The simulation records these through callbacks inside one process
//! (`client::run`'s user interface, [`crate::server::ServerHandle::set_observer`]).
//! Real processes cannot share memory with a test, so `chat-cli client
//! --transcript FILE` and `chat-cli server --observe FILE` append the same
//! observations to files, and a test that runs the real binaries
//! (chat-cli's `real_sim`) reads them back and judges them with the
//! simulation's oracle. The types live here, beside what they report, so
//! that the writer and the reader cannot disagree about them.
//!
//! Each record is [`Stamped`] with the wall-clock time it happened, taken by
//! the binary (the drivers never read the wall clock), so that the records
//! of several processes on one machine fall on one time line. A process
//! killed with SIGKILL may leave a torn last line: [`parse_lines`] skips it.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::protocol::{self, Seq, ServerFrame};
use crate::room::{MemberId, Notice, RoomId, Rooms};
use crate::server::Observed;
use crate::session::{Line, Outcome};
use crate::store::RecoveryStats;

/// A record with the time it happened: since the Unix epoch, by the wall
/// clock of the process that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    /// When, since the Unix epoch.
    pub at: Duration,
    /// What.
    pub record: T,
}

/// What a client run reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientReport {
    /// A line the client took from its user (read from its input).
    Typed(String),
    /// A line shown to the user, with its kind and sequence number.
    Shown(Line),
    /// How the session ended, with what became of the messages typed.
    Ended(Outcome),
}

/// One room as a recovery rebuilt it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredRoom {
    /// Its id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// Its last sequence number.
    pub last_seq: Seq,
    /// The events its history kept, oldest first.
    pub history: Vec<ServerFrame>,
}

/// What a server process reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerReport {
    /// The process started (before it recovers anything).
    Starting,
    /// It recovered its state and is about to listen.
    Recovered {
        /// Every room, with the history it kept.
        rooms: Vec<RecoveredRoom>,
        /// Every member's private stream, as kept.
        privates: Vec<(MemberId, Vec<ServerFrame>)>,
        /// The nicknames of the sessions it holds.
        members: Vec<String>,
        /// What the log's recovery found (none without a log).
        recovery: Option<RecoveryStats>,
    },
    /// It could not start.
    Failed(String),
    /// A room event, as released.
    Event {
        /// The room.
        room: RoomId,
        /// The event.
        frame: ServerFrame,
    },
    /// A private event, as released, and whose stream it is.
    Private {
        /// The member whose private stream it belongs to.
        owner: MemberId,
        /// The event.
        frame: ServerFrame,
    },
    /// A console notice.
    Notice(Notice),
    /// The most bytes queued for one connection so far grew to this.
    QueuePeak(usize),
    /// It stopped by itself, with this error.
    Stopped(String),
}

impl ServerReport {
    /// What a recovery rebuilt, from the state machine it produced.
    pub fn recovered(rooms: &Rooms, recovery: Option<RecoveryStats>) -> ServerReport {
        let recovered_rooms = rooms
            .room_histories()
            .into_iter()
            .map(|(id, name, last_seq, history)| RecoveredRoom {
                id,
                name,
                last_seq,
                history: decode_all(&history),
            })
            .collect();
        let privates = rooms
            .private_histories()
            .into_iter()
            .map(|(owner, history)| (owner, decode_all(&history)))
            .collect();
        ServerReport::Recovered {
            rooms: recovered_rooms,
            privates,
            members: rooms.member_nicks(),
            recovery,
        }
    }

    /// What the server's observer was shown.
    pub fn observed(observed: Observed<'_>) -> ServerReport {
        match observed {
            Observed::Event { room, frame } => ServerReport::Event {
                room,
                frame: decode(frame),
            },
            Observed::Private { owner, frame } => ServerReport::Private {
                owner,
                frame: decode(frame),
            },
            Observed::Notice(notice) => ServerReport::Notice(notice.clone()),
        }
    }
}

fn decode_all(frames: &[Bytes]) -> Vec<ServerFrame> {
    frames.iter().map(decode).collect()
}

fn decode(frame: &Bytes) -> ServerFrame {
    let line = frame.strip_suffix(b"\n").unwrap_or(frame);
    // Invariant: the server encoded these frames itself, from ServerFrame.
    protocol::decode_line::<ServerFrame>(line).expect("the server's own frames decode")
}

/// One record as a JSON line, newline included.
pub fn encode_line<T: Serialize>(stamped: &Stamped<T>) -> Vec<u8> {
    // Invariant: reports are plain data with string keys (maps are
    // serialized as lists of pairs), which serde_json always serializes.
    let mut line = serde_json::to_vec(stamped).expect("reports always serialize");
    line.push(b'\n');
    line
}

/// A line of a report file that is not a record.
#[derive(Debug, thiserror::Error)]
#[error("line {line} of the report is not a record: {cause}")]
pub struct ReportError {
    /// Its number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub cause: String,
}

/// Reads a report file's records. A last line without its newline (a
/// process killed while writing) is skipped; any other bad line is an
/// error.
pub fn parse_lines<T: DeserializeOwned>(text: &str) -> Result<Vec<Stamped<T>>, ReportError> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| ReportError {
                line: index + 1,
                cause: error.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::{CloseReason, ConnectionId};
    use crate::session::{EndReason, Tally};

    fn stamped<T>(seconds: u64, record: T) -> Stamped<T> {
        Stamped {
            at: Duration::from_secs(seconds),
            record,
        }
    }

    #[test]
    fn client_records_come_back_as_written() {
        let records = vec![
            stamped(0, ClientReport::Typed("héllo".into())),
            stamped(
                1,
                ClientReport::Shown(Line::Message {
                    room: "lobby".into(),
                    nick: "ann".into(),
                    text: "héllo".into(),
                    action: false,
                    seq: 7,
                    tagged: false,
                }),
            ),
            stamped(
                2,
                ClientReport::Shown(Line::Gap {
                    room: None,
                    count: 3,
                }),
            ),
            stamped(
                3,
                ClientReport::Ended(Outcome {
                    reason: EndReason::Left,
                    tally: Tally {
                        delivered: 2,
                        unconfirmed: 1,
                        refused: 0,
                    },
                }),
            ),
        ];
        let text: Vec<u8> = records.iter().flat_map(encode_line).collect();
        let text = String::from_utf8(text).expect("JSON is UTF-8");
        assert_eq!(text.lines().count(), 4);
        let read: Vec<Stamped<ClientReport>> = parse_lines(&text).expect("records");
        assert_eq!(read, records);
    }

    #[test]
    fn server_records_come_back_as_written() {
        let records = vec![
            stamped(1, ServerReport::Starting),
            stamped(
                2,
                ServerReport::Notice(Notice::Dropped {
                    connection: ConnectionId(4),
                    nick: Some("bob".into()),
                    reason: CloseReason::Evicted,
                }),
            ),
            stamped(
                3,
                ServerReport::Private {
                    owner: MemberId(2),
                    frame: ServerFrame::Private {
                        seq: 1,
                        from: "ann".into(),
                        to: "bob".into(),
                        text: "psst".into(),
                        action: false,
                        sent: true,
                    },
                },
            ),
        ];
        let text: String = records
            .iter()
            .map(|record| String::from_utf8(encode_line(record)).expect("UTF-8"))
            .collect();
        let read: Vec<Stamped<ServerReport>> = parse_lines(&text).expect("records");
        assert_eq!(read, records);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_a_bad_one_is_an_error() {
        let whole = encode_line(&stamped(1, ServerReport::Starting));
        let mut text = String::from_utf8(whole).expect("UTF-8");
        text.push_str("{\"at\":{\"secs\":2,");
        let read: Vec<Stamped<ServerReport>> = parse_lines(&text).expect("the whole line");
        assert_eq!(read.len(), 1);
        let error = parse_lines::<ServerReport>("{\"at\":1}\nnot json\n").expect_err("bad line");
        assert_eq!(error.line, 1);
    }
}
