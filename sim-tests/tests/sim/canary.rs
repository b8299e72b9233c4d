//! The harness can fail: corrupt what a correct run observed, one way at a
//! time, and the oracle must name the broken property.

use chat_core::session::Line;
use sim_tests::world::{self, Observations};
use sim_tests::{named, oracle};

fn correct_run() -> Observations {
    let observations = world::run(&named::original_conversation());
    assert!(
        oracle::check(&observations).violations.is_empty(),
        "the canary needs a correct run to start from"
    );
    observations
}

fn properties(observations: &Observations) -> Vec<&'static str> {
    oracle::check(observations)
        .violations
        .iter()
        .map(|violation| violation.property)
        .collect()
}

/// Joshua's lines (the first client host's first run).
fn joshua(observations: &mut Observations) -> &mut Vec<(std::time::Duration, Line)> {
    &mut observations.clients[0].runs[0].shown
}

fn position(lines: &[(std::time::Duration, Line)], text: &str) -> usize {
    lines
        .iter()
        .position(|(_, line)| line.to_string() == text)
        .expect("the line is shown")
}

#[test]
fn a_dropped_line_is_a_silent_gap() {
    let mut observations = correct_run();
    let lines = joshua(&mut observations);
    let index = position(lines, "John: Hello there");
    lines.remove(index);
    assert!(properties(&observations).contains(&"no_silent_gap"));
}

#[test]
fn a_doubled_line_is_a_duplicate() {
    let mut observations = correct_run();
    let lines = joshua(&mut observations);
    let index = position(lines, "John: Hello there");
    let copy = lines[index].clone();
    lines.insert(index + 1, copy);
    assert!(properties(&observations).contains(&"no_duplicate"));
}

#[test]
fn an_altered_line_is_a_fabrication() {
    let mut observations = correct_run();
    let lines = joshua(&mut observations);
    let index = position(lines, "John: Hello there");
    if let Line::Message { text, .. } = &mut lines[index].1 {
        *text = "Goodbye there".to_owned();
    }
    assert!(properties(&observations).contains(&"no_fabrication"));
}

#[test]
fn a_truncated_screen_fails_liveness() {
    let mut observations = correct_run();
    let lines = joshua(&mut observations);
    let index = position(lines, "John has left the chatroom.");
    lines.truncate(index);
    assert!(properties(&observations).contains(&"liveness_delivery"));
}
