//! The state machine's invariants, checked after every input in debug and
//! simulation builds (release builds skip them: they walk the whole state).

use std::collections::BTreeMap;

use super::Rooms;
use super::connections::{ConnectionPhase, THROTTLE_BACKLOG_MAX};

impl Rooms {
    /// Panics if any invariant is broken.
    pub fn check_invariants(&self) {
        self.state.check();
        self.journal.check();
        self.check_connections();
        self.check_members();
        self.check_rooms();
    }

    /// Each connection: its backlog, its phase, and the count per address.
    fn check_connections(&self) {
        let mut per_address = BTreeMap::new();
        for (connection, state) in &self.connections {
            *per_address.entry(state.peer).or_insert(0usize) += 1;
            assert!(
                state.backlog.len() <= THROTTLE_BACKLOG_MAX + 1,
                "backlogs are bounded"
            );
            assert!(
                state.backlog.is_empty() || state.throttled_since.is_some(),
                "only a throttled connection has a backlog"
            );
            match state.phase {
                ConnectionPhase::Member(member) => {
                    let attached = self
                        .state
                        .members
                        .get(&member)
                        .and_then(|member| member.connection);
                    assert_eq!(
                        attached,
                        Some(*connection),
                        "a member's connection is attached to it"
                    );
                }
                ConnectionPhase::Greeting { attempts } => {
                    assert!(
                        attempts <= self.config.hello_attempts_max,
                        "hellos are bounded"
                    );
                }
                ConnectionPhase::Closing { .. } => {
                    assert!(
                        state.backlog.is_empty(),
                        "nothing waits on a closing connection"
                    );
                }
            }
        }
        assert_eq!(
            per_address, self.per_address,
            "connections are counted per address"
        );
    }

    /// Each member with a connection is that connection's member.
    fn check_members(&self) {
        for (id, member) in &self.state.members {
            if let Some(connection) = member.connection {
                let phase = self.connections.get(&connection).map(|state| state.phase);
                assert_eq!(
                    phase,
                    Some(ConnectionPhase::Member(*id)),
                    "an attached connection is the member's"
                );
            }
        }
        assert!(
            self.state.members.len() <= self.config.sessions_max.max(self.restored_over.sessions),
            "sessions are bounded"
        );
    }

    /// Each room: its bounds, and its connections those of its members.
    fn check_rooms(&self) {
        for room in self.state.rooms.values() {
            assert!(
                room.members.len()
                    <= self
                        .config
                        .room_members_max
                        .max(self.restored_over.room_members),
                "rooms are bounded"
            );
            let attached = room
                .members
                .iter()
                .filter_map(|member| self.state.member(*member).connection);
            assert!(
                attached
                    .clone()
                    .all(|connection| room.connections.contains(&connection))
            );
            assert_eq!(
                attached.count(),
                room.connections.len(),
                "a room's connections are its members'"
            );
            if let Some(recipients) = &room.recipients {
                assert!(
                    recipients.iter().eq(room.connections.iter().copied()),
                    "cached recipients are current"
                );
            }
        }
        assert!(
            self.state.rooms.len() <= self.config.rooms_max.max(self.restored_over.rooms),
            "rooms are bounded"
        );
    }
}
