//! What became of each run: its messages (delivered or reported), whether
//! it caught up after healing, whether a crashed client was announced as
//! left in time, whether a client that stopped reading lost its connection,
//! and whether any queue passed its bound. Bounds come from the run's
//! configuration; a server restart gives detached sessions a fresh grace
//! period, so bounds that span one start again from it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_core::protocol::Seq;
use chat_core::room::{Notice, RoomId};
use chat_core::session::Line;

use super::model::Event;
use super::views::line_event;
use super::{About, Checker, Property};
use crate::world::RunRecord;

/// Slack added to every time bound: ticks, latency, scheduling.
const SLACK: Duration = Duration::from_secs(2);

/// How long after a failed write the supervisor has the server up again,
/// at most, in the simulation (a restart delay of 1 s, and a few failed
/// attempts while a fault lasts).
const RESTART_WINDOW: Duration = Duration::from_secs(5);

/// The text of a message a typed line sends, if it sends one (a command's
/// argument loses the white space around it, as the client trims it).
pub(crate) fn typed_message(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("/msg ") {
        return rest
            .trim()
            .split_once(' ')
            .map(|(_, text)| text.trim_start());
    }
    if let Some(text) = line.strip_prefix("/me ") {
        return Some(text.trim());
    }
    (!line.starts_with('/') && line.trim() != ".exit" && !line.trim().is_empty()).then_some(line)
}

impl Checker<'_> {
    /// Liveness and the fate of what each user typed.
    pub fn client_outcomes(&mut self, host: usize) {
        let observations = self.observations;
        let record = &observations.clients[host];
        let run_count = record.runs.len();
        for (number, run) in record.runs.iter().enumerate() {
            let who = format!("{} ({})", record.host, run.nick);
            let crashed = record.crashed_at.is_some() && number + 1 == run_count;
            self.no_spurious_rejoin(&who, run);
            self.signal_leave_announced(&record.host, run);
            if crashed {
                continue;
            }
            self.sends_resolved(&who, run);
            if run.outcome.is_none() {
                self.liveness_delivery(&who, run);
            }
        }
        if let (Some(crashed_at), Some(run)) = (record.crashed_at, record.runs.last()) {
            self.crash_announced(&record.host, run, crashed_at);
        }
    }

    /// The run's nickname on the server at `at`: its own, followed through
    /// the renames the server made since the run started (the client may
    /// not have heard of the last one).
    pub(super) fn nick_at(&self, run: &RunRecord, at: Duration) -> String {
        let mut nick = run.nick.clone();
        for (time, notice) in &self.observations.server.notices {
            if *time > at {
                break;
            }
            if let Notice::Renamed { from, to } = notice
                && *time >= run.started
                && *from == nick
            {
                nick = to.clone();
            }
        }
        nick
    }

    /// A client is told its session is gone only if the server ended it
    /// (or, keeping nothing on disk, restarted).
    fn no_spurious_rejoin(&mut self, who: &str, run: &RunRecord) {
        let notices = &self.observations.server.notices;
        let durable = self.observations.scenario.durable;
        let mut since = run.started;
        for (at, line) in &run.shown {
            if !matches!(line, Line::Rejoining) {
                continue;
            }
            let nick = self.nick_at(run, *at);
            let ended = notices.iter().any(|(time, notice)| {
                *time >= since && *time <= *at && *notice == Notice::LeftServer(nick.clone())
            });
            let restarted = !durable
                && self
                    .model
                    .restarts
                    .iter()
                    .any(|time| *time >= since && *time <= *at);
            // A session ended on disk just before a failure: its notice was
            // held for its record, never shown, and recovery has it ended.
            let ended_on_disk = self
                .observations
                .server
                .lifetimes
                .iter()
                .skip(1)
                .any(|lifetime| {
                    lifetime.started >= since
                        && lifetime.started <= *at
                        && lifetime.up
                        && !lifetime.members.contains(&nick)
                });
            let ended = ended || ended_on_disk;
            self.expect(
                Property::NoSpuriousRejoin,
                ended || restarted,
                About::client(who).at(*at),
                || format!("the server forgot the session of {nick}, which had not ended"),
            );
            since = *at;
        }
    }

    /// Every message typed reached its stream, or the user was told it may
    /// not have.
    fn sends_resolved(&mut self, who: &str, run: &RunRecord) {
        let mut logged: BTreeSet<&str> = BTreeSet::new();
        for log in self.model.rooms.values() {
            for logged_event in log.events.values() {
                if let Event::Message { text, .. } = &logged_event.event {
                    logged.insert(text);
                }
            }
        }
        for stream in self.model.privates.values() {
            logged.extend(stream.values().map(|event| event.text.as_str()));
        }
        let missing = run
            .typed
            .iter()
            .filter_map(|(_, line)| typed_message(line))
            .filter(|text| !logged.contains(text))
            .count();
        let reported: usize = run
            .shown
            .iter()
            .map(|(_, line)| match line {
                Line::Undelivered(count) | Line::Unsent(count) => *count,
                Line::NotSent(_) => 1,
                _ => 0,
            })
            .sum();
        self.expect(Property::SendsResolved, missing <= reported, About::client(who), || {
            format!("{missing} typed messages never reached a stream, but only {reported} were reported")
        });
    }

    /// A client still running at the end has seen (or been told it missed)
    /// every event of every room it is in.
    fn liveness_delivery(&mut self, who: &str, run: &RunRecord) {
        let mut covered: BTreeMap<String, (Option<RoomId>, Seq)> = BTreeMap::new();
        for (at, line) in &run.shown {
            match line {
                Line::Rejoining => covered.clear(),
                Line::Parted(room) => {
                    covered.remove(room);
                }
                Line::Gap {
                    room: Some(room),
                    count,
                } => {
                    if let Some(entry) = covered.get_mut(room) {
                        entry.1 += count;
                    }
                }
                _ => {
                    if let Some((room, seq, event)) = line_event(line) {
                        let entry = covered.entry(room.to_owned()).or_insert((None, 0));
                        if entry.0.is_none() {
                            entry.0 = self.model.bind(room, seq, &event, *at);
                        }
                        entry.1 = seq;
                    }
                }
            }
        }
        for (room, (id, seq)) in covered {
            let Some(id) = id else { continue };
            let last = self.model.rooms[&id].last_seq();
            self.expect(
                Property::LivenessDelivery,
                seq == last,
                About::client(who).seqs(vec![seq, last]),
                || format!("at the end it had shown events of {room} up to {seq} of {last}"),
            );
        }
    }

    /// The latest moment by which a member detached at `from` must have
    /// been announced as left: the heartbeat timeout and the grace period,
    /// each started again by a server restart that falls within.
    fn departure_deadline(&self, from: Duration) -> Duration {
        let config = &self.observations.room_config;
        let mut deadline = from + config.heartbeat_timeout + config.session_grace + SLACK;
        // A restart shortly after the deadline counts too: the write of the
        // departure itself may be what failed, and the supervisor's restart
        // (with its failed attempts) takes a few seconds.
        for restart in &self.model.restarts {
            if *restart > from && *restart <= deadline + RESTART_WINDOW {
                deadline = deadline.max(*restart + config.session_grace + SLACK);
            }
        }
        deadline
    }

    /// A crashed member is announced as left in each of its rooms, within
    /// the bound.
    fn crash_announced(&mut self, host: &str, run: &RunRecord, crashed_at: Duration) {
        if run.outcome.is_some_and(|(ended, _)| ended <= crashed_at) {
            return; // It had left; another session may hold its nickname now.
        }
        let got_in = run.shown.iter().any(|(at, line)| {
            *at <= crashed_at && matches!(line, Line::YouAreIn { .. } | Line::Resumed(_))
        });
        if !got_in {
            return; // Never let in (a refused impostor): nothing to announce.
        }
        let nick = self.nick_at(run, crashed_at);
        let deadline = self.departure_deadline(crashed_at);
        let mut results = Vec::new();
        for (id, log) in &self.model.rooms {
            let member = super::membership::member_before(log, &nick, crashed_at);
            if !member {
                continue;
            }
            // A rename in flight at the crash may still have been made.
            let renamed = self.nick_at(run, deadline);
            let announced = log.events.values().any(|logged| {
                logged.at > crashed_at
                    && logged.at <= deadline
                    && (logged.event == Event::Left(nick.clone())
                        || logged.event == Event::Left(renamed.clone()))
            });
            // Its departure emptied the room, which was freed (it held no
            // messages) before anyone saw it: a restart rebuilt no such room.
            let freed = self.observations.server.lifetimes.iter().any(|lifetime| {
                lifetime.up
                    && lifetime.started > crashed_at
                    && lifetime.started <= deadline
                    && !lifetime.rooms.iter().any(|room| room.id == *id)
            });
            results.push((log.name.clone(), announced || freed));
        }
        for (room, announced) in results {
            self.expect(Property::CrashAnnounced, announced, About::client(&format!("{host} ({nick})")).at(crashed_at), || {
                format!("crashed at {crashed_at:?} and was not announced as left in {room} by {deadline:?}")
            });
        }
    }

    /// Whether the server had a connection of `nick` attached at `at`: it
    /// was let in or resumed, and no restart (which drops every
    /// connection) came after.
    fn attached_at(&self, nick: &str, at: Duration) -> bool {
        let attached =
            self.observations
                .server
                .notices
                .iter()
                .rev()
                .find_map(|(time, notice)| {
                    let named = match notice {
                        Notice::Nickname { nick: named, .. }
                        | Notice::Resumed { nick: named, .. } => named,
                        _ => return None,
                    };
                    (*time <= at && named == nick).then_some(*time)
                });
        attached.is_some_and(|since| {
            !self
                .model
                .restarts
                .iter()
                .any(|restart| *restart > since && *restart <= at)
        })
    }

    pub fn bounded_queues(&mut self) {
        let peak = self.observations.server.queued_bytes_peak;
        let limit = self.observations.queue_bytes_max;
        self.expect(
            Property::BoundedQueues,
            peak <= limit,
            About::default(),
            || format!("{peak} bytes were queued for one connection; the limit is {limit}"),
        );
    }

    /// A client that stops reading while connected loses that connection
    /// within the bound (dropped for its full queue, or given up for
    /// silence), so that it cannot hold the server's memory.
    pub fn stopped_readers(&mut self) {
        let observations = self.observations;
        let bound = observations.session_config.heartbeat_timeout
            + observations.room_config.heartbeat_timeout
            + SLACK;
        let notices = &observations.server.notices;
        let mut results = Vec::new();
        for record in &observations.clients {
            for &(start, end) in &record.freezes {
                let restarted = self
                    .model
                    .restarts
                    .iter()
                    .any(|at| *at >= start && *at <= start + bound);
                if end.saturating_sub(start) < bound
                    || restarted
                    || record.crashed_at.is_some_and(|crash| crash < start + bound)
                {
                    continue;
                }
                let Some(run) = record
                    .runs
                    .iter()
                    .rev()
                    .find(|run| run.started <= start && online_at(run, start))
                else {
                    continue;
                };
                let nick = self.nick_at(run, start);
                if !self.attached_at(&nick, start) {
                    continue; // The server holds no connection of it to drop.
                }
                // Renamed meanwhile, it is dropped under its new nickname.
                let renamed = self.nick_at(run, start + bound);
                let dropped = notices.iter().any(|(at, notice)| {
                    *at >= start
                        && *at <= start + bound
                        && matches!(notice, Notice::Dropped { nick: Some(dropped), .. } if *dropped == nick || *dropped == renamed)
                });
                results.push((dropped, format!("{} ({nick})", record.host), start));
            }
        }
        for (dropped, who, start) in results {
            self.expect(
                Property::StoppedReaderDropped,
                dropped,
                About::client(&who).at(start),
                || format!("stopped reading at {start:?} and kept its connection past {bound:?}"),
            );
        }
    }
}

/// Whether the run was connected and in a room at `at`, by what it showed.
fn online_at(run: &RunRecord, at: Duration) -> bool {
    let mut online = false;
    for (time, line) in &run.shown {
        if *time > at {
            break;
        }
        match line {
            Line::YouAreIn { .. } | Line::Resumed(_) => online = true,
            Line::Reconnecting(_)
            | Line::Rejoining
            | Line::ConnectionLost(_)
            | Line::Disconnecting => {
                online = false;
            }
            _ => {}
        }
    }
    online && run.outcome.is_none_or(|(ended, _)| ended > at)
}
