//! The processes' report files, read back into the simulation's
//! [`Observations`], so that the oracle judges a real run exactly as it
//! judges a simulated one. Stamps become times on the run's clock; what
//! happened after the run's end (the processes being stopped) is left out.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chat_core::report::{self, ClientReport, ServerReport, Stamped};
use serde::de::DeserializeOwned;
use sim_tests::scenario::{FaultKind, Scenario};
use sim_tests::world::{
    ClientRecord, Lifetime, Observations, RunRecord, ServerEvent, ServerRecord, StreamOf,
};

use crate::plan;
use crate::processes::{Clock, Files, HostLog, ServerLog};

/// What the run itself knows, besides the files.
pub struct RunLogs {
    /// What happened to the server.
    pub server: ServerLog,
    /// What each client host did, in host order.
    pub hosts: Vec<HostLog>,
    /// Faults applied, per kind.
    pub faults_applied: BTreeMap<FaultKind, usize>,
}

/// Reads every report of the run into the oracle's observations.
pub fn observations(
    scenario: &Scenario,
    files: &Files,
    clock: &Clock,
    logs: RunLogs,
) -> anyhow::Result<Observations> {
    let end = scenario.end();
    let server_reports = read::<ServerReport>(&files.server_reports())?;
    let mut server = server_record(&server_reports, clock, end);
    server.crashes = logs.server.crashes.clone();
    let mut clients = Vec::new();
    for (script, host) in scenario.clients.iter().zip(&logs.hosts) {
        let mut runs = Vec::new();
        for started in &host.runs {
            let reports = read::<ClientReport>(&started.transcript)?;
            let mut run = run_record(&reports, clock, end);
            run.nick = started.nick.clone();
            run.started = started.started;
            runs.push(run);
        }
        clients.push(ClientRecord {
            host: script.host.clone(),
            runs,
            crashed_at: host.crashed_at,
            freezes: script.freezes.clone(),
        });
    }
    Ok(Observations {
        scenario: scenario.clone(),
        server,
        clients,
        simulated: end,
        faults_applied: logs.faults_applied,
        trace: String::new(),
        room_config: plan::room_config(),
        session_config: plan::session_config(),
        queue_bytes_max: plan::QUEUE_BYTES_MAX,
        adversaries: Vec::new(),
        buggify_fired: BTreeMap::new(),
    })
}

/// A report file's records; a file never written (a process killed before
/// it wrote anything) has none.
fn read<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<Stamped<T>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).with_context(|| format!("read {}", path.display())),
    };
    report::parse_lines(&text).with_context(|| format!("in {}", path.display()))
}

fn server_record(reports: &[Stamped<ServerReport>], clock: &Clock, end: Duration) -> ServerRecord {
    let mut server = ServerRecord::default();
    for stamped in reports {
        let at = clock.relative(stamped.at);
        if at > end {
            break;
        }
        add_server_report(&mut server, at, &stamped.record);
    }
    server
}

fn add_server_report(server: &mut ServerRecord, at: Duration, record: &ServerReport) {
    if let ServerReport::Starting = record {
        server.lifetimes.push(Lifetime {
            started: at,
            ..Lifetime::default()
        });
        return;
    }
    match record {
        ServerReport::Event { room, frame } => server.events.push(ServerEvent {
            at,
            stream: StreamOf::Room(*room),
            frame: frame.clone(),
        }),
        ServerReport::Private { owner, frame } => server.events.push(ServerEvent {
            at,
            stream: StreamOf::Private(*owner),
            frame: frame.clone(),
        }),
        ServerReport::Notice(notice) => server.notices.push((at, notice.clone())),
        ServerReport::QueuePeak(peak) => {
            server.queued_bytes_peak = server.queued_bytes_peak.max(*peak);
        }
        _ => {}
    }
    let Some(lifetime) = server.lifetimes.last_mut() else {
        return; // Nothing of a lifetime comes before its start.
    };
    match record {
        ServerReport::Recovered {
            rooms,
            privates,
            members,
            recovery,
        } => {
            lifetime.rooms = rooms.clone();
            lifetime.privates = privates.clone();
            lifetime.members = members.clone();
            lifetime.recovery = *recovery;
            lifetime.up = true;
        }
        ServerReport::Failed(error) => lifetime.failed = Some(error.clone()),
        ServerReport::Stopped(error) => {
            lifetime.stopped = Some(error.clone());
            lifetime.stopped_at = Some(at);
        }
        _ => {}
    }
}

fn run_record(reports: &[Stamped<ClientReport>], clock: &Clock, end: Duration) -> RunRecord {
    let mut run = RunRecord::default();
    for stamped in reports {
        let at = clock.relative(stamped.at);
        if at > end {
            break;
        }
        match &stamped.record {
            ClientReport::Typed(line) => run.typed.push((at, line.clone())),
            ClientReport::Shown(line) => run.shown.push((at, line.clone())),
            ClientReport::Ended(outcome) => run.outcome = Some((at, *outcome)),
        }
    }
    run
}
