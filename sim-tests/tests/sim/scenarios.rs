//! Named scenarios: each runs the real server and clients over turmoil,
//! must satisfy every property, and is reviewed as a transcript snapshot.

use std::time::Duration;

use chat_core::room::RoomConfig;
use sim_tests::world::{self, Observations};
use sim_tests::{named, oracle, transcript};

use crate::assert_transcript;

fn run_clean(scenario: &sim_tests::scenario::Scenario) -> Observations {
    let observations = world::run(scenario);
    let verdict = oracle::check(&observations);
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
    assert!(verdict.check_count() > 0, "the oracle checked nothing");
    observations
}

/// The lines one user saw (every run of the host).
fn screen(observations: &Observations, nick: &str) -> Vec<(Duration, String)> {
    observations
        .clients
        .iter()
        .flat_map(|client| &client.runs)
        .filter(|run| run.nick == nick)
        .flat_map(|run| run.shown.iter().map(|(at, line)| (*at, line.to_string())))
        .collect()
}

fn count(lines: &[(Duration, String)], text: &str) -> usize {
    lines.iter().filter(|(_, line)| line == text).count()
}

/// The leave by a signal that gave up on its ack still reaches the server:
/// John is gone as soon as the held link delivers (16 s), where a client
/// that closed without `quit` kept him until the session grace ran out.
#[test]
fn a_signal_while_the_link_holds_still_says_quit() {
    let observations = run_clean(&named::signal_during_held_link());
    let verdict = oracle::check(&observations);
    assert_eq!(
        verdict.checks.get(&oracle::Property::SignalLeaveAnnounced),
        Some(&1),
        "the leave was judged"
    );
    let john = &observations.clients[1].runs[0];
    let (ended, _) = john.outcome.expect("John's client ended");
    assert!(
        ended < Duration::from_secs(16),
        "it left during the hold: {ended:?}"
    );
    let left = observations
        .server
        .notices
        .iter()
        .find(|(_, notice)| *notice == chat_core::room::Notice::LeftServer("John".to_owned()))
        .map(|(at, _)| *at)
        .expect("John left the server");
    assert!(
        left >= Duration::from_secs(16) && left < Duration::from_secs(19),
        "gone when the link delivered, at {left:?}"
    );
}

#[test]
fn the_original_conversation() {
    let observations = run_clean(&named::original_conversation());
    let joshua = screen(&observations, "Joshua");
    let texts: Vec<&str> = joshua.iter().map(|(_, line)| line.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Joshua has connected to the chatroom.",
            "You are now connected to the chatroom.",
            "John has connected to the chatroom.",
            "John: Hello there",
            "Joshua: What's up?",
            "John: Nothing much",
            "John has left the chatroom.",
        ]
    );
    assert_transcript(
        "sim_original_conversation",
        &transcript::screens(&observations),
    );
}

#[test]
fn a_crashed_client_is_announced_as_left_once_within_the_bound() {
    let scenario = named::crashed_client();
    let observations = run_clean(&scenario);
    let joshua = screen(&observations, "Joshua");
    assert_eq!(count(&joshua, "John has left the chatroom."), 1);
    let (left_at, _) = joshua
        .iter()
        .find(|(_, line)| line == "John has left the chatroom.")
        .expect("announced");
    let crashed_at = observations.clients[1]
        .crashed_at
        .expect("John's host crashed");
    let config = RoomConfig::default();
    assert!(
        *left_at >= crashed_at + config.session_grace,
        "announced at {left_at:?}, before the grace period ended"
    );
    assert!(
        *left_at
            <= crashed_at
                + config.heartbeat_timeout
                + config.session_grace
                + Duration::from_secs(1),
        "announced at {left_at:?}, after the detection bound"
    );
    assert_transcript("sim_crashed_client", &transcript::screens(&observations));
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_others_never_notice() {
    let observations = run_clean(&named::slow_reader());
    assert!(
        observations.server.stats.slow_readers_dropped >= 1,
        "Sam was never dropped"
    );
    for nick in ["Alice", "Bob"] {
        let lines = screen(&observations, nick);
        assert!(
            lines
                .iter()
                .all(|(_, line)| !line.starts_with("Connection to the server lost")),
            "{nick} noticed something"
        );
        assert_eq!(
            count(&lines, "Bob: That was a lot"),
            1,
            "{nick} saw the last message once"
        );
    }
    let sam = screen(&observations, "Sam");
    assert!(
        sam.iter().any(|(_, line)| line.starts_with("Reconnected;")),
        "Sam came back: {sam:#?}"
    );
    assert_transcript("sim_slow_reader", &transcript::screens(&observations));
}

#[test]
fn a_partition_that_heals_loses_nothing_doubles_nothing_and_does_not_flap() {
    let observations = run_clean(&named::healed_partition());
    let joshua = screen(&observations, "Joshua");
    assert_eq!(
        count(&joshua, "John has connected to the chatroom."),
        1,
        "no join flapping"
    );
    assert_eq!(
        count(&joshua, "John has left the chatroom."),
        0,
        "no leave flapping"
    );
    for text in ["John: Sent while cut off", "John: Back again"] {
        assert_eq!(count(&joshua, text), 1, "{text}");
    }
    let john = screen(&observations, "John");
    for text in [
        "Joshua: Hello?",
        "Joshua: I will keep talking",
        "Joshua: until you are back",
        "John: Sent while cut off",
    ] {
        assert_eq!(count(&john, text), 1, "John sees {text:?} once");
    }
    assert!(
        john.iter()
            .any(|(_, line)| line.starts_with("Reconnected;")),
        "John resumed"
    );
    assert_eq!(observations.server.stats.resumes, 1);
    assert_transcript("sim_healed_partition", &transcript::screens(&observations));
}

#[test]
fn rooms_private_messages_and_renames_reach_exactly_whom_they_should() {
    let observations = run_clean(&named::rooms_and_private_messages());
    let ann = screen(&observations, "Ann");
    let bob = screen(&observations, "Bob");
    let cid = screen(&observations, "Cid");
    let dan = screen(&observations, "Dan");
    assert_eq!(count(&ann, "-> *Bob* lunch at noon?"), 1);
    assert_eq!(count(&bob, "*Ann* lunch at noon?"), 1);
    for (nick, lines) in [("Cid", &cid), ("Dan", &dan)] {
        assert!(
            lines.iter().all(|(_, line)| !line.contains("lunch")),
            "{nick} saw a private message: {lines:#?}"
        );
    }
    assert_eq!(
        count(&ann, "[lobby] Cid is now known as Cyd."),
        1,
        "tagged: Ann talks in dev"
    );
    assert_eq!(count(&cid, "You are now known as Cyd."), 1);
    assert!(
        dan.iter()
            .any(|(_, line)| line.starts_with("--- ") && line.contains("recent message")),
        "Dan is shown recent history: {dan:#?}"
    );
    assert!(
        cid.iter()
            .all(|(_, line)| !line.contains("The build is green")),
        "dev's messages stay in dev"
    );
    assert_transcript(
        "sim_rooms_and_private_messages",
        &transcript::screens(&observations),
    );
}

#[test]
fn a_server_restart_is_a_pause_and_nothing_else() {
    let observations = run_clean(&named::server_restart());
    assert_eq!(observations.server.crashes.len(), 1);
    assert!(observations.server.lifetimes.len() >= 2, "it started again");
    for nick in ["Joshua", "John"] {
        let lines = screen(&observations, nick);
        assert!(
            lines
                .iter()
                .any(|(_, line)| line.starts_with("Reconnected;")),
            "{nick} resumed: {lines:#?}"
        );
        assert!(
            lines.iter().all(|(_, line)| !line.contains("has left") && *line != "The server no longer knows this session; joining the chatroom again (what was said meanwhile is not shown)."),
            "{nick} saw nobody leave and kept the session: {lines:#?}"
        );
        for text in [
            "Joshua: Before the crash",
            "Joshua: Typed while the server is down",
            "Joshua: After the restart",
            "John: Still here",
        ] {
            assert_eq!(count(&lines, text), 1, "{nick} sees {text:?} once");
        }
    }
    assert_transcript("sim_server_restart", &transcript::screens(&observations));
}

#[test]
fn a_hostile_client_gets_its_answers_and_the_others_only_see_it_visit() {
    let observations = run_clean(&named::hostile_client());
    let verdict = oracle::check(&observations);
    let judged = verdict
        .checks
        .get(&oracle::Property::AdversaryContract)
        .copied()
        .unwrap_or(0);
    assert!(
        judged >= observations.scenario.adversaries[0].episodes.len(),
        "every episode was judged ({judged} checks)"
    );
    assert!(
        observations
            .adversaries
            .iter()
            .all(|conversation| conversation.connected.is_some()),
        "every episode connected"
    );
    for nick in ["Joshua", "John"] {
        let lines = screen(&observations, nick);
        for text in ["Joshua: Anyone there?", "John: Here"] {
            assert_eq!(count(&lines, text), 1, "{nick} sees {text:?} once");
        }
        assert!(
            lines.iter().all(|(_, line)| !line.contains("after quit")
                && !line.contains("before any hello")
                && !line.contains("mallory-0")
                && !line.contains("mallory-6")
                && !line.starts_with("Reconnect")),
            "{nick} saw nothing the protocol refused, and kept the connection: {lines:#?}"
        );
    }
    assert_transcript("sim_hostile_client", &transcript::screens(&observations));
}

#[test]
fn every_named_scenario_has_a_snapshot_test() {
    let names: Vec<&str> = named::all().iter().map(|(name, _)| *name).collect();
    let source = include_str!("scenarios.rs");
    for name in names {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} has no test"
        );
    }
}
