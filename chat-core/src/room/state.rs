//! The durable part of the server's state, changed only through
//! [`Change`]s.
//!
//! Every decision of [`super::Rooms`] that must survive a restart (a member
//! created or renamed, a room entered, an event appended, a message id
//! used) is a `Change`, applied by [`Durable::apply`] and, when the server
//! keeps its data, written to the log. Recovery replays the same changes
//! through the same `apply` onto the last snapshot, so the state after a
//! restart is the state before it: rooms, sequence numbers, history, the
//! members with their token hashes and id windows.
//!
//! What is not durable lives beside it: connections, which member is
//! attached where, timers. After a restart every member is detached and
//! gets a fresh grace period to come back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ids::{IdWindow, UsedId};
use super::output::{ConnectionId, MemberId, Recipients, RoomId};
use super::stream::{HistoryBudget, HistoryLimits, Kept, Stream, StreamKey};
use crate::protocol::{Seq, name_key};

mod snapshot;

/// A session token's SHA-256: tokens themselves are never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex: String = self.0.iter().map(|byte| format!("{byte:02x}")).collect();
        serializer.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        // Only ASCII hex digits: slicing a 64-byte string with a multi-byte
        // character in it by pairs of bytes would panic, and `from_str_radix`
        // alone would also take a `+` sign.
        if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(serde::de::Error::custom("a token hash is 64 hex digits"));
        }
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(TokenHash(bytes))
    }
}

/// A member: the server's side of one client session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    /// The current nickname.
    pub nick: String,
    /// The hash of its session token.
    pub token: TokenHash,
    /// The rooms it is in, with the sequence number of its own `joined`
    /// event in each (a resume never replays what came before it).
    pub rooms: BTreeMap<RoomId, Seq>,
    /// Its private messages, sent and received.
    pub private: Stream,
    /// The message ids it used.
    pub ids: IdWindow,
    /// The connection it is attached to (not durable).
    #[serde(skip)]
    pub connection: Option<ConnectionId>,
    /// Since when it has had no connection (not durable).
    #[serde(skip)]
    pub detached_since: std::time::Duration,
}

/// A room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Room {
    /// Its name, as first created.
    pub name: Arc<str>,
    /// Its events.
    pub stream: Stream,
    /// Its members.
    pub members: BTreeSet<MemberId>,
    /// The connections of its attached members (not durable).
    #[serde(skip)]
    pub connections: BTreeSet<ConnectionId>,
    /// Those connections as shared by broadcasts, until they change.
    #[serde(skip)]
    pub recipients: Option<Recipients>,
}

impl Room {
    /// The connections a broadcast emitted now goes to.
    pub fn recipients(&mut self) -> Recipients {
        self.recipients
            .get_or_insert_with(|| Recipients(self.connections.iter().copied().collect()))
            .clone()
    }
}

/// A durable change of state; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A session started.
    MemberOpened {
        /// Its id.
        member: MemberId,
        /// Its nickname.
        nick: String,
        /// Its token's hash.
        token: TokenHash,
    },
    /// A member changed nickname.
    MemberRenamed {
        /// Who.
        member: MemberId,
        /// The new nickname.
        nick: String,
    },
    /// A session ended (after leaving every room).
    MemberClosed {
        /// Who.
        member: MemberId,
    },
    /// A room was created.
    RoomOpened {
        /// Its id.
        room: RoomId,
        /// Its name.
        name: String,
    },
    /// A member entered a room; its `joined` event is `seq`.
    RoomJoined {
        /// The room.
        room: RoomId,
        /// The member.
        member: MemberId,
        /// The sequence number of its `joined` event.
        seq: Seq,
    },
    /// A member left a room.
    RoomParted {
        /// The room.
        room: RoomId,
        /// The member.
        member: MemberId,
    },
    /// A room without members was freed.
    RoomClosed {
        /// The room.
        room: RoomId,
    },
    /// An event was appended to a stream.
    Appended {
        /// The stream.
        stream: StreamKey,
        /// The event.
        event: Kept,
    },
    /// A member used a message id.
    IdUsed {
        /// Who.
        member: MemberId,
        /// The id and its outcome.
        used: UsedId,
    },
}

/// The history limits the durable state applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Per room.
    pub room: HistoryLimits,
    /// Per private stream.
    pub private: HistoryLimits,
    /// All streams together, in bytes.
    pub total_bytes: usize,
    /// Message ids remembered per member.
    pub ids: usize,
}

/// The durable state; see the module docs.
#[derive(Clone, Debug)]
pub struct Durable {
    /// The members.
    pub members: BTreeMap<MemberId, Member>,
    /// The rooms.
    pub rooms: BTreeMap<RoomId, Room>,
    /// Room ids by each key of their names (see [`name_key`]).
    pub room_names: BTreeMap<String, RoomId>,
    /// Room ids by the exact spelling of their names: the name a client
    /// sends with every message is the room's own spelling (the one its
    /// join was answered with), and looking it up here spares computing the
    /// name's keys (case folding, confusable skeletons) for every message.
    pub room_spellings: BTreeMap<Arc<str>, RoomId>,
    /// Member ids by each key of their nicknames.
    pub nicks: BTreeMap<String, MemberId>,
    /// Member ids by token hash.
    pub tokens: BTreeMap<TokenHash, MemberId>,
    /// The id the next member gets.
    pub next_member: u64,
    /// The id the next room gets.
    pub next_room: u64,
    budget: HistoryBudget,
    limits: Limits,
}

impl Durable {
    /// An empty state.
    pub fn new(limits: Limits) -> Self {
        Self {
            members: BTreeMap::new(),
            rooms: BTreeMap::new(),
            room_names: BTreeMap::new(),
            room_spellings: BTreeMap::new(),
            nicks: BTreeMap::new(),
            tokens: BTreeMap::new(),
            next_member: 1,
            next_room: 1,
            budget: HistoryBudget::default(),
            limits,
        }
    }

    /// Bytes of history kept, all streams together.
    pub fn history_bytes(&self) -> usize {
        self.budget.total()
    }

    /// The member that holds a nickname equal to or confusable with `nick`.
    pub fn nick_holder(&self, nick: &str) -> Option<MemberId> {
        name_key(nick)
            .iter()
            .find_map(|key| self.nicks.get(key).copied())
    }

    /// The room named `name` (or a confusable name).
    pub fn room_named(&self, name: &str) -> Option<RoomId> {
        if let Some(room) = self.room_spellings.get(name) {
            return Some(*room);
        }
        name_key(name)
            .iter()
            .find_map(|key| self.room_names.get(key).copied())
    }

    /// Applies one change. Changes come from the state machine's own
    /// decisions or from the log; one that does not fit the state is a bug
    /// (or a log this code did not write) and panics.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::MemberOpened {
                member,
                nick,
                token,
            } => self.open_member(*member, nick, *token),
            Change::MemberRenamed { member, nick } => {
                let old = self.member(*member).nick.clone();
                self.unindex_nick(&old);
                self.index_nick(nick, *member);
                self.member_mut(*member).nick = nick.clone();
            }
            Change::MemberClosed { member } => self.close_member(*member),
            Change::RoomOpened { room, name } => self.open_room(*room, name),
            Change::RoomJoined { room, member, seq } => {
                let previous = self.member_mut(*member).rooms.insert(*room, *seq);
                assert!(previous.is_none(), "joined twice");
                assert!(self.room_mut(*room).members.insert(*member), "joined twice");
            }
            Change::RoomParted { room, member } => {
                let removed = self.member_mut(*member).rooms.remove(room);
                assert!(removed.is_some(), "parted a room not joined");
                assert!(
                    self.room_mut(*room).members.remove(member),
                    "parted a room not joined"
                );
            }
            Change::RoomClosed { room } => self.close_room(*room),
            Change::Appended { stream, event } => self.append(*stream, event.clone()),
            Change::IdUsed { member, used } => {
                let max = self.limits.ids;
                self.member_mut(*member).ids.record(used.clone(), max);
            }
        }
    }

    fn open_member(&mut self, member: MemberId, nick: &str, token: TokenHash) {
        let previous = self.members.insert(
            member,
            Member {
                nick: nick.to_owned(),
                token,
                rooms: BTreeMap::new(),
                private: Stream::default(),
                ids: IdWindow::default(),
                connection: None,
                detached_since: std::time::Duration::ZERO,
            },
        );
        assert!(previous.is_none(), "member {member:?} opened twice");
        self.next_member = self.next_member.max(member.0 + 1);
        self.index_nick(nick, member);
        self.tokens.insert(token, member);
    }

    fn close_member(&mut self, member: MemberId) {
        let removed = self.members.remove(&member);
        let removed = removed.unwrap_or_else(|| panic!("closing unknown member {member:?}"));
        assert!(
            removed.rooms.is_empty(),
            "a member leaves its rooms before it closes"
        );
        self.unindex_nick(&removed.nick);
        self.tokens.remove(&removed.token);
        self.budget
            .update(StreamKey::Private(member), removed.private.bytes(), 0);
    }

    fn open_room(&mut self, room: RoomId, name: &str) {
        let name: Arc<str> = name.into();
        self.room_spellings.insert(Arc::clone(&name), room);
        let previous = self.rooms.insert(
            room,
            Room {
                name: Arc::clone(&name),
                stream: Stream::default(),
                members: BTreeSet::new(),
                connections: BTreeSet::new(),
                recipients: None,
            },
        );
        assert!(previous.is_none(), "room {room:?} opened twice");
        self.next_room = self.next_room.max(room.0 + 1);
        for key in name_key(&name) {
            self.room_names.insert(key, room);
        }
    }

    fn close_room(&mut self, room: RoomId) {
        let removed = self.rooms.remove(&room);
        let removed = removed.unwrap_or_else(|| panic!("closing unknown room {room:?}"));
        assert!(removed.members.is_empty(), "only an empty room is freed");
        for key in name_key(&removed.name) {
            if self.room_names.get(&key) == Some(&room) {
                self.room_names.remove(&key);
            }
        }
        self.room_spellings.remove(&*removed.name);
        self.budget
            .update(StreamKey::Room(room), removed.stream.bytes(), 0);
    }

    fn index_nick(&mut self, nick: &str, member: MemberId) {
        for key in name_key(nick) {
            let previous = self.nicks.insert(key, member);
            assert!(
                previous.is_none_or(|holder| holder == member) || planted!(NickUniqueness),
                "nicknames are unique"
            );
        }
    }

    fn unindex_nick(&mut self, nick: &str) {
        for key in name_key(nick) {
            self.nicks.remove(&key);
        }
    }

    fn stream_mut(&mut self, key: StreamKey) -> (&mut Stream, HistoryLimits) {
        match key {
            StreamKey::Room(room) => {
                let limits = self.limits.room;
                (&mut self.room_mut(room).stream, limits)
            }
            StreamKey::Private(member) => {
                let limits = self.limits.private;
                (&mut self.member_mut(member).private, limits)
            }
        }
    }

    /// Appends an event, then trims histories: the stream's own limits, then
    /// the server-wide byte limit, longest history first.
    fn append(&mut self, key: StreamKey, event: Kept) {
        let (stream, limits) = self.stream_mut(key);
        let before = stream.bytes();
        stream.append(event, limits);
        let after = stream.bytes();
        self.budget.update(key, before, after);
        self.trim_total();
    }

    /// Trims every history and id window to the limits: a server restarted
    /// with lower limits than its state was written under keeps what fits.
    pub fn trim_to_limits(&mut self) {
        let keys: Vec<StreamKey> = self
            .rooms
            .keys()
            .map(|room| StreamKey::Room(*room))
            .chain(
                self.members
                    .keys()
                    .map(|member| StreamKey::Private(*member)),
            )
            .collect();
        for key in keys {
            let (stream, limits) = self.stream_mut(key);
            let before = stream.bytes();
            stream.trim(limits);
            let after = stream.bytes();
            self.budget.update(key, before, after);
        }
        self.trim_total();
        let ids = self.limits.ids;
        for member in self.members.values_mut() {
            member.ids.trim(ids);
        }
    }

    /// Trims the longest histories until all of them fit the server-wide
    /// byte limit.
    fn trim_total(&mut self) {
        // Bounded: each pass drops an event, or ends.
        while self.budget.total() > self.limits.total_bytes {
            let Some(largest) = self.budget.largest() else {
                break;
            };
            let (stream, _) = self.stream_mut(largest);
            let before = stream.bytes();
            stream.drop_oldest();
            let after = stream.bytes();
            self.budget.update(largest, before, after);
        }
    }

    /// The member `id`; it must exist.
    pub fn member(&self, id: MemberId) -> &Member {
        self.members
            .get(&id)
            .unwrap_or_else(|| panic!("member {id:?} exists"))
    }

    /// The member `id`, to change; it must exist.
    pub fn member_mut(&mut self, id: MemberId) -> &mut Member {
        self.members
            .get_mut(&id)
            .unwrap_or_else(|| panic!("member {id:?} exists"))
    }

    /// The room `id`; it must exist.
    pub fn room(&self, id: RoomId) -> &Room {
        self.rooms
            .get(&id)
            .unwrap_or_else(|| panic!("room {id:?} exists"))
    }

    /// The room `id`, to change; it must exist.
    pub fn room_mut(&mut self, id: RoomId) -> &mut Room {
        self.rooms
            .get_mut(&id)
            .unwrap_or_else(|| panic!("room {id:?} exists"))
    }
}

/// One input's durable changes, as read from the log.
#[derive(Deserialize)]
struct Commit {
    changes: Vec<Change>,
}

/// The changes of one log record.
pub fn decode_commit(bytes: &[u8]) -> Result<Vec<Change>, serde_json::Error> {
    serde_json::from_slice::<Commit>(bytes).map(|commit| commit.changes)
}

impl Durable {
    /// Whether `change` can be applied now: records read from disk are
    /// checked with this before [`Durable::apply`], so that a record this
    /// code did not write is a clear error rather than a panic.
    pub fn fits(&self, change: &Change) -> Result<(), String> {
        let member = |id: &MemberId| {
            self.members
                .get(id)
                .ok_or_else(|| format!("member {} does not exist", id.0))
        };
        let room = |id: &RoomId| {
            self.rooms
                .get(id)
                .ok_or_else(|| format!("room {} does not exist", id.0))
        };
        let check = |holds: bool, what: &str| if holds { Ok(()) } else { Err(what.to_owned()) };
        match change {
            Change::MemberOpened {
                member: id,
                nick,
                token,
            } => {
                // `apply` makes the next id one above it.
                check(id.0 < u64::MAX, "the member id leaves no id for the next")?;
                check(!self.members.contains_key(id), "the member exists already")?;
                check(self.nick_holder(nick).is_none(), "the nickname is taken")?;
                check(!self.tokens.contains_key(token), "the token is in use")
            }
            Change::MemberRenamed { member: id, nick } => {
                member(id)?;
                check(
                    self.nick_holder(nick).is_none_or(|holder| holder == *id),
                    "the nickname is taken",
                )
            }
            Change::MemberClosed { member: id } => {
                check(member(id)?.rooms.is_empty(), "the member is still in rooms")
            }
            Change::RoomOpened { room: id, name } => {
                check(id.0 < u64::MAX, "the room id leaves no id for the next")?;
                check(!self.rooms.contains_key(id), "the room exists already")?;
                check(self.room_named(name).is_none(), "the room name is taken")
            }
            Change::RoomJoined {
                room: room_id,
                member: member_id,
                seq,
            } => {
                let (room, member) = (room(room_id)?, member(member_id)?);
                check(
                    !member.rooms.contains_key(room_id),
                    "the member is in the room already",
                )?;
                check(
                    room.stream.next_seq() == *seq,
                    "the join is not the room's next event",
                )
            }
            Change::RoomParted {
                room: room_id,
                member: member_id,
            } => {
                room(room_id)?;
                check(
                    member(member_id)?.rooms.contains_key(room_id),
                    "the member is not in the room",
                )
            }
            Change::RoomClosed { room: id } => {
                check(room(id)?.members.is_empty(), "the room has members")
            }
            Change::Appended { stream, event } => {
                let next = match stream {
                    StreamKey::Room(id) => room(id)?.stream.next_seq(),
                    StreamKey::Private(id) => member(id)?.private.next_seq(),
                };
                check(event.seq == next, "the event is not the stream's next")
            }
            Change::IdUsed { member: id, used } => check(
                used.id > member(id)?.ids.highest,
                "the id is not above the highest used",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_hash_reads_only_64_hex_digits() {
        let hex = "e5".repeat(32);
        let hash: TokenHash = serde_json::from_str(&format!("\"{hex}\"")).expect("64 hex digits");
        assert_eq!(hash, TokenHash([0xe5; 32]));
        // 64 bytes, but a two-byte character straddles a pair of digits
        // (found by the restore_records fuzz target), or a sign stands in
        // for a digit.
        let straddling = format!("{}\u{29e}{}", "e".repeat(45), "e".repeat(17));
        assert_eq!(straddling.len(), 64);
        let signed = format!("+e{}", "e5".repeat(31));
        for bad in [straddling, signed, "e5".to_owned()] {
            let read = serde_json::from_str::<TokenHash>(&format!("\"{bad}\""));
            assert!(read.is_err(), "{bad:?} is not a token hash");
        }
    }

    #[test]
    fn the_largest_id_does_not_fit_as_it_leaves_no_next_id() {
        let limits = Limits {
            room: HistoryLimits {
                events: 10,
                bytes: 1000,
            },
            private: HistoryLimits {
                events: 10,
                bytes: 1000,
            },
            total_bytes: 10_000,
            ids: 10,
        };
        let state = Durable::new(limits);
        let opened = |member| Change::MemberOpened {
            member: MemberId(member),
            nick: "Ann".to_owned(),
            token: TokenHash([1; 32]),
        };
        let room = |room| Change::RoomOpened {
            room: RoomId(room),
            name: "lobby".to_owned(),
        };
        assert!(state.fits(&opened(u64::MAX)).is_err());
        assert!(state.fits(&room(u64::MAX)).is_err());
        assert_eq!(state.fits(&opened(u64::MAX - 1)), Ok(()));
        assert_eq!(state.fits(&room(u64::MAX - 1)), Ok(()));
    }
}
