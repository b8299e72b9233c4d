//! The durable state as one document (a snapshot), and what makes a state
//! hold together.
//!
//! A snapshot's checksum says its bytes are the ones written, not that they
//! make sense: a bug of an earlier version, or a hand, may have written a
//! member in a room that does not list it, or two members with one
//! nickname. Such a snapshot is refused with an error naming what is wrong
//! ([`Durable::validate`]) before anything relies on it, so that a damaged
//! data directory stops the start with a clear message instead of a panic
//! later. The same checks, with the limits on top, are the invariants that
//! [`Durable::check`] asserts after every input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Durable, Limits, Member, Room};
use crate::protocol::name_key;
use crate::room::output::{MemberId, RoomId};
use crate::room::stream::StreamKey;

/// What a snapshot holds: the durable state without its indexes.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    next_member: u64,
    next_room: u64,
    members: BTreeMap<MemberId, Member>,
    rooms: BTreeMap<RoomId, Room>,
}

/// [`Snapshot`] borrowed from the live state, to serialize without a copy.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    next_member: u64,
    next_room: u64,
    members: &'a BTreeMap<MemberId, Member>,
    rooms: &'a BTreeMap<RoomId, Room>,
}

/// `Ok` if `holds`, else the error `broken` describes.
fn ensure(holds: bool, broken: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(broken()) }
}

impl Durable {
    /// The state as one JSON document.
    pub fn snapshot(&self) -> Vec<u8> {
        let snapshot = SnapshotRef {
            next_member: self.next_member,
            next_room: self.next_room,
            members: &self.members,
            rooms: &self.rooms,
        };
        // Invariant: the state is plain data with string keys.
        serde_json::to_vec(&snapshot).expect("the state serializes")
    }

    /// The state a snapshot holds, with its indexes rebuilt; an error says
    /// what in it does not parse or does not hold together.
    pub fn restore(bytes: &[u8], limits: Limits) -> Result<Self, String> {
        let snapshot: Snapshot =
            serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        let mut state = Durable::new(limits);
        state.next_member = snapshot.next_member;
        state.next_room = snapshot.next_room;
        for (id, mut room) in snapshot.rooms {
            room.stream.rebuild();
            for key in name_key(&room.name) {
                let holder = state.room_names.insert(key, id);
                ensure(holder.is_none_or(|holder| holder == id), || {
                    format!("two rooms are named {:?}", room.name)
                })?;
            }
            state.room_spellings.insert(room.name.clone(), id);
            state
                .budget
                .update(StreamKey::Room(id), 0, room.stream.bytes());
            state.rooms.insert(id, room);
        }
        for (id, mut member) in snapshot.members {
            member.private.rebuild();
            for key in name_key(&member.nick) {
                let holder = state.nicks.insert(key, id);
                ensure(
                    holder.is_none_or(|holder| holder == id) || planted!(NickUniqueness),
                    || format!("two members are named {:?}", member.nick),
                )?;
            }
            let holder = state.tokens.insert(member.token, id);
            ensure(holder.is_none(), || {
                format!(
                    "members {} and {} have one token",
                    id.0,
                    holder.map_or(0, |h| h.0)
                )
            })?;
            state
                .budget
                .update(StreamKey::Private(id), 0, member.private.bytes());
            state.members.insert(id, member);
        }
        state.validate()?;
        Ok(state)
    }

    /// Whether the state and its indexes hold together, whatever the limits:
    /// every membership is known to both sides, ids are not from the future,
    /// names and tokens are indexed, every stream is numbered without gaps.
    pub fn validate(&self) -> Result<(), String> {
        for (id, member) in &self.members {
            self.validate_member(*id, member)?;
        }
        ensure(self.tokens.len() == self.members.len(), || {
            "a token is indexed for no member".to_owned()
        })?;
        ensure(
            self.nicks.values().all(|id| self.members.contains_key(id)) || planted!(NickUniqueness),
            || "a nickname is indexed for no member".to_owned(),
        )?;
        for (id, room) in &self.rooms {
            self.validate_room(*id, room)?;
        }
        ensure(self.room_spellings.len() == self.rooms.len(), || {
            "a room's spelling is indexed for no room".to_owned()
        })
    }

    fn validate_member(&self, id: MemberId, member: &Member) -> Result<(), String> {
        let named = || format!("member {} ({:?})", id.0, member.nick);
        ensure(id.0 < self.next_member, || {
            format!("{} has an id not yet given out", named())
        })?;
        member
            .private
            .validate()
            .map_err(|broken| format!("{}'s private stream: {broken}", named()))?;
        member
            .ids
            .validate()
            .map_err(|broken| format!("{}'s message ids: {broken}", named()))?;
        ensure(self.tokens.get(&member.token) == Some(&id), || {
            format!("{}'s token is not indexed", named())
        })?;
        // (The planted bug that lets a nickname be taken twice breaks this
        // index on purpose: the oracle, not this check, must see it.)
        for key in name_key(&member.nick)
            .iter()
            .filter(|_| !planted!(NickUniqueness))
        {
            ensure(self.nicks.get(key) == Some(&id), || {
                format!("{}'s nickname is not indexed", named())
            })?;
        }
        for room in member.rooms.keys() {
            let listed = self
                .rooms
                .get(room)
                .is_some_and(|room| room.members.contains(&id));
            ensure(listed, || {
                format!("{} is in room {}, which does not list it", named(), room.0)
            })?;
        }
        Ok(())
    }

    fn validate_room(&self, id: RoomId, room: &Room) -> Result<(), String> {
        let named = || format!("room {} ({:?})", id.0, room.name);
        ensure(id.0 < self.next_room, || {
            format!("{} has an id not yet given out", named())
        })?;
        room.stream
            .validate()
            .map_err(|broken| format!("{}: {broken}", named()))?;
        for member in &room.members {
            let member_knows = self
                .members
                .get(member)
                .is_some_and(|member| member.rooms.contains_key(&id));
            ensure(member_knows, || {
                format!("{} lists member {}, which is not in it", named(), member.0)
            })?;
        }
        let by_key = name_key(&room.name)
            .iter()
            .find_map(|key| self.room_names.get(key).copied());
        ensure(by_key == Some(id), || {
            format!("{}'s name is not indexed", named())
        })?;
        ensure(self.room_spellings.get(&*room.name) == Some(&id), || {
            format!("{}'s spelling is not indexed", named())
        })
    }

    /// Checks the invariants of the durable state and its indexes: that it
    /// holds together, and that it is within its limits.
    pub fn check(&self) {
        if let Err(broken) = self.validate() {
            panic!("the durable state does not hold together: {broken}");
        }
        for member in self.members.values() {
            member.ids.check_invariants(self.limits.ids);
        }
        let sizes = self
            .rooms
            .iter()
            .map(|(id, room)| (StreamKey::Room(*id), room.stream.bytes()))
            .chain(
                self.members
                    .iter()
                    .map(|(id, member)| (StreamKey::Private(*id), member.private.bytes())),
            );
        self.budget.check(sizes);
        assert!(
            self.budget.total() <= self.limits.total_bytes,
            "history is bounded"
        );
    }
}
