//! The step loop: advances the simulation tick by tick, applies each fault
//! on time, restarts the server as a supervisor would, and heals everything
//! at the end of the active phase.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ClientRecord, ServerDisk, ServerRecord, Shared, lock};
use crate::scenario::{DiskOperation, FaultEvent, FaultKind, SERVER_HOST, Scenario};

/// How long a supervisor waits before starting a server that stopped by
/// itself (a storage failure) or could not start.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The step loop's state.
struct Loop<'a> {
    scenario: &'a Scenario,
    clients: &'a [Shared<ClientRecord>],
    server: &'a Shared<ServerRecord>,
    disk: &'a ServerDisk,
    applied: BTreeMap<FaultKind, usize>,
    /// When the server is to be started again, if it is down.
    restart_at: Option<Duration>,
}

/// Steps the simulation to the scenario's end, applying faults on time and
/// healing everything at the end of the active phase.
pub(super) fn step_loop(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    clients: &[Shared<ClientRecord>],
    server: &Shared<ServerRecord>,
    disk: &ServerDisk,
) -> BTreeMap<FaultKind, usize> {
    let mut state = Loop {
        scenario,
        clients,
        server,
        disk,
        applied: BTreeMap::new(),
        restart_at: None,
    };
    for client in &scenario.clients {
        if !client.freezes.is_empty() {
            *state.applied.entry(FaultKind::StopReading).or_insert(0) += client.freezes.len();
        }
    }
    if let Some(count) = scenario.fault_counts.get(&FaultKind::LateJoin) {
        state.applied.insert(FaultKind::LateJoin, *count);
    }
    let mut pending = scenario.faults.iter().peekable();
    let mut healed = false;
    while sim.elapsed() < scenario.end() {
        let elapsed = sim.elapsed();
        while let Some((_, event)) = pending.next_if(|(at, _)| *at <= elapsed) {
            state.apply(sim, event, elapsed);
        }
        if !healed && elapsed >= scenario.heal_at() {
            heal(sim, scenario, disk);
            healed = true;
        }
        repair_expired(sim, scenario, disk, elapsed);
        state.supervise(sim, elapsed);
        if let Err(error) = sim.step() {
            panic!("a simulated host failed: {error}");
        }
    }
    state.applied
}

impl Loop<'_> {
    fn count(&mut self, kind: FaultKind) {
        *self.applied.entry(kind).or_insert(0) += 1;
    }

    fn apply(&mut self, sim: &mut turmoil::Sim<'_>, event: &FaultEvent, now: Duration) {
        tracing::info!("fault at {:.3}s: {event:?}", now.as_secs_f64());
        match event {
            FaultEvent::Crash { client } => {
                if sim.is_host_running(client.as_str()) {
                    sim.crash(client.as_str());
                    let index = self
                        .scenario
                        .clients
                        .iter()
                        .position(|script| script.host == *client);
                    if let Some(index) = index {
                        lock(&self.clients[index]).crashed_at.get_or_insert(now);
                    }
                }
                self.count(FaultKind::Crash);
            }
            FaultEvent::ServerCrash { down } => {
                if sim.is_host_running(SERVER_HOST) {
                    sim.crash(SERVER_HOST);
                    lock(self.server).crashes.push(now);
                }
                self.restart_at = Some(
                    self.restart_at
                        .map_or(now + *down, |at| at.max(now + *down)),
                );
                self.count(FaultKind::ServerCrash);
            }
            FaultEvent::DiskError { operation } => {
                match operation {
                    DiskOperation::Append => self.disk.fail_next_append(),
                    DiskOperation::Sync => self.disk.fail_next_sync(),
                    DiskOperation::SyncDirectory => self.disk.fail_next_sync_dir(),
                }
                self.count(FaultKind::DiskError);
            }
            FaultEvent::DiskFull { .. } => {
                self.disk.set_full(true);
                self.count(FaultKind::DiskFull);
            }
            other => {
                apply_network_fault(sim, other);
                self.count(other.kind());
            }
        }
    }

    /// Starts the server again once its time has come, and notices a
    /// server that stopped by itself: a supervisor starts it again shortly.
    fn supervise(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration) {
        match self.restart_at {
            Some(at) if now >= at => {
                tracing::info!("starting the server again at {:.3}s", now.as_secs_f64());
                sim.bounce(SERVER_HOST);
                self.restart_at = None;
            }
            Some(_) => {}
            None if !sim.is_host_running(SERVER_HOST) => {
                self.restart_at = Some(now + RESTART_DELAY);
            }
            None => {}
        }
    }
}

fn apply_network_fault(sim: &mut turmoil::Sim<'_>, event: &FaultEvent) {
    match event {
        FaultEvent::LatencySpike { client, max, .. } => {
            sim.set_link_max_message_latency(SERVER_HOST, client.as_str(), *max);
        }
        FaultEvent::Hold { client, .. } => sim.hold(SERVER_HOST, client.as_str()),
        FaultEvent::Partition { client, .. } => sim.partition(SERVER_HOST, client.as_str()),
        FaultEvent::PartitionOneWay {
            client,
            to_client: true,
            ..
        } => sim.partition_oneway(SERVER_HOST, client.as_str()),
        FaultEvent::PartitionOneWay {
            client,
            to_client: false,
            ..
        } => sim.partition_oneway(client.as_str(), SERVER_HOST),
        FaultEvent::LinkFailure {
            client,
            rate_per_mille,
            ..
        } => {
            sim.set_link_fail_rate(
                SERVER_HOST,
                client.as_str(),
                f64::from(*rate_per_mille) / 1000.0,
            );
        }
        FaultEvent::Crash { .. }
        | FaultEvent::ServerCrash { .. }
        | FaultEvent::DiskError { .. }
        | FaultEvent::DiskFull { .. } => unreachable!("not a network fault"),
    }
}

/// Ends the faults whose time is up (the `until` of each).
fn repair_expired(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    disk: &ServerDisk,
    now: Duration,
) {
    let tick = scenario.tick;
    for (at, event) in &scenario.faults {
        let until = match event {
            FaultEvent::LatencySpike { until, .. }
            | FaultEvent::Hold { until, .. }
            | FaultEvent::Partition { until, .. }
            | FaultEvent::PartitionOneWay { until, .. }
            | FaultEvent::LinkFailure { until, .. }
            | FaultEvent::DiskFull { until } => *until,
            FaultEvent::Crash { .. }
            | FaultEvent::ServerCrash { .. }
            | FaultEvent::DiskError { .. } => continue,
        };
        // Exactly once: in the step where `until` is reached.
        if until < *at || !(until <= now && now < until + tick) {
            continue;
        }
        end_fault(sim, event, scenario, disk);
    }
}

fn end_fault(
    sim: &mut turmoil::Sim<'_>,
    event: &FaultEvent,
    scenario: &Scenario,
    disk: &ServerDisk,
) {
    tracing::info!(
        "fault ends at {:.3}s: {event:?}",
        sim.elapsed().as_secs_f64()
    );
    match event {
        FaultEvent::LatencySpike { client, .. } => {
            sim.set_link_max_message_latency(SERVER_HOST, client.as_str(), scenario.max_latency);
        }
        FaultEvent::Hold { client, .. } => sim.release(SERVER_HOST, client.as_str()),
        FaultEvent::Partition { client, .. } | FaultEvent::PartitionOneWay { client, .. } => {
            sim.repair(SERVER_HOST, client.as_str());
        }
        FaultEvent::LinkFailure { client, .. } => {
            sim.set_link_fail_rate(SERVER_HOST, client.as_str(), 0.0);
            sim.repair(SERVER_HOST, client.as_str());
        }
        FaultEvent::DiskFull { .. } => disk.set_full(false),
        FaultEvent::Crash { .. }
        | FaultEvent::ServerCrash { .. }
        | FaultEvent::DiskError { .. } => {}
    }
}

/// The quiet phase begins: every link healthy, nothing held, no failures,
/// room on the disk.
fn heal(sim: &mut turmoil::Sim<'_>, scenario: &Scenario, disk: &ServerDisk) {
    tracing::info!("healing the network at {:.3}s", sim.elapsed().as_secs_f64());
    sim.set_fail_rate(0.0);
    disk.set_full(false);
    for client in &scenario.clients {
        let host = client.host.as_str();
        sim.release(SERVER_HOST, host);
        sim.repair(SERVER_HOST, host);
        sim.set_link_fail_rate(SERVER_HOST, host, 0.0);
        sim.set_link_max_message_latency(SERVER_HOST, host, scenario.max_latency);
    }
}
