//! The fault plan: for each fault kind a run enabled, one to three faults
//! at random times of the active phase.

use std::time::Duration;

use rand::Rng;

use super::{ClientScript, DiskOperation, FaultEvent, FaultKind};
use crate::seeds::SeedRng;

/// Plans the faults of one kind; returns how many.
pub fn plan(
    rng: &mut SeedRng,
    kind: FaultKind,
    clients: &mut [ClientScript],
    active: Duration,
    faults: &mut Vec<(Duration, FaultEvent)>,
) -> usize {
    if kind == FaultKind::LateJoin {
        return clients
            .iter()
            .filter(|client| client.runs[0].start >= Duration::from_secs(15))
            .count();
    }
    let count = rng.random_range(1..=3);
    let active_ms = u64::try_from(active.as_millis()).unwrap_or(u64::MAX);
    for _ in 0..count {
        let target = rng.random_range(0..clients.len());
        let client = clients[target].host.clone();
        let at = Duration::from_millis(rng.random_range(2_000..active_ms - 5_000));
        let length = Duration::from_millis(rng.random_range(1_000..50_000));
        let until = (at + length).min(active);
        let event = match kind {
            FaultKind::LatencySpike => FaultEvent::LatencySpike {
                client,
                max: Duration::from_millis(rng.random_range(200..3_000)),
                until,
            },
            FaultKind::Hold => FaultEvent::Hold { client, until },
            FaultKind::Partition => FaultEvent::Partition { client, until },
            FaultKind::PartitionOneWay => FaultEvent::PartitionOneWay {
                client,
                to_client: rng.random_bool(0.5),
                until,
            },
            FaultKind::LinkFailure => FaultEvent::LinkFailure {
                client,
                rate_per_mille: rng.random_range(5..100),
                until,
            },
            FaultKind::Crash => FaultEvent::Crash { client },
            FaultKind::StopReading => {
                clients[target].freezes.push((at, until));
                continue;
            }
            FaultKind::ServerCrash => FaultEvent::ServerCrash {
                down: Duration::from_millis(rng.random_range(200..5_000)),
            },
            FaultKind::DiskError => FaultEvent::DiskError {
                operation: match rng.random_range(0..3) {
                    0 => DiskOperation::Append,
                    1 => DiskOperation::Sync,
                    _ => DiskOperation::SyncDirectory,
                },
            },
            FaultKind::DiskFull => FaultEvent::DiskFull {
                until: (at + Duration::from_millis(rng.random_range(500..10_000))).min(active),
            },
            FaultKind::LateJoin => unreachable!("late joins are part of the user scripts"),
        };
        faults.push((at, event));
    }
    count
}
