//! Time: heartbeats, deadlines, throttling, expiry, the console summary,
//! and shutdown.
//!
//! Every deadline is checked on the driver's tick, so each is exact to
//! within one tick: a connection must finish its hello within the
//! handshake timeout however many bytes it trickles; one that sends nothing
//! for the heartbeat timeout is dropped (bytes of an unfinished frame count
//! as life); a throttled connection is read again when its rate allows, and
//! closed if it stays throttled past the flood timeout; a member detached
//! for the grace period leaves.

use std::time::Duration;

use super::connections::{ConnectionPhase, THROTTLE_BACKLOG_MAX};
use super::output::{Action, CloseReason, ConnectionId, MemberId, Notice, Summary};
use super::{Refusal, Rooms};
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame, encode};

impl Rooms {
    pub(super) fn tick(&mut self, now: Duration) {
        self.deadlines(now);
        self.release_throttled(now);
        self.expire_members(now);
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            let frame = encode(&ServerFrame::Heartbeat);
            let served: Vec<ConnectionId> = self
                .connections
                .iter()
                .filter(|(_, state)| state.is_served())
                .map(|(connection, _)| *connection)
                .collect();
            for to in served {
                self.journal.push(Action::Send {
                    to,
                    frame: frame.clone(),
                });
            }
        }
        if !self.config.summary_interval.is_zero() && now >= self.next_summary {
            self.summarize(now);
        }
    }

    /// Handshake deadlines, silence, and connections slow to close.
    fn deadlines(&mut self, now: Duration) {
        let config = &self.config;
        let mut late = Vec::new();
        let mut silent = Vec::new();
        let mut stuck = Vec::new();
        for (connection, state) in &self.connections {
            match state.phase {
                ConnectionPhase::Closing { since }
                    if now.saturating_sub(since) >= config.closing_timeout =>
                {
                    stuck.push(*connection);
                }
                ConnectionPhase::Closing { .. } => {}
                ConnectionPhase::Greeting { .. }
                    if now.saturating_sub(state.opened_at) >= config.handshake_timeout
                        && !planted!(NoHandshakeDeadline) =>
                {
                    late.push(*connection);
                }
                _ if state.throttled_since.is_none()
                    && now.saturating_sub(state.last_heard) >= config.heartbeat_timeout =>
                {
                    silent.push(*connection);
                }
                _ => {}
            }
        }
        for connection in late {
            self.stats.handshake_timeouts += 1;
            let message = format!(
                "no accepted hello within {:?}",
                self.config.handshake_timeout
            );
            self.refuse(
                connection,
                Refusal::new(ErrorCode::HandshakeTimeout, message),
                now,
            );
        }
        for connection in silent {
            self.close_connection(connection, CloseReason::HeartbeatTimeout, now);
        }
        for connection in stuck {
            // Flushing takes too long: cut it (and again after as long, if
            // the driver is slow to report it closed).
            if let Some(state) = self.connections.get_mut(&connection) {
                state.phase = ConnectionPhase::Closing { since: now };
            }
            self.journal.push(Action::Close {
                connection,
                flush: false,
            });
        }
    }

    /// A frame over the rate waits, and the driver stops reading the
    /// connection until the rate allows more.
    pub(super) fn throttle(&mut self, connection: ConnectionId, frame: ClientFrame, now: Duration) {
        let state = self
            .connections
            .get_mut(&connection)
            .expect("throttling a live connection");
        state.backlog.push_back(frame);
        if state.backlog.len() > THROTTLE_BACKLOG_MAX {
            self.stats.floods_closed += 1;
            let message = "more frames arrived than a throttled connection may have in flight";
            return self.refuse(
                connection,
                Refusal::new(ErrorCode::RateLimited, message),
                now,
            );
        }
        if state.throttled_since.is_none() {
            state.throttled_since = Some(now);
            self.stats.throttles += 1;
            self.journal.push(Action::Throttle {
                connection,
                paused: true,
            });
            self.log(Notice::Throttled { connection });
        }
    }

    /// Handles what throttled connections may send now, reads them again
    /// once their backlog is empty, and closes those throttled too long.
    fn release_throttled(&mut self, now: Duration) {
        let throttled: Vec<(ConnectionId, Duration)> = self
            .connections
            .iter()
            .filter_map(|(connection, state)| {
                state.throttled_since.map(|since| (*connection, since))
            })
            .collect();
        for (connection, since) in throttled {
            if now.saturating_sub(since) >= self.config.flood_timeout {
                self.stats.floods_closed += 1;
                let message = format!(
                    "sending faster than {} messages per second for {:?}",
                    self.config.message_rate, self.config.flood_timeout
                );
                self.refuse(
                    connection,
                    Refusal::new(ErrorCode::RateLimited, message),
                    now,
                );
                continue;
            }
            self.drain_backlog(connection, now);
        }
    }

    fn drain_backlog(&mut self, connection: ConnectionId, now: Duration) {
        // Bounded: each pass handles or keeps one frame of a bounded backlog.
        for _ in 0..=THROTTLE_BACKLOG_MAX {
            let Some(state) = self.connections.get_mut(&connection) else {
                return;
            };
            let Some(frame) = state.backlog.front() else {
                state.throttled_since = None;
                state.last_heard = now;
                self.journal.push(Action::Throttle {
                    connection,
                    paused: false,
                });
                return;
            };
            if super::connections::is_rated(frame) && !state.rate.take(now) {
                return;
            }
            let frame = state.backlog.pop_front().expect("a frame was in front");
            self.dispatch(connection, frame, now);
        }
    }

    fn expire_members(&mut self, now: Duration) {
        let grace = self.config.session_grace;
        let expired: Vec<MemberId> = self
            .state
            .members
            .iter()
            .filter(|(_, member)| {
                member.connection.is_none() && now.saturating_sub(member.detached_since) >= grace
            })
            .map(|(id, _)| *id)
            .collect();
        for member in expired {
            self.stats.sessions_expired += 1;
            self.end_member(member);
        }
    }

    fn summarize(&mut self, now: Duration) {
        let interval = self.config.summary_interval;
        let messages = self.stats.messages + self.stats.private_messages;
        let (messages_before, resumes_before) = self.summarized;
        let seconds = interval.as_secs().max(1);
        let summary = Summary {
            connections: self.connections.len(),
            members: self.state.members.len(),
            rooms: self.state.rooms.len(),
            resumes: self.stats.resumes - resumes_before,
            messages_per_second: (messages - messages_before) / seconds,
        };
        self.summarized = (messages, self.stats.resumes);
        self.next_summary = now + interval;
        self.log(Notice::Summary(summary));
    }

    pub(super) fn shut_down(&mut self, now: Duration) {
        self.shutting_down = true;
        self.log(Notice::ShuttingDown);
        let served: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, state)| state.is_served())
            .map(|(connection, _)| *connection)
            .collect();
        for connection in served {
            self.send(connection, &ServerFrame::Shutdown);
            self.stop_serving(connection, true, now);
        }
    }
}
