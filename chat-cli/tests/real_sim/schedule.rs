//! The plan's faults on the run's time line, done to real links and
//! processes as the simulation's step loop does them to turmoil's: each
//! fault starts at its time and ends at its `until`; stopped readers
//! freeze their link's server-to-client direction for their windows; at the
//! end of the active phase everything heals. At one instant, starts come
//! before the heal, and the heal before ends, as in the step loop.

use std::collections::BTreeMap;
use std::time::Duration;

use sim_tests::scenario::{FaultEvent, FaultKind, Scenario};
use tokio::sync::watch;

use crate::processes::{Clock, ServerCommand, Supervisor};
use crate::proxy::{LinkFaults, Proxy};

/// One thing the schedule does.
#[derive(Clone, Debug)]
enum Step<'a> {
    Begin(&'a FaultEvent),
    Heal,
    End(&'a FaultEvent),
    Freeze { host: usize },
    Thaw { host: usize },
}

impl Step<'_> {
    /// The order among steps at the same instant.
    fn rank(&self) -> u8 {
        match self {
            Step::Begin(_) | Step::Freeze { .. } => 0,
            Step::Heal => 1,
            Step::End(_) | Step::Thaw { .. } => 2,
        }
    }
}

/// What the schedule acts on.
pub struct Targets<'a> {
    /// Each client host's proxy, in host order.
    pub proxies: &'a [Proxy],
    /// Each client host's crash switch, in host order.
    pub crashes: &'a [watch::Sender<bool>],
    /// The server's supervisor.
    pub server: &'a Supervisor,
}

/// Applies the scenario's faults on time, heals at the end of the active
/// phase, and returns once the run is over, with the faults applied per
/// kind.
pub async fn run(
    scenario: &Scenario,
    clock: &Clock,
    targets: &Targets<'_>,
) -> BTreeMap<FaultKind, usize> {
    let mut applied = BTreeMap::new();
    let freezes: usize = scenario.clients.iter().map(|c| c.freezes.len()).sum();
    if freezes > 0 {
        applied.insert(FaultKind::StopReading, freezes);
    }
    if let Some(count) = scenario.fault_counts.get(&FaultKind::LateJoin) {
        applied.insert(FaultKind::LateJoin, *count);
    }
    let mut frozen = vec![0u32; scenario.clients.len()];
    for (at, step) in steps(scenario) {
        tokio::time::sleep_until(clock.instant(at)).await;
        match step {
            Step::Begin(event) => {
                *applied.entry(event.kind()).or_insert(0) += 1;
                begin(scenario, targets, event);
            }
            Step::End(event) => end(scenario, targets, event),
            Step::Heal => {
                for proxy in targets.proxies {
                    proxy.change(heal);
                }
            }
            Step::Freeze { host } | Step::Thaw { host } => {
                let freezing = matches!(step, Step::Freeze { .. });
                frozen[host] = if freezing {
                    frozen[host] + 1
                } else {
                    frozen[host].saturating_sub(1)
                };
                let now_frozen = frozen[host] > 0;
                targets.proxies[host].change(|faults| faults.frozen = now_frozen);
            }
        }
    }
    tokio::time::sleep_until(clock.instant(scenario.end())).await;
    applied
}

/// Every step, in time order.
fn steps(scenario: &Scenario) -> Vec<(Duration, Step<'_>)> {
    let mut steps = vec![(scenario.heal_at(), Step::Heal)];
    for (at, event) in &scenario.faults {
        steps.push((*at, Step::Begin(event)));
        if let Some(until) = until_of(event)
            && until >= *at
        {
            steps.push((until, Step::End(event)));
        }
    }
    for (host, client) in scenario.clients.iter().enumerate() {
        for (start, end) in &client.freezes {
            steps.push((*start, Step::Freeze { host }));
            steps.push((*end, Step::Thaw { host }));
        }
    }
    // Stable: faults of one instant keep the plan's order.
    steps.sort_by_key(|(at, step)| (*at, step.rank()));
    steps
}

fn until_of(event: &FaultEvent) -> Option<Duration> {
    match event {
        FaultEvent::LatencySpike { until, .. }
        | FaultEvent::Hold { until, .. }
        | FaultEvent::Partition { until, .. }
        | FaultEvent::PartitionOneWay { until, .. }
        | FaultEvent::LinkFailure { until, .. }
        | FaultEvent::DiskFull { until } => Some(*until),
        FaultEvent::Crash { .. }
        | FaultEvent::ServerCrash { .. }
        | FaultEvent::DiskError { .. } => None,
    }
}

/// The host index of a client host's name.
fn host_index(scenario: &Scenario, client: &str) -> Option<usize> {
    scenario
        .clients
        .iter()
        .position(|script| script.host == client)
}

fn begin(scenario: &Scenario, targets: &Targets<'_>, event: &FaultEvent) {
    let on_link = |client: &str, change: &dyn Fn(&mut LinkFaults)| {
        if let Some(host) = host_index(scenario, client) {
            targets.proxies[host].change(change);
        }
    };
    match event {
        FaultEvent::LatencySpike { client, max, .. } => {
            on_link(client, &|faults| faults.delay_max = *max);
        }
        FaultEvent::Hold { client, .. } => on_link(client, &|faults| faults.held = true),
        FaultEvent::Partition { client, .. } => on_link(client, &|faults| faults.cut = true),
        FaultEvent::PartitionOneWay {
            client, to_client, ..
        } => on_link(client, &|faults| {
            if *to_client {
                faults.cut_to_client = true;
            } else {
                faults.cut_to_server = true;
            }
        }),
        FaultEvent::LinkFailure {
            client,
            rate_per_mille,
            ..
        } => on_link(client, &|faults| faults.failure_per_mille = *rate_per_mille),
        FaultEvent::Crash { client } => {
            if let Some(host) = host_index(scenario, client) {
                targets.crashes[host].send_replace(true);
            }
        }
        FaultEvent::ServerCrash { down } => {
            targets.server.command(ServerCommand::Crash { down: *down });
        }
        // Left out of real runs by the plan.
        FaultEvent::DiskError { .. } | FaultEvent::DiskFull { .. } => {}
    }
}

fn end(scenario: &Scenario, targets: &Targets<'_>, event: &FaultEvent) {
    let client = match event {
        FaultEvent::LatencySpike { client, .. }
        | FaultEvent::Hold { client, .. }
        | FaultEvent::Partition { client, .. }
        | FaultEvent::PartitionOneWay { client, .. }
        | FaultEvent::LinkFailure { client, .. } => client,
        FaultEvent::Crash { .. }
        | FaultEvent::ServerCrash { .. }
        | FaultEvent::DiskError { .. }
        | FaultEvent::DiskFull { .. } => return,
    };
    let Some(host) = host_index(scenario, client) else {
        return;
    };
    targets.proxies[host].change(|faults| match event {
        FaultEvent::LatencySpike { .. } => faults.delay_max = Duration::ZERO,
        FaultEvent::Hold { .. } => faults.held = false,
        FaultEvent::Partition { .. } | FaultEvent::PartitionOneWay { .. } => {
            faults.cut = false;
            faults.cut_to_client = false;
            faults.cut_to_server = false;
            // Its connections' peers gave up on them long ago.
            faults.resets += 1;
        }
        FaultEvent::LinkFailure { .. } => faults.failure_per_mille = 0,
        _ => {}
    });
}

/// The quiet phase: every link healthy (a stopped reader's window has
/// ended by then). A cut link's connections are reset, as at a cut's end.
fn heal(faults: &mut LinkFaults) {
    let was_cut = faults.cut || faults.cut_to_client || faults.cut_to_server;
    *faults = LinkFaults {
        frozen: faults.frozen,
        resets: faults.resets + u64::from(was_cut),
        ..LinkFaults::default()
    };
}
