//! How long this machine's disk takes to make an append durable, measured
//! beside the scenarios. A durable server acknowledges and broadcasts a
//! message only after a sync that began after the message arrived, so one
//! sync is the least durability adds to a message's latency and to every
//! round of a talker's window: the floor under scenario 2's durable
//! throughput and scenario 3's durable latency, which no batching removes.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Appends timed; enough for a p99 that is not the maximum.
const SAMPLES: usize = 400;

/// Bytes per append: about a small batch of the log's records.
const APPEND_BYTES: usize = 4096;

/// What the appends and syncs took.
pub struct SyncLatency {
    /// Sorted, fastest first.
    samples: Vec<Duration>,
}

impl SyncLatency {
    /// The sample below which `share` of them fall.
    fn quantile(&self, share: f64) -> Duration {
        let last = self.samples.len() - 1;
        self.samples[((last as f64 * share).round() as usize).min(last)]
    }

    fn mean(&self) -> Duration {
        self.samples.iter().sum::<Duration>() / self.samples.len() as u32
    }

    /// One line for the report.
    pub fn summary(&self) -> String {
        format!(
            "disk: {} appends of {} KiB, each with fdatasync: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms (the least durability adds to a message's latency)",
            self.samples.len(),
            APPEND_BYTES / 1024,
            milliseconds(self.quantile(0.5)),
            milliseconds(self.quantile(0.99)),
            milliseconds(self.mean())
        )
    }

    /// The figures for the JSON document.
    pub fn json(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("disk_sync_p50_ms", milliseconds(self.quantile(0.5)).into()),
            ("disk_sync_p99_ms", milliseconds(self.quantile(0.99)).into()),
            ("disk_sync_mean_ms", milliseconds(self.mean()).into()),
        ]
    }
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Times [`SAMPLES`] appends with a sync each in a file under `directory`
/// (created, and removed after), on the file system the durable servers of
/// the run write to.
pub fn measure(directory: &Path) -> Result<SyncLatency> {
    fs::create_dir_all(directory).with_context(|| format!("create {}", directory.display()))?;
    let path = directory.join("sync-probe");
    let result = time_appends(&path);
    let _ = fs::remove_dir_all(directory);
    result
}

fn time_appends(path: &Path) -> Result<SyncLatency> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    let block = vec![b'x'; APPEND_BYTES];
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        file.write_all(&block)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("append to {}", path.display()))?;
        samples.push(start.elapsed());
    }
    samples.sort();
    Ok(SyncLatency { samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_sorted_samples() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let latency = SyncLatency { samples };
        assert_eq!(latency.quantile(0.5), Duration::from_millis(51));
        assert_eq!(latency.quantile(0.99), Duration::from_millis(99));
        assert_eq!(latency.quantile(1.0), Duration::from_millis(100));
        assert_eq!(latency.mean(), Duration::from_micros(50_500));
        let json = latency.json();
        assert_eq!(json[0].0, "disk_sync_p50_ms");
        assert_eq!(json[0].1, 51.0);
    }

    #[test]
    fn a_measurement_leaves_nothing_behind() {
        let parent = tempfile::tempdir().expect("a temporary directory");
        let directory = parent.path().join("probe");
        let latency = measure(&directory).expect("measured");
        assert_eq!(latency.samples.len(), SAMPLES);
        assert!(latency.samples.windows(2).all(|pair| pair[0] <= pair[1]));
        assert!(!directory.exists());
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_a_clear_error() {
        let parent = tempfile::tempdir().expect("a temporary directory");
        let file = parent.path().join("a-file");
        fs::write(&file, b"").expect("a file");
        let error = measure(&file.join("probe")).err().expect("refused");
        assert!(format!("{error:#}").contains("create"), "{error:#}");
    }
}
