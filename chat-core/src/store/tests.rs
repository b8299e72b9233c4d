//! The log over the real file system, in temporary directories: what each
//! kind of damage does at the next open. Damage is made with `std::fs` on the
//! closed log's files. Crashes with torn writes are tested under turmoil in
//! `tests/wal_sim.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chat_net::{FaultyStorage, TokioStorage};

use super::segment::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, segment_name};
use super::*;

const INCARNATION: &str = "incarnation-1";

/// Small limits, so that a few records fill a segment.
fn small() -> WalConfig {
    WalConfig {
        segment_bytes_max: 256,
        record_bytes_max: 64,
    }
}

fn record(number: usize) -> Bytes {
    Bytes::from(format!("record {number:03}"))
}

fn records(numbers: std::ops::Range<usize>) -> Vec<Bytes> {
    numbers.map(record).collect()
}

fn temporary_directory() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("the system has a temporary directory");
    let dir = root.path().join("data");
    (root, dir)
}

async fn open_with<S: chat_net::Storage>(
    storage: S,
    dir: &Path,
) -> Result<(Wal<S>, Recovered), StoreError> {
    Wal::open(storage, dir, small(), || INCARNATION.to_owned()).await
}

async fn open(dir: &Path) -> (Wal<TokioStorage>, Recovered) {
    open_with(TokioStorage, dir).await.expect("the log opens")
}

async fn reopen_error(dir: &Path) -> String {
    let error = open_with(TokioStorage, dir)
        .await
        .expect_err("the log is refused");
    error.to_string()
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(segment_name(index))
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("the directory exists")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).expect("the file exists");
    bytes[offset] ^= 0x01;
    fs::write(path, bytes).expect("the file is writable");
}

fn file_size(path: &Path) -> u64 {
    fs::metadata(path).expect("the file exists").len()
}

/// Bytes that `count` records of `record(_)` take in a segment.
fn frames_bytes(count: usize) -> usize {
    count * (FRAME_HEADER_BYTES + record(0).len())
}

#[tokio::test]
async fn a_new_directory_starts_empty_and_keeps_its_incarnation() {
    let (_root, dir) = temporary_directory();
    let (mut wal, recovered) = Wal::open(TokioStorage, &dir, small(), || "first".to_owned())
        .await
        .expect("a new log opens");
    assert_eq!(recovered.incarnation, "first");
    assert_eq!((recovered.snapshot, recovered.records.len()), (None, 0));
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    wal.append(&records(0..2)).await.expect("append");
    drop(wal);

    let never = || -> String { panic!("an existing directory keeps its incarnation") };
    let (wal, recovered) = Wal::open(TokioStorage, &dir, small(), never)
        .await
        .expect("reopen");
    assert_eq!(wal.incarnation(), "first");
    assert_eq!(recovered.records, records(0..2));
    assert_eq!(recovered.stats.records_read, 2);
}

#[tokio::test]
async fn batches_come_back_in_order_across_reopens() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..3)).await.expect("append");
    wal.append(&[]).await.expect("an empty batch is fine");
    wal.append(&records(3..4)).await.expect("append");
    drop(wal);
    let (mut wal, recovered) = open(&dir).await;
    assert_eq!(recovered.records, records(0..4));
    wal.append(&records(4..6))
        .await
        .expect("append after reopening");
    drop(wal);
    assert_eq!(open(&dir).await.1.records, records(0..6));
}

#[tokio::test]
async fn rotation_starts_a_new_segment_before_passing_the_limit() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    for batch in 0..10 {
        wal.append(&records(batch * 3..batch * 3 + 3))
            .await
            .expect("append");
    }
    drop(wal);
    let names = segment_files(&dir);
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let size = file_size(&dir.join(name));
        assert!(
            size <= small().segment_bytes_max,
            "{name} holds {size} bytes"
        );
    }
    let recovered = open(&dir).await.1;
    assert_eq!(recovered.records, records(0..30));
    assert_eq!(recovered.stats.segments_read, names.len() as u64);
}

#[tokio::test]
async fn recovery_starts_from_the_newest_checkpoint() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..20)).await.expect("append");
    wal.checkpoint(Bytes::from_static(b"state after 20"))
        .await
        .expect("checkpoint");
    wal.append(&records(20..22)).await.expect("append");
    drop(wal);
    assert_eq!(segment_files(&dir).len(), 1, "older segments are removed");

    let (mut wal, recovered) = open(&dir).await;
    assert_eq!(recovered.snapshot.as_deref(), Some(&b"state after 20"[..]));
    assert_eq!(recovered.records, records(20..22));
    wal.checkpoint(Bytes::from_static(b"state after 22"))
        .await
        .expect("checkpoint");
    drop(wal);
    let recovered = open(&dir).await.1;
    assert_eq!(recovered.snapshot.as_deref(), Some(&b"state after 22"[..]));
    assert!(recovered.records.is_empty());
}

#[tokio::test]
async fn segments_left_over_from_an_interrupted_checkpoint_are_removed() {
    let (root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..20)).await.expect("append");
    let kept = root.path().join("kept");
    fs::create_dir(&kept).expect("mkdir");
    let old = segment_files(&dir);
    for name in &old {
        fs::copy(dir.join(name), kept.join(name)).expect("copy");
    }
    wal.checkpoint(Bytes::from_static(b"state"))
        .await
        .expect("checkpoint");
    wal.append(&records(20..21)).await.expect("append");
    drop(wal);
    // As if the crash came before the removals were durable.
    for name in &old {
        fs::copy(kept.join(name), dir.join(name)).expect("copy back");
    }

    let recovered = open(&dir).await.1;
    assert_eq!(recovered.snapshot.as_deref(), Some(&b"state"[..]));
    assert_eq!(recovered.records, records(20..21));
    assert_eq!(recovered.stats.segments_removed, old.len() as u64);
    assert!(
        recovered.warnings[0].contains("interrupted checkpoint"),
        "{:?}",
        recovered.warnings
    );
    assert_eq!(segment_files(&dir).len(), 1);
}

#[tokio::test]
async fn a_partial_record_at_the_newest_tail_is_cut_with_a_warning() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..3)).await.expect("append");
    drop(wal);
    let path = segment_path(&dir, 1);
    let size = file_size(&path);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(size - 4)
        .expect("cut");

    let (mut wal, recovered) = open(&dir).await;
    assert_eq!(recovered.records, records(0..2));
    let valid = SEGMENT_HEADER_BYTES + frames_bytes(2);
    let dropped = size - 4 - valid as u64;
    assert_eq!(recovered.stats.tail_bytes_dropped, dropped);
    let warning = &recovered.warnings[0];
    assert!(warning.contains(&path.display().to_string()), "{warning}");
    assert!(
        warning.contains(&format!("cut off {dropped} bytes at offset {valid}")),
        "{warning}"
    );
    assert!(warning.contains("a partial record"), "{warning}");
    assert_eq!(file_size(&path), valid as u64, "the cut is made on disk");
    wal.append(&records(2..3))
        .await
        .expect("append after the cut");
    drop(wal);
    let recovered = open(&dir).await.1;
    assert_eq!(recovered.records, records(0..3));
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
}

#[tokio::test]
async fn a_zero_filled_hole_at_the_newest_tail_is_cut_with_what_follows() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..3)).await.expect("append");
    drop(wal);
    let path = segment_path(&dir, 1);
    let mut bytes = fs::read(&path).expect("read");
    // A torn write that lost record 1's blocks but kept record 2's.
    let hole = SEGMENT_HEADER_BYTES + frames_bytes(1)..SEGMENT_HEADER_BYTES + frames_bytes(2);
    bytes[hole.clone()].fill(0);
    fs::write(&path, &bytes).expect("write");

    let recovered = open(&dir).await.1;
    assert_eq!(recovered.records, records(0..1));
    assert_eq!(
        recovered.stats.tail_bytes_dropped,
        (bytes.len() - hole.start) as u64
    );
    assert!(
        recovered.warnings[0].contains("checksum mismatch"),
        "{:?}",
        recovered.warnings
    );
}

#[tokio::test]
async fn a_corrupt_record_at_the_newest_tail_is_cut() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..3)).await.expect("append");
    drop(wal);
    let path = segment_path(&dir, 1);
    flip_byte(
        &path,
        SEGMENT_HEADER_BYTES + frames_bytes(2) + FRAME_HEADER_BYTES + 1,
    );
    let recovered = open(&dir).await.1;
    assert_eq!(recovered.records, records(0..2));
    assert_eq!(recovered.stats.tail_bytes_dropped, frames_bytes(1) as u64);
    assert_eq!(
        recovered.stats.reads_repeated, 2,
        "damage is read thrice before it is believed"
    );
}

#[tokio::test]
async fn a_byte_flipped_by_one_read_is_read_again_not_cut() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..3)).await.expect("append");
    drop(wal);
    for path in [dir.join(meta::META_NAME), segment_path(&dir, 1)] {
        let storage = FaultyStorage::new(TokioStorage);
        storage.corrupt_next_read(&path);
        let (_wal, recovered) = open_with(storage, &dir).await.expect("reopen");
        assert_eq!(recovered.records, records(0..3));
        assert_eq!(recovered.stats.reads_repeated, 1);
        assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    }
}

#[tokio::test]
async fn a_torn_header_of_the_newest_segment_is_rewritten() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    wal.append(&records(0..2)).await.expect("append");
    drop(wal);
    // A crash while segment 2 was being created left part of its header.
    fs::write(segment_path(&dir, 2), [b'C', b'H', 0, 0]).expect("write");

    let (mut wal, recovered) = open(&dir).await;
    assert_eq!(recovered.records, records(0..2));
    assert!(
        recovered.warnings[0].contains("header was torn"),
        "{:?}",
        recovered.warnings
    );
    wal.append(&records(2..3))
        .await
        .expect("append into the rewritten segment");
    drop(wal);
    assert_eq!(open(&dir).await.1.records, records(0..3));
}

/// A log of three segments or more, closed.
async fn sealed_segments(dir: &Path) -> Vec<String> {
    let (mut wal, _) = open(dir).await;
    for batch in 0..10 {
        wal.append(&records(batch * 3..batch * 3 + 3))
            .await
            .expect("append");
    }
    drop(wal);
    let names = segment_files(dir);
    assert!(names.len() >= 3, "{names:?}");
    names
}

#[tokio::test]
async fn damage_in_a_sealed_segment_refuses_to_start() {
    let (_root, dir) = temporary_directory();
    sealed_segments(&dir).await;
    let path = segment_path(&dir, 1);
    let offset = SEGMENT_HEADER_BYTES + frames_bytes(1);
    flip_byte(&path, offset + FRAME_HEADER_BYTES);
    let message = reopen_error(&dir).await;
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("damaged at offset {offset}")),
        "{message}"
    );
    assert!(
        message.contains("restore the data directory from a backup"),
        "{message}"
    );
    assert!(
        message.contains("moving this segment and every later one"),
        "{message}"
    );
}

#[tokio::test]
async fn a_truncated_sealed_segment_refuses_to_start() {
    let (_root, dir) = temporary_directory();
    sealed_segments(&dir).await;
    let path = segment_path(&dir, 2);
    let size = file_size(&path);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(size - 1)
        .expect("cut");
    let message = reopen_error(&dir).await;
    assert!(message.contains("a partial record"), "{message}");
}

#[tokio::test]
async fn a_missing_segment_refuses_to_start() {
    let (_root, dir) = temporary_directory();
    sealed_segments(&dir).await;
    fs::remove_file(segment_path(&dir, 2)).expect("remove");
    let message = reopen_error(&dir).await;
    assert!(
        message.contains(&segment_path(&dir, 2).display().to_string()),
        "{message}"
    );
    assert!(message.contains("is missing"), "{message}");
    fs::remove_file(segment_path(&dir, 1)).expect("remove");
    let message = reopen_error(&dir).await;
    assert!(
        message.contains(&segment_path(&dir, 2).display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_segment_from_another_directory_is_refused() {
    let (root, dir) = temporary_directory();
    sealed_segments(&dir).await;
    let other = root.path().join("other");
    let (mut wal, _) = Wal::open(TokioStorage, &other, small(), || "another".to_owned())
        .await
        .expect("open");
    wal.append(&records(0..1)).await.expect("append");
    drop(wal);
    fs::copy(segment_path(&other, 1), segment_path(&dir, 1)).expect("copy");
    let message = reopen_error(&dir).await;
    assert!(
        message.contains("belongs to another data directory"),
        "{message}"
    );
}

#[tokio::test]
async fn a_second_server_on_the_directory_is_refused() {
    let (_root, dir) = temporary_directory();
    let (_wal, _) = open(&dir).await;
    let error = open_with(TokioStorage, &dir).await.expect_err("locked");
    assert!(matches!(error, StoreError::Locked { .. }));
    let message = error.to_string();
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(message.contains("in use by another server"), "{message}");
}

#[tokio::test]
async fn a_newer_format_is_refused() {
    let (_root, dir) = temporary_directory();
    drop(open(&dir).await);
    let meta = dir.join(meta::META_NAME);
    let mut bytes = fs::read(&meta).expect("read");
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&meta, bytes).expect("write");
    let message = reopen_error(&dir).await;
    assert!(message.contains(&meta.display().to_string()), "{message}");
    assert!(
        message.contains("format version 2, newer than this program's version 1"),
        "{message}"
    );
    assert!(message.contains("run a newer version"), "{message}");
}

#[tokio::test]
async fn a_newer_segment_format_is_refused() {
    let (_root, dir) = temporary_directory();
    sealed_segments(&dir).await;
    let path = segment_path(&dir, 1);
    let mut bytes = fs::read(&path).expect("read");
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    fs::write(&path, bytes).expect("write");
    let message = reopen_error(&dir).await;
    assert!(message.contains("format version 3"), "{message}");
}

#[tokio::test]
async fn a_damaged_meta_file_is_refused() {
    let (_root, dir) = temporary_directory();
    drop(open(&dir).await);
    let meta = dir.join(meta::META_NAME);
    flip_byte(&meta, 16);
    let message = reopen_error(&dir).await;
    assert!(message.contains(&meta.display().to_string()), "{message}");
    assert!(
        message.contains("is damaged (its checksum does not match)"),
        "{message}"
    );
    assert!(
        message.contains("restore the data directory from a backup"),
        "{message}"
    );
}

#[tokio::test]
async fn segments_without_a_meta_file_are_refused() {
    let (_root, dir) = temporary_directory();
    drop(open(&dir).await);
    fs::remove_file(dir.join(meta::META_NAME)).expect("remove");
    let message = reopen_error(&dir).await;
    assert!(
        message.contains("is missing but the directory holds log segments"),
        "{message}"
    );
}

#[tokio::test]
async fn a_leftover_temporary_meta_file_is_replaced() {
    let (_root, dir) = temporary_directory();
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join(meta::META_TEMPORARY_NAME), b"half").expect("write");
    let recovered = open(&dir).await.1;
    assert_eq!(recovered.incarnation, INCARNATION);
}

#[tokio::test]
async fn a_failed_sync_ends_the_log_until_it_is_reopened() {
    let (_root, dir) = temporary_directory();
    let storage = FaultyStorage::new(TokioStorage);
    let (mut wal, _) = open_with(storage.clone(), &dir).await.expect("open");
    wal.append(&records(0..2)).await.expect("append");
    storage.fail_next_sync();
    let error = wal
        .append(&records(2..4))
        .await
        .expect_err("the sync fails");
    assert!(error.to_string().contains("injected failure"), "{error}");

    let refused = wal
        .append(&records(4..5))
        .await
        .expect_err("the log has ended");
    let message = refused.to_string();
    assert!(
        message.contains("since an earlier write or sync failed"),
        "{message}"
    );
    assert!(message.contains("restart the server"), "{message}");
    let refused = wal.checkpoint(Bytes::from_static(b"state")).await;
    assert!(matches!(refused, Err(StoreError::Failed { .. })));
    drop(wal);

    // What the failed batch wrote may or may not be there: a prefix of it.
    let recovered = open(&dir).await.1.records;
    assert!(recovered.starts_with(&records(0..2)), "{recovered:?}");
    assert!(records(0..4).starts_with(&recovered), "{recovered:?}");
}

#[tokio::test]
async fn a_failed_append_ends_the_log() {
    let (_root, dir) = temporary_directory();
    let storage = FaultyStorage::new(TokioStorage);
    let (mut wal, _) = open_with(storage.clone(), &dir).await.expect("open");
    storage.fail_next_append();
    wal.append(&records(0..1))
        .await
        .expect_err("the write fails");
    let refused = wal.append(&records(0..1)).await;
    assert!(matches!(refused, Err(StoreError::Failed { .. })));
}

#[tokio::test]
async fn a_failed_directory_sync_while_rotating_ends_the_log() {
    let (_root, dir) = temporary_directory();
    let storage = FaultyStorage::new(TokioStorage);
    let (mut wal, _) = open_with(storage.clone(), &dir).await.expect("open");
    storage.fail_next_sync_dir();
    let error = wal
        .append(&records(0..20))
        .await
        .expect_err("rotation fails");
    assert!(
        error.to_string().starts_with("cannot sync the directory"),
        "{error}"
    );
    let refused = wal.append(&records(0..1)).await;
    assert!(matches!(refused, Err(StoreError::Failed { .. })));
    drop(wal);
    let recovered = open(&dir).await.1.records;
    assert!(records(0..20).starts_with(&recovered), "{recovered:?}");
}

#[tokio::test]
async fn a_record_over_the_limit_is_refused_and_harms_nothing() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    let large = Bytes::from(vec![7; 65]);
    let error = wal
        .append(&[record(0), large.clone()])
        .await
        .expect_err("too large");
    assert_eq!(
        error.to_string(),
        "a record of 65 bytes is over the limit of 64 bytes"
    );
    assert!(wal.checkpoint(large).await.is_err());
    let largest = Bytes::from(vec![7; 64]);
    wal.append(&[largest.clone(), record(1)])
        .await
        .expect("the log goes on");
    drop(wal);
    assert_eq!(open(&dir).await.1.records, [largest, record(1)]);
}

#[tokio::test]
async fn a_configuration_where_a_record_cannot_fit_is_refused() {
    let (_root, dir) = temporary_directory();
    let config = WalConfig {
        segment_bytes_max: 100,
        record_bytes_max: 64,
    };
    let error = Wal::open(TokioStorage, &dir, config, || INCARNATION.to_owned()).await;
    let message = error.expect_err("refused").to_string();
    assert!(message.contains("segment_bytes_max is 100"), "{message}");
    let error = Wal::open(TokioStorage, &dir, small(), String::new).await;
    let message = error.expect_err("refused").to_string();
    assert!(
        message.contains("an incarnation id must have 1 to 256 bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn lowering_the_record_limit_keeps_older_records_readable() {
    let (_root, dir) = temporary_directory();
    let (mut wal, _) = open(&dir).await;
    let large = Bytes::from(vec![1; 60]);
    wal.append(std::slice::from_ref(&large))
        .await
        .expect("append");
    drop(wal);
    let lower = WalConfig {
        segment_bytes_max: 256,
        record_bytes_max: 16,
    };
    let (_wal, recovered) = Wal::open(TokioStorage, &dir, lower, || INCARNATION.to_owned())
        .await
        .expect("reopen with a lower limit");
    assert_eq!(recovered.records, [large]);
}

#[tokio::test]
async fn raising_the_record_limit_starts_a_new_segment() {
    let (_root, dir) = temporary_directory();
    drop(open(&dir).await);
    let higher = WalConfig {
        segment_bytes_max: 512,
        record_bytes_max: 128,
    };
    let large = Bytes::from(vec![2; 128]);
    let (mut wal, _) = Wal::open(TokioStorage, &dir, higher, || INCARNATION.to_owned())
        .await
        .expect("reopen with a higher limit");
    wal.append(std::slice::from_ref(&large))
        .await
        .expect("append");
    drop(wal);
    assert_eq!(segment_files(&dir).len(), 2);
    let (_wal, recovered) = Wal::open(TokioStorage, &dir, higher, || INCARNATION.to_owned())
        .await
        .expect("reopen");
    assert_eq!(recovered.records, [large]);
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn the_log_can_be_driven_from_any_runtime_thread() {
    let (_root, dir) = temporary_directory();
    let opening = open_with(TokioStorage, &dir);
    assert_send(&opening);
    let (mut wal, _) = opening.await.expect("open");
    let batch = records(0..1);
    let appending = wal.append(&batch);
    assert_send(&appending);
    appending.await.expect("append");
    let checkpointing = wal.checkpoint(Bytes::from_static(b"state"));
    assert_send(&checkpointing);
    checkpointing.await.expect("checkpoint");
    assert_send(&wal);
}
