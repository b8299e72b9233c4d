//! Seeds that once failed, kept so that their fixes stay fixed.

use sim_tests::sweep;

/// Each seed, with what it caught.
const SEEDS: [(u64, &str); 2] = [
    (
        799,
        "the client wrote inline, so a write stalled by a partition kept it from \
         ticking: it noticed the dead server late, and the server kept a stopped \
         reader's connection past its bound",
    ),
    (
        592,
        "connection attempts held during a fault arrived all at once and \
         overflowed turmoil's listen backlog, which panics (the backlog is \
         tcp_capacity, now turmoil's default)",
    ),
];

#[test]
fn seeds_that_once_failed_pass() {
    for (seed, caught) in SEEDS {
        let result = sweep::run_seed(seed);
        assert!(
            result.passed(),
            "seed {seed} ({caught}) fails again:\n{}",
            sweep::failure_report(&result)
        );
    }
}
