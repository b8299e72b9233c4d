//! The simulation's own tests: named scenarios reviewed as snapshots,
//! determinism across processes, proof that the oracle can fail, and the
//! picture of a run.

mod determinism;
mod oracle_checks;
mod regressions;
mod scenarios;
mod svg;

use std::path::PathBuf;

/// Compares `transcript` with `snapshots/<name>.snap` (the one place these
/// tests take snapshots).
pub fn assert_transcript(name: &str, transcript: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("snapshots"),
    );
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, transcript));
}
