//! The server's durable state: a checksummed, segmented write-ahead log of
//! opaque records, over any [`chat_net::Storage`].
//!
//! Why a log of our own: the embedded stores that were checked either bypass
//! a pluggable file system for their directory syncs or are unmaintained,
//! and only a log written through our own `Storage` trait can be crashed,
//! torn and corrupted deterministically in simulation.
//!
//! # Use
//!
//! [`Wal::open`] locks the data directory, recovers what it holds
//! ([`Recovered`]: the newest snapshot and the records after it) and returns
//! a log to append to. [`Wal::append`] writes a batch of records and syncs
//! once (group commit: the caller batches). [`Wal::checkpoint`] starts a new
//! segment with a snapshot of the caller's whole retained state and removes
//! every older segment: that is how the log stays bounded.
//!
//! # The guarantee
//!
//! - Every record of every `append` that returned `Ok`, and the snapshot of
//!   every `checkpoint` that returned `Ok`, is recovered (records before the
//!   newest recovered snapshot are not returned: the snapshot holds them).
//! - What is recovered is a prefix of what was appended, record by record, in
//!   order and unchanged: of a batch whose `append` did not return `Ok` (the
//!   process crashed, or a write or sync failed), any prefix of its records
//!   may be recovered, none to all, but never a record without those before
//!   it, never a part of a record, never something that was not appended.
//!   An interrupted checkpoint either happened (recovery starts from its
//!   snapshot) or did not (recovery starts from the snapshot before, with
//!   every record since).
//! - What a recovery returns is durable before [`Wal::open`] returns, so a
//!   later recovery returns it again.
//! - Any failed write or sync ends the `Wal`: every later `append` or
//!   `checkpoint` fails with [`StoreError::Failed`]. After a failed `fsync`
//!   the kernel may have dropped the dirty pages, so a retry that succeeds
//!   proves nothing; drop the `Wal`, reopen it, and trust what recovery reads.
//!
//! # Damage
//!
//! A torn or corrupt tail of the newest segment (what a crash during a write
//! leaves) is cut off, durably, with a warning that names the segment, the
//! offset and the bytes dropped. Damage anywhere else (in an older, sealed
//! segment, a missing segment, a damaged `meta` file, a format newer than
//! this program's) stops [`Wal::open`] with an error that names the file and
//! says what to do: the log never starts with a silently wrong history. A
//! read that finds damage is repeated before the damage is believed, since a
//! read can return a flipped byte once (turmoil's `corruption_probability`).
//!
//! # Files
//!
//! The directory holds `meta` ([`meta`]: format version and incarnation id)
//! and segments `00000000000000000001.log`, `…2.log`, … ([`segment`]: a
//! header, then frames of length, kind, checksum and payload). Every new file
//! is synced and then its directory synced before it is relied on.
//!
//! Every loop is bounded by what the directory lists and what the files
//! hold; every buffer by [`WalConfig::record_bytes_max`],
//! [`WalConfig::segment_bytes_max`] and the hard limits
//! [`segment::RECORD_BYTES_LIMIT`] and [`segment::SEGMENT_BYTES_LIMIT`].

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use chat_net::{Storage, StorageError, StorageFile};

pub mod meta;
mod recovery;
pub mod segment;
#[cfg(test)]
mod tests;

use segment::{
    RECORD_BYTES_LIMIT, RecordKind, SEGMENT_BYTES_LIMIT, SEGMENT_HEADER_BYTES, SegmentHeader,
};

/// How often a read that found damage is tried in all, before the damage is
/// believed.
const READ_ATTEMPTS_MAX: usize = 3;

/// Limits of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// A segment grows up to this many bytes; the record that would pass it
    /// goes to a new segment (a segment always takes at least one record).
    pub segment_bytes_max: u64,
    /// The largest record (and snapshot) payload, in bytes. Each segment
    /// stores the limit it was written with, so lowering it later does not
    /// make older records unreadable.
    pub record_bytes_max: u32,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: 64 * 1024 * 1024,
            record_bytes_max: 4 * 1024 * 1024,
        }
    }
}

impl WalConfig {
    fn validate(&self) -> Result<(), StoreError> {
        if self.record_bytes_max > RECORD_BYTES_LIMIT {
            return Err(StoreError::InvalidConfig(format!(
                "record_bytes_max is {}, over the limit of {RECORD_BYTES_LIMIT}",
                self.record_bytes_max
            )));
        }
        let smallest =
            SEGMENT_HEADER_BYTES as u64 + segment::frame_bytes(self.record_bytes_max as usize);
        if self.segment_bytes_max < smallest || self.segment_bytes_max > SEGMENT_BYTES_LIMIT {
            return Err(StoreError::InvalidConfig(format!(
                "segment_bytes_max is {}; with record_bytes_max {} it must be {smallest} to {SEGMENT_BYTES_LIMIT}, so that one largest record fits a segment",
                self.segment_bytes_max, self.record_bytes_max
            )));
        }
        Ok(())
    }
}

/// Errors of the write-ahead log. Each says what is wrong and, where a person
/// must act, what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A storage call failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The configuration (or the incarnation id) is out of bounds.
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
    /// Another server holds the directory.
    #[error(
        "the data directory {} is in use by another server (its lock is held): stop that server, or give this one another directory",
        .dir.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// A file was written by a newer version of this program.
    #[error(
        "{} was written in format version {found}, newer than this program's version {supported}: run a newer version of the server on this directory",
        .path.display()
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The newest this program reads.
        supported: u32,
    },
    /// The `meta` file is damaged.
    #[error(
        "{} is damaged ({reason}): restore the data directory from a backup, or move the whole directory away to start with an empty log",
        .path.display()
    )]
    MetaDamaged {
        /// The meta file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Segments exist without a `meta` file.
    #[error(
        "{} is missing but the directory holds log segments: restore it from a backup, or move the segments away to start with an empty log",
        .path.display()
    )]
    MetaMissing {
        /// Where the meta file should be.
        path: PathBuf,
    },
    /// A segment that recovery needs is damaged.
    #[error(
        "segment {} is damaged at offset {offset} ({reason}): restore the data directory from a backup, or accept losing every record from there on by moving this segment and every later one out of the directory",
        .path.display()
    )]
    SegmentDamaged {
        /// The segment file.
        path: PathBuf,
        /// Where the damage begins.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment that recovery needs does not exist.
    #[error(
        "segment {} is missing, and the log after it does not begin with a snapshot: restore it from a backup, or accept losing the records after it by moving every later segment out of the directory",
        .path.display()
    )]
    SegmentMissing {
        /// Where the segment should be.
        path: PathBuf,
    },
    /// A record is over [`WalConfig::record_bytes_max`]; nothing was written.
    #[error("a record of {size} bytes is over the limit of {bytes_max} bytes")]
    RecordTooLarge {
        /// The record's size.
        size: usize,
        /// The limit.
        bytes_max: u32,
    },
    /// An earlier write or sync failed, so the log takes no more.
    #[error(
        "the log takes no more writes since an earlier write or sync failed ({cause}): restart the server so that it recovers from disk"
    )]
    Failed {
        /// The first failure.
        cause: String,
    },
}

/// What a recovery found, besides the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryStats {
    /// Segments read, from the one with the newest snapshot to the newest.
    pub segments_read: u64,
    /// Records returned (the snapshot not counted).
    pub records_read: u64,
    /// Bytes of the segments read.
    pub bytes_read: u64,
    /// Bytes cut off the newest segment's tail.
    pub tail_bytes_dropped: u64,
    /// Segments older than the newest snapshot, removed.
    pub segments_removed: u64,
    /// Reads repeated because the first showed damage.
    pub reads_repeated: u64,
}

/// What [`Wal::open`] recovered from the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The directory's incarnation id, kept for as long as the directory.
    pub incarnation: String,
    /// The newest snapshot, if a checkpoint was ever made.
    pub snapshot: Option<Bytes>,
    /// The records appended after that snapshot, in order. They are slices
    /// of the segment files as read (no copy): keeping one keeps its
    /// segment's buffer alive, so decode them and let them go.
    pub records: Vec<Bytes>,
    /// What recovery repaired, one sentence each (a cut tail, removed
    /// leftovers); for the server's log.
    pub warnings: Vec<String>,
    /// Counts, for the server's log and for tests.
    pub stats: RecoveryStats,
}

/// The segment being appended to.
struct ActiveSegment<F> {
    index: u64,
    salt: u64,
    file: F,
}

impl<F: StorageFile> ActiveSegment<F> {
    fn holds_records(&self) -> bool {
        self.file.size() > SEGMENT_HEADER_BYTES as u64
    }
}

/// The data directory and what every file in it is written with.
struct Directory<S> {
    storage: S,
    path: PathBuf,
    incarnation: String,
    config: WalConfig,
}

impl<S: Storage> Directory<S> {
    fn segment_path(&self, index: u64) -> PathBuf {
        self.path.join(segment::segment_name(index))
    }

    fn header(&self, index: u64) -> SegmentHeader {
        SegmentHeader {
            index,
            salt: segment::segment_salt(&self.incarnation, index),
            record_bytes_max: self.config.record_bytes_max,
        }
    }

    /// Creates segment `index`, beginning with `snapshot` if given, and makes
    /// it durable: its data, then its directory entry.
    async fn create_segment(
        &self,
        index: u64,
        snapshot: Option<&Bytes>,
    ) -> Result<ActiveSegment<S::File>, StorageError> {
        let header = self.header(index);
        let mut bytes = BytesMut::from(&segment::encode_header(header)[..]);
        if let Some(snapshot) = snapshot {
            segment::encode_frame(&mut bytes, header.salt, RecordKind::Snapshot, snapshot);
        }
        let mut file = self.storage.create_new(&self.segment_path(index)).await?;
        file.append(bytes.freeze()).await?;
        file.sync_data().await?;
        if !planted!(SegmentDirNotSynced) {
            self.storage.sync_dir(&self.path).await?;
        }
        Ok(ActiveSegment {
            index,
            salt: header.salt,
            file,
        })
    }
}

/// A write-ahead log in one data directory, which it holds locked.
pub struct Wal<S: Storage> {
    directory: Directory<S>,
    active: ActiveSegment<S::File>,
    /// The oldest segment still in the directory.
    oldest_segment_index: u64,
    /// The first write or sync that failed, after which nothing is written.
    failure: Option<String>,
    /// Where a batch is encoded. Kept from batch to batch (up to
    /// [`BUFFER_KEPT_BYTES_MAX`]): once the bytes of the last write are
    /// dropped, `reserve` takes the whole allocation back, so a busy server
    /// does not allocate, fault in and give back a fresh buffer per batch.
    buffer: BytesMut,
    _lock: S::Lock,
}

/// Largest encoding buffer kept between batches.
const BUFFER_KEPT_BYTES_MAX: usize = 4 * 1024 * 1024;

impl<S: Storage> Wal<S> {
    /// Opens the log in `dir`, creating the directory if needed, and
    /// recovers it. A new directory gets its incarnation id from
    /// `new_incarnation` (called only then); the id is kept for as long as
    /// the directory lives.
    pub async fn open(
        storage: S,
        dir: &Path,
        config: WalConfig,
        new_incarnation: impl FnOnce() -> String,
    ) -> Result<(Wal<S>, Recovered), StoreError> {
        config.validate()?;
        storage.create_dir_all(dir).await?;
        let lock = storage.lock(dir).await.map_err(|error| match error {
            StorageError::Locked { path } => StoreError::Locked { dir: path },
            other => StoreError::Storage(other),
        })?;
        let names = storage.list_dir(dir).await?;
        let holds_segments = names
            .iter()
            .any(|name| segment::parse_segment_name(name).is_some());
        let (incarnation, meta_reads_repeated) =
            meta::load_or_create(&storage, dir, &names, holds_segments, new_incarnation).await?;
        let directory = Directory {
            storage,
            path: dir.to_path_buf(),
            incarnation,
            config,
        };
        let mut recovery = recovery::recover(&directory, &names).await?;
        recovery.stats.reads_repeated += meta_reads_repeated;
        let recovered = Recovered {
            incarnation: directory.incarnation.clone(),
            snapshot: recovery.snapshot,
            records: recovery.records,
            warnings: recovery.warnings,
            stats: recovery.stats,
        };
        let wal = Wal {
            directory,
            active: recovery.active,
            oldest_segment_index: recovery.oldest_segment_index,
            failure: None,
            buffer: BytesMut::new(),
            _lock: lock,
        };
        Ok((wal, recovered))
    }

    /// The directory's incarnation id.
    pub fn incarnation(&self) -> &str {
        &self.directory.incarnation
    }

    /// Appends `records` and syncs once (once per segment written to, when
    /// the batch crosses into a new segment). When this returns `Ok`, every
    /// one of them is durable. A record over the limit is refused before
    /// anything is written; any other error ends the log (see the module's
    /// docs).
    pub async fn append(&mut self, records: &[Bytes]) -> Result<(), StoreError> {
        self.refuse_after_failure()?;
        for record in records {
            self.check_size(record)?;
        }
        if records.is_empty() {
            return Ok(());
        }
        let written = self.write_batch(records).await;
        self.end_on_failure(written)
    }

    /// Starts a new segment that begins with `snapshot`, makes it durable,
    /// then removes every older segment. `snapshot` must hold everything the
    /// caller needs from the records appended so far: they are gone after.
    pub async fn checkpoint(&mut self, snapshot: Bytes) -> Result<(), StoreError> {
        self.refuse_after_failure()?;
        self.check_size(&snapshot)?;
        let written = self.write_checkpoint(&snapshot).await;
        self.end_on_failure(written)
    }

    fn refuse_after_failure(&self) -> Result<(), StoreError> {
        match &self.failure {
            Some(cause) => Err(StoreError::Failed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_size(&self, record: &Bytes) -> Result<(), StoreError> {
        let bytes_max = self.directory.config.record_bytes_max;
        if record.len() > bytes_max as usize {
            return Err(StoreError::RecordTooLarge {
                size: record.len(),
                bytes_max,
            });
        }
        Ok(())
    }

    fn end_on_failure(&mut self, result: Result<(), StorageError>) -> Result<(), StoreError> {
        result.map_err(|error| {
            self.failure = Some(error.to_string());
            StoreError::Storage(error)
        })
    }

    /// Writes the batch into the active segment, moving to a new segment
    /// whenever the next record would pass the segment limit; what went to
    /// a segment is synced before the next one is created, so that a crash
    /// keeps a prefix of the batch.
    async fn write_batch(&mut self, records: &[Bytes]) -> Result<(), StorageError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        if buffer.capacity() > BUFFER_KEPT_BYTES_MAX {
            buffer = BytesMut::new();
        }
        let bytes: u64 = records
            .iter()
            .map(|record| segment::frame_bytes(record.len()))
            .sum();
        buffer.reserve(usize::try_from(bytes).unwrap_or(usize::MAX));
        let written = self.encode_and_write(&mut buffer, records).await;
        self.buffer = buffer;
        written
    }

    async fn encode_and_write(
        &mut self,
        buffer: &mut BytesMut,
        records: &[Bytes],
    ) -> Result<(), StorageError> {
        let segment_bytes_max = self.directory.config.segment_bytes_max;
        for record in records {
            let size_after =
                self.active.file.size() + buffer.len() as u64 + segment::frame_bytes(record.len());
            let holds_records = self.active.holds_records() || !buffer.is_empty();
            if size_after > segment_bytes_max && holds_records {
                self.write_and_sync(buffer.split().freeze()).await?;
                self.rotate().await?;
            }
            segment::encode_frame(buffer, self.active.salt, RecordKind::Record, record);
        }
        self.write_and_sync(buffer.split().freeze()).await
    }

    async fn write_and_sync(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.active.file.append(bytes).await?;
        self.active.file.sync_data().await
    }

    async fn rotate(&mut self) -> Result<(), StorageError> {
        let index = self.next_segment_index();
        self.active = self.directory.create_segment(index, None).await?;
        Ok(())
    }

    fn next_segment_index(&self) -> u64 {
        self.active
            .index
            .checked_add(1)
            .expect("segment indices do not run out in 2^64 segments")
    }

    async fn write_checkpoint(&mut self, snapshot: &Bytes) -> Result<(), StorageError> {
        let index = self.next_segment_index();
        let obsolete = self.oldest_segment_index..index;
        self.active = self.directory.create_segment(index, Some(snapshot)).await?;
        // The snapshot is durable: the older segments are garbage now, and
        // recovery would remove them too if a crash interrupted this.
        for old in obsolete {
            let path = self.directory.segment_path(old);
            self.directory.storage.remove_file(&path).await?;
        }
        self.directory
            .storage
            .sync_dir(&self.directory.path)
            .await?;
        self.oldest_segment_index = index;
        Ok(())
    }
}

impl<S: Storage> std::fmt::Debug for Wal<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Wal")
            .field("dir", &self.directory.path)
            .field("incarnation", &self.directory.incarnation)
            .field("segment_index", &self.active.index)
            .field("oldest_segment_index", &self.oldest_segment_index)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}
