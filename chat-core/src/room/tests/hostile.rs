//! Frames any program may send: pipelined after a refusal, out of order,
//! floods, trickles, and the limits that bound what one client can take.

use super::*;

#[test]
fn frames_pipelined_after_a_refusal_have_no_effect() {
    // The ghost bug: a send before the hello is refused, and the hello in
    // the same read must not join anyone.
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.open(B, ms(1));
    let outs = harness.frames(
        B,
        vec![say(LOBBY, 1, "early"), hello("Ghost"), join(LOBBY)],
        ms(2),
    );
    assert_eq!(
        error_codes(&received(&outs, B)),
        [ErrorCode::ProtocolViolation]
    );
    assert!(broadcasts(&outs).is_empty(), "nobody joined: {outs:?}");
    assert_eq!(harness.rooms.member_count(), 1);
    assert!(harness.rooms.stats().frames_ignored >= 2);
}

#[test]
fn a_send_then_quit_in_one_read_delivers_the_event_then_the_ack_then_bye() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.member(B, "John", ms(1));
    let outs = harness.frames(
        B,
        vec![
            say(LOBBY, 1, "bye all"),
            ClientFrame::Quit,
            say(LOBBY, 2, "after"),
        ],
        ms(2),
    );
    assert_eq!(
        received(&outs, B),
        [
            message(LOBBY, 3, "John", "bye all"),
            ack(LOBBY, 1, 3),
            ServerFrame::Bye
        ]
    );
    assert_eq!(
        received(&outs, A),
        [message(LOBBY, 3, "John", "bye all"), left(LOBBY, 4, "John")]
    );
}

#[test]
fn a_second_hello_ends_the_session() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.member(B, "John", ms(1));
    let outs = harness.frame(B, hello("John"), ms(2));
    assert_eq!(
        error_codes(&received(&outs, B)),
        [ErrorCode::ProtocolViolation]
    );
    assert_eq!(broadcasts(&outs), [(vec![A], left(LOBBY, 3, "John"))]);
}

#[test]
fn a_connection_without_an_accepted_hello_is_dropped_at_the_deadline_even_if_it_trickles() {
    let config = RoomConfig::default();
    let mut harness = Harness::new();
    harness.open(A, ms(0));
    for second in 1..config.handshake_timeout.as_secs() {
        harness.rooms.handle_progress(A, secs(second));
        harness.frame(A, ClientFrame::Heartbeat, secs(second));
        assert!(closes(&harness.tick(secs(second))).is_empty());
    }
    let outs = harness.tick(config.handshake_timeout);
    assert_eq!(
        error_codes(&received(&outs, A)),
        [ErrorCode::HandshakeTimeout]
    );
    assert_eq!(closes(&outs), [(A, true)]);
    assert_eq!(harness.rooms.stats().handshake_timeouts, 1);
}

#[test]
fn bytes_of_an_unfinished_frame_keep_a_member_alive() {
    let config = RoomConfig::default();
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness
        .rooms
        .handle_progress(A, config.heartbeat_timeout - secs(1));
    assert!(closes(&harness.tick(config.heartbeat_timeout)).is_empty());
    assert_eq!(
        closes(&harness.tick(config.heartbeat_timeout * 2)),
        [(A, false)]
    );
}

#[test]
fn connections_are_limited_in_total_and_per_address() {
    let config = RoomConfig {
        connections_max: 3,
        connections_per_address_max: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.open_from(A, address(1), ms(0));
    harness.open_from(B, address(1), ms(0));
    let third = harness.open_from(C, address(1), ms(0));
    assert_eq!(
        error_codes(&received(&third, C)),
        [ErrorCode::TooManyConnections]
    );
    harness.closed(C, CloseReason::PeerClosed, ms(1));
    let other = harness.open_from(C, address(2), ms(1));
    assert!(
        error_codes(&received(&other, C)).is_empty(),
        "another address is fine"
    );
    let fourth = harness.open_from(D, address(3), ms(1));
    assert_eq!(
        error_codes(&received(&fourth, D)),
        [ErrorCode::TooManyConnections]
    );
    assert_eq!(harness.rooms.stats().connections_refused, 2);
}

#[test]
fn refused_hellos_are_bounded_per_connection() {
    let config = RoomConfig {
        hello_attempts_max: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.open(A, ms(0));
    for _ in 0..2 {
        let outs = harness.frame(A, hello("bad name"), ms(1));
        assert_eq!(error_codes(&received(&outs, A)), [ErrorCode::NickInvalid]);
    }
    let outs = harness.frame(A, hello("Good"), ms(2));
    assert_eq!(
        error_codes(&received(&outs, A)),
        [ErrorCode::TooManyAttempts]
    );
}

#[test]
fn a_fast_sender_is_throttled_then_served_at_the_rate() {
    let config = RoomConfig {
        message_rate: 10,
        message_burst: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Joshua", ms(0));
    harness.tick(secs(1)); // refill after the hello and join
    let frames = (1..=5).map(|id| say(LOBBY, id, "fast")).collect();
    let outs = harness.frames(A, frames, secs(1));
    assert_eq!(broadcasts(&outs).len(), 2, "the burst");
    assert!(outs.contains(&Out::Throttle(A, true)));
    let later = harness.tick(secs(1) + ms(250));
    assert_eq!(broadcasts(&later).len(), 2, "two more at ten a second");
    let done = harness.tick(secs(1) + ms(500));
    assert_eq!(broadcasts(&done).len(), 1);
    assert!(
        done.contains(&Out::Throttle(A, false)),
        "read again once caught up"
    );
}

#[test]
fn a_client_that_keeps_flooding_is_closed_and_others_are_unaffected() {
    let config = RoomConfig {
        message_rate: 10,
        message_burst: 1,
        flood_timeout: secs(5),
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Flood", ms(0));
    harness.member(B, "Calm", ms(0));
    let mut id = 0;
    let mut at = secs(1);
    let mut closed = false;
    while at <= secs(7) && !closed {
        let frames = (0..20).map(|_| {
            id += 1;
            say(LOBBY, id, "spam")
        });
        let mut outs = harness.frames(A, frames.collect(), at);
        outs.extend(harness.tick(at));
        closed = error_codes(&received(&outs, A)).contains(&ErrorCode::RateLimited);
        at += ms(250);
    }
    assert!(
        closed,
        "flooding for the flood timeout closes the connection"
    );
    let calm = harness.frame(B, say(LOBBY, 1, "still fine"), at);
    assert_eq!(
        received(&calm, B).last(),
        Some(&ServerFrame::Ack {
            id: 1,
            seq: broadcasts(&calm)[0].1.event_seq().expect("an event"),
            room: Some(LOBBY.into()),
            to: None
        })
    );
    assert_eq!(harness.rooms.stats().floods_closed, 1);
}

#[test]
fn a_throttled_connection_is_not_dropped_for_the_silence_it_was_made_to_keep() {
    let config = RoomConfig {
        message_rate: 1,
        message_burst: 1,
        flood_timeout: secs(60),
        ..RoomConfig::default()
    };
    let heartbeat_timeout = config.heartbeat_timeout;
    let mut harness = Harness::with_config(config);
    harness.member(A, "Patient", ms(0));
    let frames = (1..=30).map(|id| say(LOBBY, id, "slowly")).collect();
    harness.frames(A, frames, secs(2));
    let mut closed = Vec::new();
    for second in 3..=(heartbeat_timeout.as_secs() + 5) {
        closed.extend(closes(&harness.tick(secs(second))));
    }
    assert!(closed.is_empty(), "{closed:?}");
}
