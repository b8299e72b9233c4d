//! Where a server's state comes from: memory, or a data directory whose log
//! is recovered at start.

use std::path::PathBuf;
use std::time::Duration;

use chat_net::Storage;
use tokio::time::Instant;

use super::ServerError;
use crate::room::{RoomConfig, Rooms};
use crate::store::{Recovered, RecoveryStats, Wal, WalConfig, segment};

/// How the server keeps its state.
pub enum Keeping<S> {
    /// Nothing survives a restart (`--in-memory`).
    InMemory,
    /// In a data directory: acknowledged means on disk.
    Durable {
        /// The file system.
        storage: S,
        /// The data directory.
        dir: PathBuf,
    },
}

/// What a server starts from: its state machine and, when it keeps its
/// data, the log it writes to.
pub struct Start<S: Storage> {
    /// The state machine.
    pub rooms: Rooms,
    /// The log, when the server keeps its data.
    pub wal: Option<Wal<S>>,
    /// What recovering the log found, when there is one.
    pub recovered: Option<RecoveryStats>,
}

/// The log's limits for the server: a snapshot (the whole retained state)
/// must fit in one record.
pub fn wal_config() -> WalConfig {
    WalConfig {
        record_bytes_max: segment::RECORD_BYTES_LIMIT,
        segment_bytes_max: 2 * u64::from(segment::RECORD_BYTES_LIMIT),
    }
}

/// Builds the state machine: fresh, or rebuilt from the data directory.
/// `token_seed` seeds the session tokens; `new_incarnation` names a new
/// data directory (or, in memory, this run).
pub async fn open<S: Storage>(
    keeping: Keeping<S>,
    config: &RoomConfig,
    token_seed: [u8; 32],
    new_incarnation: impl FnOnce() -> String,
) -> Result<Start<S>, ServerError> {
    tracing::info!("Server is starting...");
    let (storage, dir) = match keeping {
        Keeping::InMemory => {
            tracing::info!("Keeping everything in memory only: a restart loses it.");
            let rooms = Rooms::new(config.clone(), new_incarnation(), token_seed, false);
            return Ok(Start {
                rooms,
                wal: None,
                recovered: None,
            });
        }
        Keeping::Durable { storage, dir } => (storage, dir),
    };
    tracing::info!("Keeping data in {}.", dir.display());
    let started = Instant::now();
    let (wal, recovered) = Wal::open(storage, &dir, wal_config(), new_incarnation).await?;
    for warning in &recovered.warnings {
        tracing::warn!("{warning}");
    }
    let rooms = restore(config, token_seed, &recovered)?;
    report(&rooms, &recovered, started.elapsed());
    Ok(Start {
        rooms,
        wal: Some(wal),
        recovered: Some(recovered.stats),
    })
}

fn restore(
    config: &RoomConfig,
    token_seed: [u8; 32],
    recovered: &Recovered,
) -> Result<Rooms, ServerError> {
    let records = recovered.records.iter().map(|record| &record[..]);
    let rooms = Rooms::restore(
        config.clone(),
        recovered.incarnation.clone(),
        token_seed,
        recovered.snapshot.as_deref(),
        records,
        Duration::ZERO,
    )?;
    Ok(rooms)
}

fn report(rooms: &Rooms, recovered: &Recovered, took: Duration) {
    let stats = &recovered.stats;
    tracing::info!(
        "Recovered {} sessions and {} rooms from {} records in {} segments ({} bytes) in {} ms.",
        rooms.member_count(),
        rooms.room_names().len(),
        stats.records_read,
        stats.segments_read,
        stats.bytes_read,
        took.as_millis()
    );
}
