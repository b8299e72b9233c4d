//! The load generator itself: a small run against our server loses,
//! doubles and reorders nothing (durable, in memory and over TLS), and
//! writes the JSON it promises.

use std::process::Command;

fn run_bench(json: &std::path::Path, options: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .arg("bench")
        .args(options)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run chat-cli bench");
    assert!(
        output.status.success(),
        "bench failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(json).expect("the JSON file");
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn a_small_run_delivers_everything_once_in_order() {
    let directory = std::env::temp_dir().join(format!("chat-bench-test-{}", std::process::id()));
    let json = directory.join("ours.json");
    let options = ["--scenarios", "1,3,5", "--scale", "0.02", "--runs", "1"];
    let document = run_bench(&json, &options);
    let servers = &document["servers"];
    let runs = [
        ("chat (ours)", "scenario1"),
        ("chat (ours)", "scenario3"),
        ("chat (ours)", "scenario5"),
        ("chat (ours, in memory)", "scenario1"),
        // TLS runs for scenario 1 by default.
        ("chat (ours, TLS)", "scenario1"),
    ];
    for (server, scenario) in runs {
        let figures = &servers[server][scenario];
        let scenario = format!("{server} {scenario}");
        assert_eq!(figures["lost"], 0, "{scenario}: {figures}");
        assert_eq!(figures["duplicated"], 0, "{scenario}: {figures}");
        assert_eq!(figures["out_of_order"], 0, "{scenario}: {figures}");
        assert!(
            figures["deliveries"]
                .as_u64()
                .is_some_and(|count| count > 0),
            "{scenario}: {figures}"
        );
        assert_eq!(
            figures["deliveries"], figures["expected"],
            "{scenario}: {figures}"
        );
    }
    for key in [
        "ratio_deliveries_scenario1",
        "ratio_deliveries_scenario2",
        "ratio_p99_scenario3",
        "ratio_idle_memory",
        "overload_rss_mib",
        "scenario5_throughput_fraction",
        "durable_fraction_scenario1",
        "durable_fraction_scenario2",
        "tls_fraction_scenario1",
        "window",
        "disk_sync_p50_ms",
        "disk_sync_p99_ms",
        "disk_sync_mean_ms",
        "servers",
    ] {
        assert!(document.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(document["window"], 32, "the published window by default");
    assert!(
        document["overload_rss_mib"]
            .as_f64()
            .is_some_and(|mib| mib > 0.0 && mib < 64.0)
    );
    for fraction in [
        "durable_fraction_scenario1",
        "tls_fraction_scenario1",
        "disk_sync_p50_ms",
    ] {
        assert!(
            document[fraction]
                .as_f64()
                .is_some_and(|value| value > 0.0 && value.is_finite()),
            "{fraction}: {}",
            document[fraction]
        );
    }
    // Scenario 2 did not run: no fraction is made up for it.
    assert!(document["durable_fraction_scenario2"].is_null());
    let _ = std::fs::remove_dir_all(directory);
}

#[test]
fn recovery_restarts_on_a_filled_log_and_reports_its_time() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let json = directory.path().join("recovery.json");
    // No scenario: only the recovery run, of 4,000 messages.
    let document = run_bench(&json, &["--scenarios", "--recovery", "4000"]);
    assert_eq!(document["recovery_messages"], 4000, "{document}");
    let seconds = document["recovery_seconds"].as_f64().expect("seconds");
    assert!(seconds > 0.0 && seconds < 60.0, "{seconds}");
    assert!(
        document["recovery_disk_bytes"]
            .as_u64()
            .is_some_and(|bytes| bytes > 4000 * 16),
        "{document}"
    );
    // No scenario ran, so the disk was not measured beside one.
    assert!(document.get("disk_sync_p50_ms").is_none(), "{document}");
    // Named for one million messages only.
    assert!(document.get("recovery_seconds_1m").is_none(), "{document}");
}

#[test]
fn a_wider_window_still_delivers_everything_and_is_reported() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let json = directory.path().join("window.json");
    let options = [
        "--scenarios",
        "2",
        "--scale",
        "0.01",
        "--runs",
        "1",
        "--window",
        "512",
    ];
    let document = run_bench(&json, &options);
    assert_eq!(document["window"], 512, "{document}");
    for server in ["chat (ours)", "chat (ours, in memory)"] {
        let figures = &document["servers"][server]["scenario2"];
        assert_eq!(figures["lost"], 0, "{server}: {figures}");
        assert_eq!(figures["duplicated"], 0, "{server}: {figures}");
        assert_eq!(
            figures["deliveries"], figures["expected"],
            "{server}: {figures}"
        );
    }
}

#[test]
fn a_window_out_of_range_is_refused_before_anything_runs() {
    for window in ["0", "4096", "many"] {
        let output = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
            .args(["bench", "--scenarios", "2", "--window", window])
            .output()
            .expect("run chat-cli bench");
        assert_eq!(output.status.code(), Some(2), "--window {window}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--window"), "--window {window}: {stderr}");
        assert!(output.stdout.is_empty(), "--window {window}: nothing ran");
    }
}
