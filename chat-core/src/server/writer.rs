//! The one writer of the log: group commit.
//!
//! The state machine makes one record per input and holds that input's
//! actions (acks, broadcasts, welcomes) until the record is durable. This
//! task takes every record made so far, appends them all and syncs once,
//! then tells the state machine how far the log is durable, which releases
//! the held actions. While it syncs, new records pile up for the next
//! batch: under load each sync carries many inputs, and durability costs a
//! sync per batch, not per message.
//!
//! A failed write or sync is not retried (the kernel may have dropped the
//! pages it was meant to write): the writer stops, the held actions are
//! never released, and the server stops, to be restarted and recover from
//! what is on disk.

use std::sync::Arc;

use bytes::Bytes;
use chat_net::Storage;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::room::Record;
use crate::store::{StoreError, Wal};

/// Most records written in one batch (one sync), so that one batch cannot
/// hold the log's memory or delay the release of the first for long.
const RECORDS_PER_BATCH_MAX: usize = 16 * 1024;

/// Writes records until `stop` (then everything made so far) or a failure.
pub(super) async fn persist<S: Storage>(
    shared: Arc<Shared>,
    mut wal: Wal<S>,
    stop: CancellationToken,
) -> Result<(), StoreError> {
    loop {
        let batch = take_batch(&shared);
        let Some(last) = batch.last().map(|record| record.lsn) else {
            if stop.is_cancelled() {
                return Ok(());
            }
            tokio::select! {
                biased;
                () = shared.records_ready.notified() => continue,
                () = stop.cancelled() => continue,
            }
        };
        write(&mut wal, batch).await?;
        shared.handle(|rooms, _| rooms.handle_durable(last));
    }
}

fn take_batch(shared: &Shared) -> Vec<Record> {
    let mut state = shared.lock();
    std::iter::from_fn(|| state.rooms.poll_record())
        .take(RECORDS_PER_BATCH_MAX)
        .collect()
}

/// Appends the records in order with one sync; a snapshot among them ends
/// the segment: the records before it are appended, then the snapshot
/// starts a new segment and the old ones go.
async fn write<S: Storage>(wal: &mut Wal<S>, batch: Vec<Record>) -> Result<(), StoreError> {
    let mut pending: Vec<Bytes> = Vec::with_capacity(batch.len());
    for record in batch {
        if record.snapshot {
            wal.append(&pending).await?;
            pending.clear();
            wal.checkpoint(record.bytes).await?;
        } else {
            pending.push(record.bytes);
        }
    }
    wal.append(&pending).await
}
