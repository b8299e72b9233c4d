//! What the user sees, and how a session ended.
//!
//! `Display` gives each line's exact text. The original program's lines are
//! kept word for word; a room event from a room other than the current one
//! is shown with the room's name in brackets before it, so that the
//! original conversation (one room) looks exactly as it did.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::{ErrorCode, RoomCount, Seq};

/// A line shown to the user. Sequence numbers are carried along for
/// observers and not shown. Serializable for [`crate::report`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Line {
    /// `X has connected to the chatroom.`
    Joined {
        /// The room.
        room: String,
        /// Who joined.
        nick: String,
        /// The event's sequence number.
        seq: Seq,
        /// Shown with its room's name (not the current room).
        tagged: bool,
    },
    /// `You are now connected to the chatroom.` (the first room), or that
    /// the user is in another room now.
    YouAreIn {
        /// The room.
        room: String,
        /// True for the first room of the session's first join.
        first: bool,
    },
    /// `X: text`, or `* X text` for an action.
    Message {
        /// The room.
        room: String,
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
        /// An action.
        action: bool,
        /// The event's sequence number.
        seq: Seq,
        /// Shown with its room's name.
        tagged: bool,
    },
    /// `X has left the chatroom.`
    Left {
        /// The room.
        room: String,
        /// Who left.
        nick: String,
        /// The event's sequence number.
        seq: Seq,
        /// Shown with its room's name.
        tagged: bool,
    },
    /// `X is now known as Y.`
    Renamed {
        /// The room.
        room: String,
        /// The old nickname.
        from: String,
        /// The new one.
        to: String,
        /// The event's sequence number.
        seq: Seq,
        /// Shown with its room's name.
        tagged: bool,
    },
    /// The start of a room's recent history, shown to a new member.
    HistoryStart {
        /// The room.
        room: String,
        /// How many messages follow.
        count: u64,
    },
    /// A message of a room's recent history.
    History {
        /// The room.
        room: String,
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
        /// An action.
        action: bool,
        /// Its sequence number.
        seq: Seq,
    },
    /// The end of the recent history.
    HistoryEnd {
        /// The room.
        room: String,
    },
    /// A private message, sent (`-> *to* text`) or received (`*from* text`).
    Private {
        /// Its sequence number in the private stream.
        seq: Seq,
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// What was said.
        text: String,
        /// An action.
        action: bool,
        /// True when this user sent it.
        outgoing: bool,
    },
    /// The user left a room.
    Parted(String),
    /// The user's nickname changed.
    NickChanged(String),
    /// Lines typed now go to this room.
    Talking(String),
    /// The room list.
    RoomList {
        /// The rooms.
        rooms: Vec<RoomCount>,
        /// How many there are in all.
        total: u64,
    },
    /// Who is in a room.
    Members {
        /// The room.
        room: String,
        /// Its members (perhaps not all).
        nicks: Vec<String>,
        /// How many there are in all.
        total: u64,
    },
    /// A local hint (unknown command, wrong usage, help).
    Hint(String),
    /// `Disconnecting from server...`
    Disconnecting,
    /// The server is shutting down.
    ServerShutdown,
    /// The server refused to let us in.
    Refused(String),
    /// The server refused the nickname; the user is asked again.
    NickRefused(String),
    /// The server reported an error.
    ServerError(String),
    /// The connection was lost and will not be retried.
    ConnectionLost(String),
    /// The connection was lost; reconnecting.
    Reconnecting(String),
    /// This client was stopped (Ctrl-Z, a suspended laptop) for a while.
    Paused(Duration),
    /// Reconnected and resumed; this many missed events follow.
    Resumed(u64),
    /// The server no longer knows the session: joining afresh.
    Rejoining,
    /// No connection for too long.
    GaveUp(Duration),
    /// The server could not be reached.
    Unreachable(String),
    /// Events of a room (or, without one, private messages) the user will
    /// never see.
    Gap {
        /// The room; `None` for private messages.
        room: Option<String>,
        /// How many.
        count: u64,
    },
    /// A line typed was not sent (refused here, or by the server).
    NotSent(String),
    /// Messages sent but never acknowledged.
    Undelivered(usize),
    /// Lines typed but never read by the session, because it had ended.
    Unsent(usize),
    /// What became of the messages of the session, at exit.
    Summary(Tally),
}

/// What became of the messages a user typed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Messages acknowledged by the server.
    pub delivered: usize,
    /// Messages that went out but were never acknowledged: lost in
    /// transit, or perhaps delivered.
    pub unconfirmed: usize,
    /// Messages refused, by this client or by the server.
    pub refused: usize,
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// " and N more" when a list shows fewer than there are.
fn more(total: u64, shown: usize) -> String {
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if total > shown {
        format!(" and {} more", total - shown)
    } else {
        String::new()
    }
}

fn tag(tagged: bool, room: &str) -> String {
    if tagged {
        format!("[{room}] ")
    } else {
        String::new()
    }
}

impl fmt::Display for Line {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Joined {
                room, nick, tagged, ..
            } => {
                write!(
                    formatter,
                    "{}{nick} has connected to the chatroom.",
                    tag(*tagged, room)
                )
            }
            Line::YouAreIn { first: true, .. } => {
                write!(formatter, "You are now connected to the chatroom.")
            }
            Line::YouAreIn { room, .. } => {
                write!(formatter, "You are now in {room}; lines you type go there.")
            }
            Line::Message {
                room,
                nick,
                text,
                action,
                tagged,
                ..
            } => {
                let tag = tag(*tagged, room);
                if *action {
                    write!(formatter, "{tag}* {nick} {text}")
                } else {
                    write!(formatter, "{tag}{nick}: {text}")
                }
            }
            Line::Left {
                room, nick, tagged, ..
            } => {
                write!(
                    formatter,
                    "{}{nick} has left the chatroom.",
                    tag(*tagged, room)
                )
            }
            Line::Renamed {
                room,
                from,
                to,
                tagged,
                ..
            } => {
                write!(
                    formatter,
                    "{}{from} is now known as {to}.",
                    tag(*tagged, room)
                )
            }
            Line::HistoryStart { room, count } => {
                let count = plural(*count, "recent message", "recent messages");
                write!(formatter, "--- {count} in {room} before you joined:")
            }
            Line::History {
                nick,
                text,
                action: true,
                ..
            } => write!(formatter, "  * {nick} {text}"),
            Line::History { nick, text, .. } => write!(formatter, "  {nick}: {text}"),
            Line::HistoryEnd { .. } => write!(formatter, "--- end of recent messages"),
            Line::Private {
                from,
                to,
                text,
                action,
                outgoing,
                ..
            } => match (outgoing, action) {
                (true, false) => write!(formatter, "-> *{to}* {text}"),
                (true, true) => write!(formatter, "-> *{to}* * {from} {text}"),
                (false, false) => write!(formatter, "*{from}* {text}"),
                (false, true) => write!(formatter, "*{from}* * {from} {text}"),
            },
            Line::Parted(room) => write!(formatter, "You left {room}."),
            Line::NickChanged(nick) => write!(formatter, "You are now known as {nick}."),
            Line::Talking(room) => write!(formatter, "Lines you type go to {room} now."),
            Line::RoomList { rooms, total } => {
                let listed: Vec<String> = rooms
                    .iter()
                    .map(|room| format!("{} ({})", room.room, room.members))
                    .collect();
                let more = more(*total, rooms.len());
                write!(formatter, "Rooms: {}{more}.", listed.join(", "))
            }
            Line::Members { room, nicks, total } => {
                let more = more(*total, nicks.len());
                write!(formatter, "In {room}: {}{more}.", nicks.join(", "))
            }
            Line::Hint(text) => formatter.write_str(text),
            Line::Disconnecting => write!(formatter, "Disconnecting from server..."),
            Line::ServerShutdown => write!(formatter, "The server is shutting down."),
            Line::Refused(reason) => {
                write!(formatter, "The server refused to let you in: {reason}.")
            }
            Line::NickRefused(reason) => {
                write!(formatter, "That nickname cannot be used: {reason}.")
            }
            Line::ServerError(reason) => {
                write!(formatter, "The server reported an error: {reason}.")
            }
            Line::ConnectionLost(reason) => {
                write!(formatter, "Connection to the server lost: {reason}.")
            }
            Line::Reconnecting(reason) => {
                write!(
                    formatter,
                    "Connection to the server lost ({reason}); reconnecting..."
                )
            }
            Line::Paused(for_how_long) => write!(
                formatter,
                "This client was paused for {} s; checking the connection...",
                for_how_long.as_secs()
            ),
            Line::Resumed(0) => write!(formatter, "Reconnected; nothing was missed."),
            Line::Resumed(missed) => {
                let missed = plural(*missed, "missed message follows", "missed messages follow");
                write!(formatter, "Reconnected; {missed}.")
            }
            Line::Rejoining => write!(
                formatter,
                "The server no longer knows this session; joining the chatroom again \
                 (what was said meanwhile is not shown)."
            ),
            Line::GaveUp(after) => write!(
                formatter,
                "Could not reconnect for {} s; giving up.",
                after.as_secs()
            ),
            Line::Unreachable(reason) => write!(formatter, "Cannot reach the server: {reason}."),
            Line::Gap { room, count } => {
                let what = match room {
                    Some(_) => plural(*count, "message is", "messages are"),
                    None => plural(*count, "private message is", "private messages are"),
                };
                let verb = if *count == 1 { "was" } else { "were" };
                write!(
                    formatter,
                    "({what} no longer available and {verb} skipped.)"
                )
            }
            Line::NotSent(reason) => write!(formatter, "Not sent: {reason}."),
            Line::Unsent(count) => {
                let count = plural(*count as u64, "typed line was", "typed lines were");
                write!(formatter, "{count} not sent: the session had ended.")
            }
            Line::Undelivered(count) => {
                let count = plural(*count as u64, "message", "messages");
                write!(formatter, "{count} could not be confirmed as delivered.")
            }
            Line::Summary(tally) => write!(formatter, "{tally}"),
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = self.delivered + self.unconfirmed + self.refused;
        let mut parts = vec![format!("{} delivered", self.delivered)];
        if self.unconfirmed > 0 {
            parts.push(format!("{} not confirmed", self.unconfirmed));
        }
        if self.refused > 0 {
            parts.push(format!("{} refused", self.refused));
        }
        let typed = plural(sent as u64, "message typed", "messages typed");
        write!(formatter, "{typed}: {}.", parts.join(", "))
    }
}

/// How a session ended; the command line turns it into an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The user left (`.exit`, `/quit`, end of input, a signal).
    Left,
    /// The server could not be reached.
    Unreachable,
    /// The server refused the hello.
    Refused(ErrorCode),
    /// The connection was lost for good (before the first welcome, or for
    /// longer than the give-up time).
    ConnectionLost,
}

/// The end of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Why it ended.
    pub reason: EndReason,
    /// What became of the messages typed.
    pub tally: Tally,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_lines_are_kept_word_for_word() {
        let joined = Line::Joined {
            room: "lobby".into(),
            nick: "John".into(),
            seq: 2,
            tagged: false,
        };
        assert_eq!(joined.to_string(), "John has connected to the chatroom.");
        let message = Line::Message {
            room: "lobby".into(),
            nick: "John".into(),
            text: "Hello there".into(),
            action: false,
            seq: 3,
            tagged: false,
        };
        assert_eq!(message.to_string(), "John: Hello there");
        assert_eq!(
            Line::YouAreIn {
                room: "lobby".into(),
                first: true
            }
            .to_string(),
            "You are now connected to the chatroom."
        );
        assert_eq!(
            Line::Disconnecting.to_string(),
            "Disconnecting from server..."
        );
    }

    #[test]
    fn other_rooms_are_tagged_and_private_messages_marked() {
        let left = Line::Left {
            room: "dev".into(),
            nick: "Ann".into(),
            seq: 9,
            tagged: true,
        };
        assert_eq!(left.to_string(), "[dev] Ann has left the chatroom.");
        let private = Line::Private {
            seq: 1,
            from: "Ann".into(),
            to: "Bob".into(),
            text: "hi".into(),
            action: false,
            outgoing: false,
        };
        assert_eq!(private.to_string(), "*Ann* hi");
        let sent = Line::Private {
            seq: 2,
            from: "Ann".into(),
            to: "Bob".into(),
            text: "hi".into(),
            action: false,
            outgoing: true,
        };
        assert_eq!(sent.to_string(), "-> *Bob* hi");
    }

    #[test]
    fn the_summary_counts_what_became_of_each_message() {
        let tally = Tally {
            delivered: 3,
            unconfirmed: 1,
            refused: 0,
        };
        assert_eq!(
            tally.to_string(),
            "4 messages typed: 3 delivered, 1 not confirmed."
        );
    }
}
