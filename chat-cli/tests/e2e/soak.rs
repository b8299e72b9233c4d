//! A short soak (`chat-cli bench --soak 3`): waves of clients that leave in
//! every way (quit, dropped, reset, half-closed, silent), after each of
//! which the server's descriptors are back at their baseline, its memory
//! stays near the first wave's, and the clients that stayed lost nothing.

use std::process::Command;

#[test]
fn waves_of_departing_clients_leave_nothing_behind() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let json = directory.path().join("soak.json");
    let output = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["bench", "--soak", "3", "--json"])
        .arg(&json)
        .output()
        .expect("run chat-cli bench --soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "soak failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for wave in 1..=3 {
        assert!(stdout.contains(&format!("wave {wave}/3: ")), "{stdout}");
    }
    let text = std::fs::read_to_string(&json).expect("the JSON file");
    let document: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let soak = &document["soak"];
    let baseline = soak["fds_baseline"].as_u64().expect("a baseline");
    // The listener, the log, the runtime's own and the stayers' sockets.
    assert!(baseline >= 3, "{soak}");
    let waves = soak["waves"].as_array().expect("waves");
    assert_eq!(waves.len(), 3, "{soak}");
    for wave in waves {
        assert!(
            wave["fds"].as_u64().is_some_and(|fds| fds <= baseline),
            "{wave}"
        );
        assert!(
            wave["messages"].as_u64().is_some_and(|count| count > 0),
            "{wave}"
        );
        assert_eq!(
            wave["stayer_deliveries"].as_u64(),
            wave["messages"].as_u64().map(|count| count * 3),
            "every stayer got every message of the wave: {wave}"
        );
    }
    let expected = soak["expected_per_stayer"].as_u64().expect("expected");
    assert_eq!(
        soak["stayer_deliveries"].as_u64(),
        Some(expected * 3),
        "{soak}"
    );
    assert_eq!(soak["stayer_duplicated"], 0, "{soak}");
    assert_eq!(soak["stayer_out_of_order"], 0, "{soak}");
}
