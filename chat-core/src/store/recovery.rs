//! Reading a log back after a restart, and repairing what a crash left.
//!
//! The *chain* is the run of segments recovery returns: from the newest one
//! that begins with a snapshot (or from segment 1, if none does) to the
//! newest. Segments older than the chain are garbage that a crash during a
//! checkpoint's cleanup left behind, and are removed. Within the chain:
//! - the newest segment may end in a torn or corrupt tail (a crash during a
//!   write): it is cut off, durably, with a warning. A newest segment whose
//!   header itself was torn (a crash while creating it, before any record
//!   went in) is rewritten empty;
//! - every older segment was synced before the next one was created, so any
//!   damage in one, or a missing index, is real damage: recovery refuses to
//!   start rather than return a history with a hole in it.
//!
//! Before any of that, a read that shows damage is repeated (a flipped byte
//! can be the read's, not the disk's), and the best read is kept: a checksum
//! never validates a flipped byte, so the read that parses furthest is
//! right.

use std::path::Path;

use bytes::Bytes;
use chat_net::{Storage, StorageError, StorageFile};

use super::segment::{
    self, FrameDamage, HeaderProblem, ParsedSegment, RecordKind, SEGMENT_BYTES_LIMIT,
    SEGMENT_HEADER_BYTES,
};
use super::{ActiveSegment, Directory, READ_ATTEMPTS_MAX, RecoveryStats, StoreError};

/// What recovery hands [`super::Wal::open`].
pub(super) struct Recovery<F> {
    pub active: ActiveSegment<F>,
    pub oldest_segment_index: u64,
    pub snapshot: Option<Bytes>,
    pub records: Vec<Bytes>,
    pub warnings: Vec<String>,
    pub stats: RecoveryStats,
}

/// Warnings and counts gathered along the way.
#[derive(Default)]
struct Report {
    warnings: Vec<String>,
    stats: RecoveryStats,
}

/// One segment file as read.
struct LoadedSegment {
    index: u64,
    bytes: Bytes,
    parsed: ParsedSegment,
    /// Only for the newest: its header was torn, so it is to be rewritten.
    header_torn: bool,
}

/// One read of a segment: parsed, or refused at its header.
enum Read {
    Parsed(LoadedSegment),
    BadHeader {
        problem: HeaderProblem,
        file_bytes: usize,
    },
}

impl Read {
    /// How far this read got: a bad header is worse than any parsed file.
    fn valid_bytes(&self) -> Option<usize> {
        match self {
            Read::Parsed(loaded) => Some(loaded.parsed.valid_bytes),
            Read::BadHeader { .. } => None,
        }
    }

    fn is_clean(&self) -> bool {
        matches!(self, Read::Parsed(loaded) if loaded.parsed.damage.is_none())
    }
}

/// Recovers the log of `directory`, whose listing is `names`.
pub(super) async fn recover<S: Storage>(
    directory: &Directory<S>,
    names: &[String],
) -> Result<Recovery<S::File>, StoreError> {
    let mut indices: Vec<u64> = names
        .iter()
        .filter_map(|name| segment::parse_segment_name(name))
        .collect();
    indices.sort_unstable();
    let mut report = Report::default();
    if indices.is_empty() {
        let active = directory.create_segment(1, None).await?;
        return Ok(gather(active, &[], report));
    }
    let chain = load_chain(directory, &indices, &mut report).await?;
    let first_index = chain[0].index;
    remove_garbage(directory, &indices, first_index, &mut report).await?;
    let newest = chain
        .last()
        .expect("the chain holds at least the newest segment");
    let active = open_newest(directory, newest, &mut report).await?;
    // Makes every name recovery relied on or removed durable, and a pending
    // segment entry of a restart without a crash.
    directory.storage.sync_dir(&directory.path).await?;
    Ok(gather(active, &chain, report))
}

/// Loads the chain, newest first, walking back until a segment that begins
/// with a snapshot; returns it oldest first.
async fn load_chain<S: Storage>(
    directory: &Directory<S>,
    indices: &[u64],
    report: &mut Report,
) -> Result<Vec<LoadedSegment>, StoreError> {
    let (&newest, older) = indices.split_last().expect("recover checked for segments");
    let mut chain = vec![load_newest(directory, newest, report).await?];
    let mut older = older.iter().rev();
    loop {
        let oldest = chain.last().expect("the chain is never empty");
        if oldest.parsed.begins_with_snapshot() || oldest.index == 1 {
            break;
        }
        let expected = oldest.index - 1;
        if older.next() != Some(&expected) {
            let path = directory.segment_path(expected);
            return Err(StoreError::SegmentMissing { path });
        }
        chain.push(load_sealed(directory, expected, report).await?);
    }
    chain.reverse();
    Ok(chain)
}

/// Reads segment `index`, repeating the read while it shows damage, at most
/// [`READ_ATTEMPTS_MAX`] times in all; keeps the read that got furthest.
async fn load_segment<S: Storage>(
    directory: &Directory<S>,
    index: u64,
    report: &mut Report,
) -> Result<Read, StoreError> {
    let path = directory.segment_path(index);
    let salt = segment::segment_salt(&directory.incarnation, index);
    let mut best: Option<Read> = None;
    let mut read_error = None;
    for attempt in 0..READ_ATTEMPTS_MAX {
        if attempt > 0 {
            report.stats.reads_repeated += 1;
        }
        let bytes = match directory.storage.read(&path, SEGMENT_BYTES_LIMIT).await {
            Ok(bytes) => Bytes::from(bytes),
            Err(StorageError::TooLarge { size, .. }) => {
                return Err(damaged(
                    &path,
                    SEGMENT_BYTES_LIMIT,
                    format!("{size} bytes, larger than any segment"),
                ));
            }
            Err(error) => {
                read_error = Some(error);
                continue;
            }
        };
        let read = match segment::parse_segment(&bytes, index, salt) {
            Ok(parsed) => Read::Parsed(LoadedSegment {
                index,
                bytes,
                parsed,
                header_torn: false,
            }),
            Err(problem) => Read::BadHeader {
                problem,
                file_bytes: bytes.len(),
            },
        };
        let clean = read.is_clean();
        if best
            .as_ref()
            .is_none_or(|kept| read.valid_bytes() > kept.valid_bytes())
        {
            best = Some(read);
        }
        if clean {
            break;
        }
    }
    match (best, read_error) {
        (Some(read), _) => Ok(read),
        (None, Some(error)) => Err(error.into()),
        (None, None) => unreachable!("at least one read was attempted"),
    }
}

fn damaged(path: &Path, offset: u64, reason: String) -> StoreError {
    StoreError::SegmentDamaged {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

fn refuse_header(path: &Path, problem: HeaderProblem) -> StoreError {
    match problem {
        HeaderProblem::NewerVersion(found) => StoreError::NewerFormat {
            path: path.to_path_buf(),
            found,
            supported: segment::FORMAT_VERSION,
        },
        other => damaged(path, 0, other.to_string()),
    }
}

/// The newest segment: a damaged tail is left for [`open_newest`] to cut; a
/// torn header (no longer than a header: no record ever went in) is marked
/// for rewriting; any other bad header is damage.
async fn load_newest<S: Storage>(
    directory: &Directory<S>,
    index: u64,
    report: &mut Report,
) -> Result<LoadedSegment, StoreError> {
    match load_segment(directory, index, report).await? {
        Read::Parsed(loaded) => Ok(loaded),
        Read::BadHeader {
            problem,
            file_bytes,
        } if file_bytes <= SEGMENT_HEADER_BYTES
            && !matches!(problem, HeaderProblem::NewerVersion(_)) =>
        {
            Ok(LoadedSegment {
                index,
                bytes: Bytes::new(),
                parsed: ParsedSegment {
                    header: directory.header(index),
                    frames: Vec::new(),
                    valid_bytes: SEGMENT_HEADER_BYTES,
                    damage: None,
                },
                header_torn: true,
            })
        }
        Read::BadHeader { problem, .. } => {
            Err(refuse_header(&directory.segment_path(index), problem))
        }
    }
}

/// A segment before the newest: it must be whole.
async fn load_sealed<S: Storage>(
    directory: &Directory<S>,
    index: u64,
    report: &mut Report,
) -> Result<LoadedSegment, StoreError> {
    let path = directory.segment_path(index);
    match load_segment(directory, index, report).await? {
        Read::Parsed(loaded) => match loaded.parsed.damage {
            None => Ok(loaded),
            Some(damage) => Err(damaged(
                &path,
                loaded.parsed.valid_bytes as u64,
                damage.to_string(),
            )),
        },
        Read::BadHeader { problem, .. } => Err(refuse_header(&path, problem)),
    }
}

/// Removes the segments older than the chain (not durable until the
/// directory sync that ends recovery).
async fn remove_garbage<S: Storage>(
    directory: &Directory<S>,
    indices: &[u64],
    first_index: u64,
    report: &mut Report,
) -> Result<(), StoreError> {
    let garbage: Vec<u64> = indices
        .iter()
        .copied()
        .filter(|&index| index < first_index)
        .collect();
    for &index in &garbage {
        directory
            .storage
            .remove_file(&directory.segment_path(index))
            .await?;
    }
    if !garbage.is_empty() {
        report.stats.segments_removed = garbage.len() as u64;
        report.warnings.push(format!(
            "removed {} segment(s) older than the snapshot in {}, left over from an interrupted checkpoint",
            garbage.len(),
            directory.segment_path(first_index).display()
        ));
    }
    Ok(())
}

/// Opens the newest segment for appending, first cutting its damaged tail
/// (or rewriting its torn header), and syncs it, so that what recovery
/// returns is durable. When the configuration now allows larger records than
/// its header does, appends go to a new segment instead.
async fn open_newest<S: Storage>(
    directory: &Directory<S>,
    newest: &LoadedSegment,
    report: &mut Report,
) -> Result<ActiveSegment<S::File>, StoreError> {
    let path = directory.segment_path(newest.index);
    let mut file = directory.storage.open_append(&path).await?;
    let size = file.size();
    if newest.header_torn {
        file.truncate(0).await?;
        let header = segment::encode_header(directory.header(newest.index));
        file.append(Bytes::copy_from_slice(&header)).await?;
        report.warnings.push(format!(
            "segment {}: its header was torn ({size} bytes) by a crash while it was created; rewritten empty (it held no record)",
            path.display()
        ));
    } else if let Some(damage) = newest.parsed.damage {
        let valid = newest.parsed.valid_bytes as u64;
        assert!(
            valid <= size,
            "the file was read whole, and nothing else writes it"
        );
        file.truncate(valid).await?;
        report.stats.tail_bytes_dropped = size - valid;
        report
            .warnings
            .push(cut_warning(&path, valid, size - valid, damage));
    }
    file.sync_data().await?;
    let header = newest.parsed.header;
    if header.record_bytes_max < directory.config.record_bytes_max {
        // Its header would not admit the larger records now allowed.
        let index = newest
            .index
            .checked_add(1)
            .expect("segment indices do not run out");
        return Ok(directory.create_segment(index, None).await?);
    }
    Ok(ActiveSegment {
        index: newest.index,
        salt: header.salt,
        file,
    })
}

fn cut_warning(path: &Path, offset: u64, dropped: u64, damage: FrameDamage) -> String {
    format!(
        "segment {}: cut off {dropped} bytes at offset {offset} ({damage}): the tail of a write that a crash interrupted, or damage",
        path.display()
    )
}

/// The snapshot and records of the chain, and the counts.
fn gather<F>(active: ActiveSegment<F>, chain: &[LoadedSegment], mut report: Report) -> Recovery<F> {
    let mut snapshot = None;
    let mut records = Vec::new();
    for (position, loaded) in chain.iter().enumerate() {
        for frame in &loaded.parsed.frames {
            let payload = loaded.bytes.slice(frame.payload.clone());
            match frame.kind {
                RecordKind::Snapshot => {
                    assert!(
                        position == 0,
                        "only the chain's first segment begins with a snapshot"
                    );
                    snapshot = Some(payload);
                }
                RecordKind::Record => records.push(payload),
            }
        }
        report.stats.bytes_read += loaded.bytes.len() as u64;
    }
    report.stats.segments_read = chain.len() as u64;
    report.stats.records_read = records.len() as u64;
    Recovery {
        oldest_segment_index: chain.first().map_or(active.index, |first| first.index),
        active,
        snapshot,
        records,
        warnings: report.warnings,
        stats: report.stats,
    }
}
