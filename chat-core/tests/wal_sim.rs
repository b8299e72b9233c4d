//! The write-ahead log under turmoil: a writer host appends batches and makes
//! checkpoints while the step loop crashes and restarts it, with torn writes
//! (`block_size`), early flushes, I/O errors, transient read corruption and
//! I/O latency (so that a crash lands between a write and its sync).
//!
//! After every restart the writer checks what [`Wal::open`] recovered,
//! against the guarantee in `chat_core::store`'s docs:
//! - every record whose `append` returned `Ok` is there, and the snapshot of
//!   the last checkpoint that returned `Ok` (or a later one);
//! - what is there is a prefix of what was handed to `append`, record by
//!   record, unchanged: of the batch in flight at the crash any prefix may
//!   survive, nothing that was never appended appears;
//! - the directory is never refused (nothing here damages it: a crash only
//!   tears what was not synced).
//!
//! Record `n` is always the same bytes (derived from `n`), so a restarted
//! writer that continues from what it recovered appends the same history.
//!
//! With `--cfg chat_planted`, each storage bug must make this check fail.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chat_core::store::{Recovered, StoreError, Wal, WalConfig};
use chat_net::SimStorage;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const STEPS: u64 = 20_000;
const TICK: Duration = Duration::from_millis(1);
const CRASH_PROBABILITY_PER_STEP: f64 = 0.01;
const RECORD_BYTES_MAX: usize = 1024;
const SNAPSHOT_BYTES_MAX: usize = 1500;

/// A length from 1 to `bytes_max - 16` that varies with `number`, so that
/// records straddle turmoil's blocks at every offset.
fn filler_length(number: u64, bytes_max: usize) -> usize {
    let mixed = number.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    1 + (mixed as usize) % (bytes_max - 16)
}

/// Record `number`: its number, then filler derived from it.
fn record(number: u64) -> Bytes {
    let mut bytes = number.to_le_bytes().to_vec();
    let filler = filler_length(number, RECORD_BYTES_MAX);
    bytes.extend((0..filler).map(|i| (number as u8).wrapping_add(i as u8)));
    Bytes::from(bytes)
}

/// The snapshot of the first `count` records.
fn snapshot(count: u64) -> Bytes {
    let mut bytes = b"SNAPSHOT".to_vec();
    bytes.extend_from_slice(&count.to_le_bytes());
    let filler = filler_length(count, SNAPSHOT_BYTES_MAX);
    bytes.extend((0..filler).map(|i| (count as u8) ^ (i as u8)));
    Bytes::from(bytes)
}

fn snapshot_count(bytes: &[u8]) -> Option<u64> {
    let count = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    (bytes == snapshot(count)).then_some(count)
}

/// What the writer knows across its lives, and what the test counts.
#[derive(Debug, Default)]
struct Model {
    /// Records `0..acked` were acknowledged.
    acked: u64,
    /// Records `0..attempted` were handed to `append`.
    attempted: u64,
    /// The count of the last acknowledged checkpoint.
    checkpointed: u64,
    lives: u64,
    violations: Vec<String>,
    counts: Counts,
}

/// How often each interesting thing happened, to show the test is not vacuous.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    tails_cut: u64,
    in_flight_records_recovered: u64,
    in_flight_records_lost: u64,
    checkpoints: u64,
    multi_segment_recoveries: u64,
    reads_repeated: u64,
    write_failures: u64,
    open_failures: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.tails_cut += other.tails_cut;
        self.in_flight_records_recovered += other.in_flight_records_recovered;
        self.in_flight_records_lost += other.in_flight_records_lost;
        self.checkpoints += other.checkpoints;
        self.multi_segment_recoveries += other.multi_segment_recoveries;
        self.reads_repeated += other.reads_repeated;
        self.write_failures += other.write_failures;
        self.open_failures += other.open_failures;
    }
}

impl Model {
    /// Checks a recovery against the guarantee; returns how many records the
    /// log holds, from which the writer continues.
    fn check(&mut self, recovered: &Recovered) -> u64 {
        let life = self.lives;
        let first = match &recovered.snapshot {
            None => 0,
            Some(bytes) => match snapshot_count(bytes) {
                Some(count) => count,
                None => {
                    self.violations
                        .push(format!("life {life}: a snapshot that was never written"));
                    return self.acked;
                }
            },
        };
        if first < self.checkpointed {
            self.violations.push(format!(
                "life {life}: snapshot of {first} records, older than the acknowledged one of {}",
                self.checkpointed
            ));
        }
        for (offset, bytes) in recovered.records.iter().enumerate() {
            let number = first + offset as u64;
            if *bytes != record(number) {
                self.violations.push(format!(
                    "life {life}: record at position {number} is not record {number} ({} bytes)",
                    bytes.len()
                ));
                return self.acked;
            }
        }
        let total = first + recovered.records.len() as u64;
        if total < self.acked {
            self.violations.push(format!(
                "life {life}: {total} records recovered, {} acknowledged",
                self.acked
            ));
        }
        if total > self.attempted {
            self.violations.push(format!(
                "life {life}: {total} records recovered, only {} appended",
                self.attempted
            ));
        }
        self.count(recovered, total);
        total
    }

    fn count(&mut self, recovered: &Recovered, total: u64) {
        let counts = &mut self.counts;
        counts.in_flight_records_recovered += total.saturating_sub(self.acked);
        counts.in_flight_records_lost += self.attempted.saturating_sub(total.max(self.acked));
        counts.tails_cut += u64::from(recovered.stats.tail_bytes_dropped > 0);
        counts.multi_segment_recoveries += u64::from(recovered.stats.segments_read > 1);
        counts.reads_repeated += recovered.stats.reads_repeated;
    }
}

fn config() -> WalConfig {
    WalConfig {
        segment_bytes_max: 8 * 1024,
        record_bytes_max: 2048,
    }
}

/// Waits for the step loop to restart this host.
async fn park() -> turmoil::Result {
    std::future::pending::<()>().await;
    Ok(())
}

/// One life of the writer host: open, check, then append until it fails or
/// the host is crashed.
async fn writer(model: Rc<RefCell<Model>>, seed: u64) -> turmoil::Result {
    let life = model.borrow().lives;
    model.borrow_mut().lives += 1;
    let incarnation = move || format!("writer-{seed}");
    let dir = Path::new("/data/wal");
    let (mut wal, recovered) = match Wal::open(SimStorage::new(), dir, config(), incarnation).await
    {
        Ok(opened) => opened,
        // An injected I/O error while reading: the next life tries again.
        Err(StoreError::Storage(_)) => {
            model.borrow_mut().counts.open_failures += 1;
            return park().await;
        }
        Err(refused) => {
            let violation = format!("life {life}: refused to open: {refused}");
            model.borrow_mut().violations.push(violation);
            return park().await;
        }
    };
    let total = model.borrow_mut().check(&recovered);
    {
        let mut model = model.borrow_mut();
        (model.acked, model.attempted) = (total, total);
    }
    let mut rng = SmallRng::seed_from_u64(seed ^ (life << 32));
    loop {
        let first = model.borrow().attempted;
        let batch: Vec<Bytes> = (first..first + rng.random_range(1..=6))
            .map(record)
            .collect();
        model.borrow_mut().attempted += batch.len() as u64;
        if wal.append(&batch).await.is_err() {
            model.borrow_mut().counts.write_failures += 1;
            return park().await;
        }
        let acked = first + batch.len() as u64;
        model.borrow_mut().acked = acked;
        if rng.random_bool(0.05) {
            if wal.checkpoint(snapshot(acked)).await.is_err() {
                model.borrow_mut().counts.write_failures += 1;
                return park().await;
            }
            let mut model = model.borrow_mut();
            model.checkpointed = acked;
            model.counts.checkpoints += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..3))).await;
    }
}

/// One seeded run; returns its counts, or the violations it found.
fn run(seed: u64) -> Result<Counts, Vec<String>> {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .tick_duration(TICK)
        .simulation_duration(Duration::from_secs(3600));
    builder
        .fs()
        .block_size(512)
        .sync_probability(0.02)
        .io_error_probability(0.001)
        .corruption_probability(0.02);
    builder
        .fs()
        .io_latency()
        .min_latency(Duration::from_micros(50))
        .max_latency(Duration::from_millis(2));
    let mut sim = builder.build();
    let model = Rc::new(RefCell::new(Model::default()));
    let host_model = Rc::clone(&model);
    sim.host("writer", move || writer(Rc::clone(&host_model), seed));

    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(1));
    for step in 0..STEPS {
        sim.step().expect("the writer never fails the simulation");
        // The last restart is a crash, so that the last recovery checks one.
        if step + 1 == STEPS || rng.random_bool(CRASH_PROBABILITY_PER_STEP) {
            if step + 1 == STEPS || rng.random_bool(0.8) {
                sim.crash("writer");
            }
            sim.bounce("writer");
        }
    }
    sim.step().expect("the last life recovers");
    assert!(
        sim.elapsed() >= TICK * STEPS as u32,
        "simulated time passed"
    );
    let model = model.borrow();
    if model.violations.is_empty() {
        Ok(model.counts)
    } else {
        Err(model.violations.clone())
    }
}

/// Tests in this file switch planted bugs for the whole process: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn no_planted_bug() {
    #[cfg(chat_planted)]
    chat_core::planted::activate(None);
}

#[test]
fn acknowledged_records_survive_crashes_and_torn_writes() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    no_planted_bug();
    let mut counts = Counts::default();
    for seed in 0..4 {
        match run(seed) {
            Ok(run_counts) => counts.add(run_counts),
            Err(violations) => panic!("seed {seed}: {violations:#?}"),
        }
    }
    println!("{counts:#?}");
    // Each kind of event the guarantee is about happened at least once.
    assert!(counts.tails_cut > 0, "{counts:?}");
    assert!(counts.in_flight_records_recovered > 0, "{counts:?}");
    assert!(counts.in_flight_records_lost > 0, "{counts:?}");
    assert!(counts.checkpoints > 0, "{counts:?}");
    assert!(counts.multi_segment_recoveries > 0, "{counts:?}");
    assert!(counts.reads_repeated > 0, "{counts:?}");
    assert!(counts.write_failures > 0, "{counts:?}");
}

#[cfg(chat_planted)]
mod planted {
    use chat_core::planted::{self, Bug};

    use super::*;

    /// The violations of the first seed (of 20) on which `bug` makes the
    /// check fail.
    fn caught(bug: Bug) -> Vec<String> {
        let _one = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        planted::activate(Some(bug));
        let found = (0..20).find_map(|seed| run(seed).err().map(|found| (seed, found)));
        planted::activate(None);
        let (seed, violations) = found.unwrap_or_else(|| panic!("{} was not caught", bug.name()));
        println!("{} caught on seed {seed}: {violations:#?}", bug.name());
        violations
    }

    #[test]
    fn a_segment_whose_directory_is_not_synced_is_caught() {
        let violations = caught(Bug::SegmentDirNotSynced);
        assert!(
            violations
                .iter()
                .any(|found| found.contains("acknowledged")),
            "{violations:?}"
        );
    }

    #[test]
    fn trusting_a_torn_tail_is_caught() {
        let violations = caught(Bug::TrustTornTail);
        assert!(
            violations
                .iter()
                .any(|found| found.contains("is not record")),
            "{violations:?}"
        );
    }
}
