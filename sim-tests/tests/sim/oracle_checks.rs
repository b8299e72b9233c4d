//! The harness can fail: for every property, the smallest change to what a
//! correct run observed that breaks it is reported under that property's
//! name. (This replaces a canary: every property has its own.)

use std::time::Duration;

use chat_core::protocol::ServerFrame;
use chat_core::room::Notice;
use chat_core::session::Line;
use sim_tests::adversary::Conversation;
use sim_tests::named;
use sim_tests::oracle::{self, Property};
use sim_tests::scenario::Scenario;
use sim_tests::world::{self, Observations, StreamOf};

fn correct(scenario: &Scenario) -> Observations {
    let observations = world::run(scenario);
    let verdict = oracle::check(&observations);
    assert!(
        verdict.violations.is_empty(),
        "a correct run to start from: {:#?}",
        verdict.violations
    );
    observations
}

fn broken(observations: &Observations) -> Vec<Property> {
    oracle::check(observations)
        .violations
        .iter()
        .map(|violation| violation.property)
        .collect()
}

fn assert_breaks(observations: &Observations, property: Property) {
    let broken = broken(observations);
    assert!(
        broken.contains(&property),
        "expected {property}, got {broken:?}"
    );
}

/// The lines of the first run named `nick`.
fn lines<'a>(observations: &'a mut Observations, nick: &str) -> &'a mut Vec<(Duration, Line)> {
    let run = observations
        .clients
        .iter_mut()
        .flat_map(|client| client.runs.iter_mut())
        .find(|run| run.nick == nick)
        .expect("a run of that nickname");
    &mut run.shown
}

fn position(lines: &[(Duration, Line)], text: &str) -> usize {
    lines
        .iter()
        .position(|(_, line)| line.to_string() == text)
        .unwrap_or_else(|| panic!("{text:?} is shown"))
}

fn rooms() -> Observations {
    correct(&named::rooms_and_private_messages())
}

#[test]
fn an_altered_line_is_a_fabrication() {
    let mut observations = rooms();
    let shown = lines(&mut observations, "Bob");
    let index = position(shown, "Ann: Morning, all");
    if let Line::Message { text, .. } = &mut shown[index].1 {
        *text = "Evening, all".to_owned();
    }
    assert_breaks(&observations, Property::NoFabrication);
}

#[test]
fn a_doubled_line_is_a_duplicate() {
    let mut observations = rooms();
    let shown = lines(&mut observations, "Bob");
    let index = position(shown, "Ann: Morning, all");
    let copy = shown[index].clone();
    shown.insert(index + 1, copy);
    assert_breaks(&observations, Property::NoDuplicate);
}

#[test]
fn a_dropped_line_is_a_silent_gap_and_swapped_lines_are_out_of_order() {
    let mut observations = rooms();
    let shown = lines(&mut observations, "Bob");
    let index = position(shown, "Ann: Morning, all");
    shown.remove(index);
    assert_breaks(&observations, Property::NoSilentGap);
    let mut observations = rooms();
    let shown = lines(&mut observations, "Bob");
    let index = position(shown, "Ann: Morning, all");
    shown.swap(index, index + 1);
    assert_breaks(&observations, Property::SequenceOrder);
}

#[test]
fn a_gap_notice_over_events_still_kept_is_unjustified() {
    let mut observations = rooms();
    let shown = lines(&mut observations, "Bob");
    let index = position(shown, "Ann: Morning, all");
    shown[index].1 = Line::Gap {
        room: Some("lobby".to_owned()),
        count: 1,
    };
    assert_breaks(&observations, Property::GapJustified);
}

#[test]
fn a_private_message_shown_to_a_third_breaks_its_parties() {
    let mut observations = rooms();
    let copy = lines(&mut observations, "Bob")
        .iter()
        .find(|(_, line)| matches!(line, Line::Private { .. }))
        .cloned()
        .expect("Bob got a private message");
    lines(&mut observations, "Dan").push(copy);
    assert_breaks(&observations, Property::PrivateParties);
}

#[test]
fn history_that_is_not_the_rooms_last_messages_breaks_history_on_join() {
    let mut observations = rooms();
    let shown = lines(&mut observations, "Dan");
    let index = shown
        .iter()
        .position(|(_, line)| matches!(line, Line::History { .. }))
        .expect("Dan was shown history");
    if let Line::History { text, .. } = &mut shown[index].1 {
        *text = "something never said".to_owned();
    }
    assert_breaks(&observations, Property::HistoryOnJoin);
}

#[test]
fn a_second_session_with_a_nickname_in_use_breaks_uniqueness() {
    let mut observations = rooms();
    let at = observations.server.notices.last().expect("notices").0;
    observations.server.notices.push((
        at,
        Notice::Nickname {
            connection: chat_core::room::ConnectionId(99),
            nick: "Ann".to_owned(),
        },
    ));
    assert_breaks(&observations, Property::UniqueNicknames);
}

#[test]
fn a_second_departure_breaks_join_leave_once() {
    let mut observations = rooms();
    let last = observations.server.events.last().expect("events").clone();
    let (StreamOf::Room(room), Some(seq)) = (last.stream, last.frame.event_seq()) else {
        panic!("the last event is a room's: {last:?}");
    };
    let (ServerFrame::Left { room: name, .. }
    | ServerFrame::Joined { room: name, .. }
    | ServerFrame::Message { room: name, .. }
    | ServerFrame::Renamed { room: name, .. }) = &last.frame
    else {
        panic!("a room event");
    };
    observations.server.events.push(world::ServerEvent {
        at: last.at,
        stream: StreamOf::Room(room),
        frame: ServerFrame::Left {
            room: name.clone(),
            seq: seq + 1,
            nick: "Nobody".to_owned(),
        },
    });
    assert_breaks(&observations, Property::JoinLeaveOnce);
}

#[test]
fn a_rename_missing_from_a_room_breaks_rename_announced() {
    let mut observations = rooms();
    let index = observations
        .server
        .events
        .iter()
        .position(|event| matches!(event.frame, ServerFrame::Renamed { .. }))
        .expect("Cid was renamed");
    observations.server.events.remove(index);
    assert_breaks(&observations, Property::RenameAnnounced);
}

#[test]
fn messages_logged_out_of_their_senders_order_break_fifo() {
    let mut observations = rooms();
    let anns = |event: &world::ServerEvent| matches!(&event.frame, ServerFrame::Message { nick, .. } if nick == "Ann");
    let first_stream = observations
        .server
        .events
        .iter()
        .find(|event| anns(event))
        .expect("Ann spoke")
        .stream;
    let texts: Vec<usize> = observations
        .server
        .events
        .iter()
        .enumerate()
        .filter(|(_, event)| anns(event) && event.stream == first_stream)
        .map(|(index, _)| index)
        .collect();
    let (first, second) = (texts[0], texts[1]);
    let text = |event: &world::ServerEvent| match &event.frame {
        ServerFrame::Message { text, .. } => text.clone(),
        _ => unreachable!(),
    };
    let (one, two) = (
        text(&observations.server.events[first]),
        text(&observations.server.events[second]),
    );
    // The sim's texts carry their sender's number; these two are Ann's
    // first two, relabelled so that the second claims to come first.
    for (index, label) in [
        (first, format!("c0 m2 {one}")),
        (second, format!("c0 m1 {two}")),
    ] {
        if let ServerFrame::Message { text, .. } = &mut observations.server.events[index].frame {
            *text = label;
        }
    }
    assert_breaks(&observations, Property::PerSenderFifo);
}

#[test]
fn an_event_numbered_past_the_next_breaks_the_log_and_a_number_reused_breaks_uniqueness() {
    let mut observations = rooms();
    let last = observations.server.events.len() - 1;
    let mut frame = observations.server.events[last].frame.clone();
    if let ServerFrame::Joined { seq, .. }
    | ServerFrame::Left { seq, .. }
    | ServerFrame::Message { seq, .. }
    | ServerFrame::Renamed { seq, .. } = &mut frame
    {
        *seq += 5;
    }
    observations.server.events[last].frame = frame;
    assert_breaks(&observations, Property::LogContiguous);
    let mut observations = rooms();
    let mut copy = observations.server.events[0].clone();
    if let ServerFrame::Joined { nick, .. } = &mut copy.frame {
        *nick = "Someone else".to_owned();
    }
    observations.server.events.push(copy);
    assert_breaks(&observations, Property::SeqUnique);
}

#[test]
fn a_restart_that_lost_released_events_breaks_durability() {
    let mut observations = correct(&named::server_restart());
    let restart = observations
        .server
        .lifetimes
        .iter_mut()
        .skip(1)
        .find(|lifetime| lifetime.up)
        .expect("a restart");
    for room in &mut restart.rooms {
        room.last_seq = 0;
        room.history.clear();
    }
    assert_breaks(&observations, Property::AckedDurable);
}

#[test]
fn a_forgotten_session_that_had_not_ended_is_a_spurious_rejoin() {
    let mut observations = rooms();
    let shown = lines(&mut observations, "Bob");
    let at = shown[3].0;
    shown.insert(3, (at, Line::Rejoining));
    assert_breaks(&observations, Property::NoSpuriousRejoin);
}

#[test]
fn a_message_typed_that_went_nowhere_unreported_is_unresolved() {
    let mut observations = rooms();
    let run = observations.clients[0].runs.first_mut().expect("a run");
    run.typed.push((
        Duration::from_secs(15),
        "c0 m99 lost in the void".to_owned(),
    ));
    assert_breaks(&observations, Property::SendsResolved);
}

#[test]
fn a_screen_that_stops_early_fails_liveness() {
    let mut observations = rooms();
    let shown = lines(&mut observations, "Dan");
    let index = position(shown, "Dan: What did I miss?");
    shown.truncate(index);
    assert_breaks(&observations, Property::LivenessDelivery);
}

#[test]
fn a_crashed_client_never_announced_breaks_crash_announced() {
    let mut observations = correct(&named::crashed_client());
    observations
        .server
        .events
        .retain(|event| !matches!(&event.frame, ServerFrame::Left { nick, .. } if nick == "John"));
    assert_breaks(&observations, Property::CrashAnnounced);
}

#[test]
fn a_signal_leave_the_server_never_heard_breaks_signal_leave_announced() {
    let mut observations = correct(&named::signal_during_held_link());
    observations
        .server
        .notices
        .retain(|(_, notice)| *notice != chat_core::room::Notice::LeftServer("John".to_owned()));
    assert_breaks(&observations, Property::SignalLeaveAnnounced);
}

#[test]
fn a_queue_over_its_limit_breaks_bounded_queues() {
    let mut observations = rooms();
    observations.server.queued_bytes_peak = observations.queue_bytes_max + 1;
    assert_breaks(&observations, Property::BoundedQueues);
}

#[test]
fn a_stopped_reader_never_dropped_breaks_its_bound() {
    let mut observations = correct(&named::slow_reader());
    // Stopped for longer than the bound, and never dropped.
    let sam = observations
        .clients
        .iter_mut()
        .find(|client| !client.freezes.is_empty())
        .expect("Sam stops reading");
    sam.freezes[0].1 = sam.freezes[0].0 + Duration::from_secs(40);
    observations.server.notices.retain(
        |(_, notice)| !matches!(notice, Notice::Dropped { nick: Some(nick), .. } if nick == "Sam"),
    );
    assert_breaks(&observations, Property::StoppedReaderDropped);
}

/// The hostile client's conversation of one episode.
fn conversation<'a>(observations: &'a mut Observations, nick: &str) -> &'a mut Conversation {
    observations
        .adversaries
        .iter_mut()
        .find(|conversation| conversation.nick == nick)
        .expect("an episode of that nickname")
}

#[test]
fn a_frame_after_bye_or_a_missing_answer_breaks_the_adversary_contract() {
    let hostile = correct(&named::hostile_client());
    // mallory-2 quits: something after its bye.
    let mut observations = hostile.clone();
    let after_quit = conversation(&mut observations, "mallory-2");
    let last = after_quit.received.last().expect("a bye").0;
    after_quit.received.push((last, ServerFrame::Heartbeat));
    assert_breaks(&observations, Property::AdversaryContract);
    // mallory-4 misuses ids: the stale id goes unanswered.
    let mut observations = hostile.clone();
    conversation(&mut observations, "mallory-4")
        .received
        .retain(|(_, frame)| !matches!(frame, ServerFrame::Error { id: Some(3), .. }));
    assert_breaks(&observations, Property::AdversaryContract);
    // mallory-4's ack of id 5 comes before the server released its event.
    let mut observations = hostile;
    let id_abuse = conversation(&mut observations, "mallory-4");
    let (ack_at, _) = *id_abuse
        .received
        .iter()
        .find(|(_, frame)| matches!(frame, ServerFrame::Ack { id: 5, .. }))
        .expect("ack 5");
    for event in &mut observations.server.events {
        if matches!(&event.frame, ServerFrame::Message { nick, .. } if nick == "mallory-4") {
            event.at = ack_at + Duration::from_millis(1);
        }
    }
    assert_breaks(&observations, Property::AdversaryContract);
}

#[test]
fn every_property_has_a_check_here_that_breaks_it() {
    let source = include_str!("oracle_checks.rs");
    for property in Property::ALL {
        let name = format!("Property::{property:?}");
        assert!(
            source.matches(&name).count() >= 1,
            "{property} is never broken on purpose"
        );
    }
}
