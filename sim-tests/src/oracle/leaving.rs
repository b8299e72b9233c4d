//! A user who leaves by a signal (Ctrl-C, SIGTERM, a closed terminal) is
//! gone from the server at once: the client waits at most `LEAVE_GRACE`
//! for the acks of what it sent, then says `quit` and closes once that is
//! written. A client that closed without its `quit` would keep the
//! nickname taken for the server's session grace (it did once).
//!
//! The case that matters is a link that holds the acks: the client gives up
//! on them after `LEAVE_GRACE`, and its `quit` must still be on the way, to
//! arrive when the link delivers again. So a link that holds or slows its
//! segments only moves the bound to their delivery; judged only where
//! nothing else excuses a delay: the server had the session attached, and
//! from that connection's start to the bound no other fault touched the
//! client's link or the server, no restart happened, the client read its
//! socket, and the server did not throttle it (a throttled connection's
//! `quit` waits behind what it sent before).

use std::time::Duration;

use chat_core::client::{EXIT_FLUSH_MAX, LEAVE_GRACE};
use chat_core::room::{CloseReason, ConnectionId, Notice};

use super::{About, Checker, Property};
use crate::scenario::FaultEvent;
use crate::world::RunRecord;

/// Slack on the bound: ticks, latency, the disk's sync.
const SLACK: Duration = Duration::from_secs(2);

impl Checker<'_> {
    /// A signal's leave is announced within its bound (see the module).
    pub fn signal_leave_announced(&mut self, host: &str, run: &RunRecord) {
        let Some(signalled) = run.signalled else {
            return;
        };
        let nick = self.nick_at(run, signalled);
        let Some((connection, since)) = self.attached_connection(&nick, signalled) else {
            return;
        };
        let deadline = self.leave_deadline(host, since, signalled);
        if self.leave_disturbed(host, connection, since, deadline) {
            return;
        }
        let notices = &self.observations.server.notices;
        // The server gave up on the connection first (a hold longer than
        // its heartbeat timeout): the session then waits out its grace.
        let dropped_first = notices.iter().any(|(at, notice)| {
            *at >= signalled
                && *at <= deadline
                && matches!(notice, Notice::Dropped { connection: dropped, reason, .. }
                    if *dropped == connection && *reason != CloseReason::PeerClosed)
        });
        if dropped_first {
            return;
        }
        let announced = notices.iter().any(|(at, notice)| {
            *at >= signalled && *at <= deadline && *notice == Notice::LeftServer(nick.clone())
        });
        self.expect(
            Property::SignalLeaveAnnounced,
            announced,
            About::client(&format!("{host} ({nick})")).at(signalled),
            || format!("left by a signal at {signalled:?} over a sound link, and was not gone from the server by {deadline:?}"),
        );
    }

    /// The bound: the leave grace and the flush after the signal, or, when
    /// the link held or slowed its segments meanwhile, their delivery.
    fn leave_deadline(&self, host: &str, since: Duration, signalled: Duration) -> Duration {
        let mut deadline = signalled + LEAVE_GRACE + EXIT_FLUSH_MAX + SLACK;
        // Twice over the faults by start: a delay may reach the next one.
        for _ in 0..2 {
            for (start, fault) in &self.observations.scenario.faults {
                let delivered = match fault {
                    FaultEvent::Hold { client, until } if client == host => *until,
                    FaultEvent::LatencySpike { client, until, max } if client == host => {
                        *until + *max
                    }
                    _ => continue,
                };
                if *start <= deadline && delivered >= since {
                    deadline = deadline.max(delivered + SLACK);
                }
            }
        }
        deadline
    }

    /// The connection the server had attached for `nick` at `at`, if one,
    /// and since when.
    fn attached_connection(&self, nick: &str, at: Duration) -> Option<(ConnectionId, Duration)> {
        let mut attached = None;
        for (time, notice) in &self.observations.server.notices {
            if *time > at {
                break;
            }
            match notice {
                Notice::Nickname {
                    connection,
                    nick: named,
                }
                | Notice::Resumed {
                    connection,
                    nick: named,
                    ..
                } if named == nick => {
                    attached = Some((*connection, *time));
                }
                Notice::Dropped { connection, .. }
                    if attached.is_some_and(|(attached, _)| attached == *connection) =>
                {
                    attached = None;
                }
                Notice::LeftServer(named) if named == nick => attached = None,
                _ => {}
            }
        }
        attached
    }

    /// Whether anything between `from` and `to` could hold up the leave of
    /// `host` on `connection`.
    fn leave_disturbed(
        &self,
        host: &str,
        connection: ConnectionId,
        from: Duration,
        to: Duration,
    ) -> bool {
        let overlaps = |start: Duration, end: Duration| start <= to && end >= from;
        let faulted = self
            .observations
            .scenario
            .faults
            .iter()
            .any(|(start, fault)| {
                let (client, end) = match fault {
                    // Delays, not losses: the deadline allows for them.
                    FaultEvent::LatencySpike { .. } | FaultEvent::Hold { .. } => return false,
                    FaultEvent::Partition { client, until }
                    | FaultEvent::PartitionOneWay { client, until, .. }
                    | FaultEvent::LinkFailure { client, until, .. } => (Some(client), *until),
                    FaultEvent::Crash { client } => (Some(client), to),
                    FaultEvent::ServerCrash { down } => (None, *start + *down),
                    FaultEvent::DiskError { .. } => (None, *start),
                    FaultEvent::DiskFull { until } => (None, *until),
                };
                client.is_none_or(|client| client == host) && overlaps(*start, end)
            });
        let server = &self.observations.server;
        let restarted = self.model.restarts.iter().any(|at| overlaps(*at, *at))
            || server.crashes.iter().any(|at| overlaps(*at, *at))
            || server.lifetimes.iter().any(|lifetime| {
                overlaps(lifetime.started, lifetime.started)
                    || lifetime.stopped_at.is_some_and(|at| overlaps(at, at))
            });
        let frozen = self
            .observations
            .clients
            .iter()
            .filter(|record| record.host == host)
            .flat_map(|record| &record.freezes)
            .any(|(start, end)| overlaps(*start, *end));
        let throttled = server
            .notices
            .iter()
            .any(|(at, notice)| *notice == Notice::Throttled { connection } && overlaps(*at, *at));
        faulted || restarted || frozen || throttled
    }
}
