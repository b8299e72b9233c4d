//! Several rooms per session, private messages, nickname changes, the
//! rules for names, history on join, and the bounds on rooms and history.

use super::*;

#[test]
fn each_room_has_its_own_numbering_and_members() {
    let mut harness = Harness::new();
    harness.member(A, "Ann", ms(0));
    harness.member(B, "Bob", ms(0));
    let dev = harness.frame(A, join("dev"), ms(1));
    assert_eq!(broadcasts(&dev), [(vec![A], joined("dev", 1, "Ann"))]);
    let talk = harness.frame(A, say("dev", 1, "only dev"), ms(2));
    assert_eq!(
        broadcasts(&talk),
        [(vec![A], message("dev", 2, "Ann", "only dev"))],
        "Bob is not in dev"
    );
    let lobby = harness.frame(A, say(LOBBY, 2, "lobby too"), ms(3));
    assert_eq!(
        broadcasts(&lobby),
        [(vec![A, B], message(LOBBY, 3, "Ann", "lobby too"))]
    );
    let parted = harness.frame(A, ClientFrame::Leave { room: "dev".into() }, ms(4));
    assert_eq!(
        received(&parted, A),
        [ServerFrame::Parted { room: "dev".into() }]
    );
    assert_eq!(
        harness.rooms.room_names(),
        ["dev", LOBBY],
        "an empty room is kept for its message"
    );
}

#[test]
fn rooms_are_freed_so_visiting_many_never_locks_new_rooms_out() {
    let config = RoomConfig {
        rooms_max: 4,
        message_rate: 0,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Visitor", ms(0));
    for index in 0..50 {
        let room = format!("room{index}");
        let outs = harness.frame(A, join(&room), ms(1));
        assert!(
            error_codes(&received(&outs, A)).is_empty(),
            "{room}: {outs:?}"
        );
        harness.frame(A, ClientFrame::Leave { room }, ms(2));
    }
    harness.member(B, "Late", ms(3));
    assert_eq!(harness.rooms.room_names(), [LOBBY]);
    assert_eq!(harness.rooms.stats().rooms_freed, 50);
}

#[test]
fn an_empty_room_keeps_its_messages_for_later_members_until_its_place_is_needed() {
    let config = RoomConfig {
        rooms_max: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Ann", ms(0));
    harness.frame(A, join("dev"), ms(1));
    harness.frame(A, say("dev", 1, "notes for later"), ms(2));
    harness.frame(A, ClientFrame::Leave { room: "dev".into() }, ms(3));
    assert_eq!(
        harness.rooms.room_names(),
        ["dev", LOBBY],
        "kept for its history"
    );
    harness.open(B, ms(4));
    harness.frame(B, hello("Bob"), ms(4));
    let later = harness.frame(B, join("dev"), ms(5));
    let frames = received(&later, B);
    assert!(
        matches!(&frames[1], ServerFrame::History { text, .. } if text == "notes for later"),
        "{frames:?}"
    );
    assert!(
        matches!(&frames[2], ServerFrame::Joined { seq: 4, .. }),
        "numbering goes on"
    );
    let left = harness.frame(B, ClientFrame::Leave { room: "dev".into() }, ms(6));
    assert!(
        received(&left, B).contains(&ServerFrame::Parted { room: "dev".into() }),
        "{left:?}"
    );
    let third = harness.frame(B, join("third"), ms(7));
    assert!(
        error_codes(&received(&third, B)).is_empty(),
        "the empty room made way: {third:?}"
    );
    assert_eq!(harness.rooms.room_names(), [LOBBY, "third"]);
}

#[test]
fn room_and_session_limits_refuse_clearly_and_keep_the_connection() {
    let config = RoomConfig {
        rooms_max: 2,
        room_members_max: 1,
        rooms_per_session_max: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Ann", ms(0));
    harness.frame(A, join("dev"), ms(1));
    let outs = harness.frame(A, join("third"), ms(2));
    assert_eq!(error_codes(&received(&outs, A)), [ErrorCode::RoomLimit]);
    let outs = harness.member(B, "Bob", ms(3));
    assert_eq!(error_codes(&received(&outs, B)), [ErrorCode::RoomFull]);
    let outs = harness.frame(B, join("other"), ms(4));
    assert_eq!(error_codes(&received(&outs, B)), [ErrorCode::TooManyRooms]);
    let outs = harness.frame(B, ClientFrame::ListRooms, ms(5));
    assert!(matches!(
        &received(&outs, B)[..],
        [ServerFrame::RoomList { total: 2, .. }]
    ));
}

#[test]
fn a_private_message_reaches_exactly_its_two_parties_once() {
    let mut harness = Harness::new();
    harness.member(A, "Ann", ms(0));
    harness.member(B, "Bob", ms(0));
    harness.member(C, "Cid", ms(0));
    let outs = harness.frame(A, private("bob", 1, "psst"), ms(1));
    let to_bob = received(&outs, B);
    assert!(
        matches!(&to_bob[..], [ServerFrame::Private { seq: 1, from, to, .. }] if from == "Ann" && to == "Bob")
    );
    let to_ann = received(&outs, A);
    assert!(matches!(&to_ann[0], ServerFrame::Private { seq: 1, .. }));
    assert_eq!(
        to_ann[1],
        ServerFrame::Ack {
            id: 1,
            seq: 1,
            room: None,
            to: Some("Bob".into())
        }
    );
    assert!(received(&outs, C).is_empty(), "nobody else");
    assert!(broadcasts(&outs).is_empty());
    let missing = harness.frame(A, private("Nobody", 2, "hello?"), ms(2));
    assert_eq!(error_codes(&received(&missing, A)), [ErrorCode::NoSuchNick]);
}

#[test]
fn a_private_message_to_someone_offline_is_replayed_when_they_resume() {
    let mut harness = Harness::new();
    harness.member(A, "Ann", ms(0));
    harness.member(B, "Bob", ms(0));
    harness.closed(B, CloseReason::PeerClosed, ms(1));
    let outs = harness.frame(A, private("Bob", 1, "while you were away"), ms(2));
    assert!(outs.contains(&Out::Private(
        None,
        ServerFrame::Private {
            seq: 1,
            from: "Ann".into(),
            to: "Bob".into(),
            text: "while you were away".into(),
            action: false,
            sent: false
        }
    )));
    harness.open(C, ms(3));
    let resume = harness.resume(B, "Bob", &[(LOBBY, 2)]);
    let frames = received(&harness.frame(C, resume, ms(4)), C);
    assert!(matches!(
        frames[0],
        ServerFrame::Welcome {
            private_seq: 0,
            replayed: 1,
            ..
        }
    ));
    assert!(
        matches!(&frames[1], ServerFrame::Private { seq: 1, text, .. } if text == "while you were away")
    );
}

#[test]
fn a_nickname_change_is_announced_once_in_every_room_and_stays_unique() {
    let mut harness = Harness::new();
    harness.member(A, "Ann", ms(0));
    harness.member(B, "Bob", ms(0));
    harness.frame(A, join("dev"), ms(1));
    let outs = harness.frame(
        A,
        ClientFrame::Nick {
            nick: "Anna".into(),
        },
        ms(2),
    );
    let renames: Vec<String> = broadcasts(&outs)
        .into_iter()
        .map(|(_, frame)| match frame {
            ServerFrame::Renamed { room, from, to, .. } => format!("{room}: {from} -> {to}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(renames, ["lobby: Ann -> Anna", "dev: Ann -> Anna"]);
    assert!(received(&outs, A).contains(&ServerFrame::NickChanged {
        nick: "Anna".into()
    }));
    let taken = harness.frame(
        B,
        ClientFrame::Nick {
            nick: "ANNA".into(),
        },
        ms(3),
    );
    assert_eq!(error_codes(&received(&taken, B)), [ErrorCode::NickTaken]);
    let free = harness.member(C, "Ann", ms(4));
    assert!(
        error_codes(&received(&free, C)).is_empty(),
        "the old nickname is free"
    );
}

#[test]
fn nicknames_that_look_alike_or_differ_in_case_are_one() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    for (connection, nick) in [(B, "joshua"), (C, "J\u{043E}shua")] {
        harness.open(connection, ms(1));
        let outs = harness.frame(connection, hello(nick), ms(1));
        let frames = received(&outs, connection);
        assert_eq!(error_codes(&frames), [ErrorCode::NickTaken], "{nick}");
        let again = harness.frame(connection, hello(&format!("Other{}", connection.0)), ms(2));
        assert!(
            matches!(received(&again, connection)[0], ServerFrame::Welcome { .. }),
            "asked again on the same connection"
        );
    }
    harness.open(D, ms(3));
    let invisible = harness.frame(D, hello("Josh\u{200B}ua"), ms(3));
    assert_eq!(
        error_codes(&received(&invisible, D)),
        [ErrorCode::NickInvalid]
    );
}

#[test]
fn a_room_name_that_only_looks_like_an_existing_one_is_refused_and_case_is_ignored() {
    let mut harness = Harness::new();
    harness.member(A, "Ann", ms(0));
    harness.member(B, "Bob", ms(1));
    harness.frame(A, join("games"), ms(2));
    let look_alike = harness.frame(B, join("g\u{0430}mes"), ms(3));
    assert_eq!(
        error_codes(&received(&look_alike, B)),
        [ErrorCode::RoomInvalid]
    );
    let same = harness.frame(B, join("Games"), ms(4));
    assert!(
        matches!(
            &received(&same, B)[..],
            [ServerFrame::Entered { room, .. }, ..] if room == "games"
        ),
        "Games is games, with the spelling it was created with: {same:?}"
    );
}

#[test]
fn a_nickname_held_by_a_lost_connection_says_so_and_for_how_long() {
    let config = RoomConfig::default();
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.closed(A, CloseReason::PeerClosed, secs(1));
    harness.open(B, secs(11));
    let outs = harness.frame(B, hello("Joshua"), secs(11));
    let [
        ServerFrame::Error {
            code,
            message,
            retry_after_ms,
            ..
        },
    ] = &received(&outs, B)[..]
    else {
        panic!("{outs:?}");
    };
    assert_eq!(*code, ErrorCode::NickTaken);
    assert!(
        message.contains("lost its connection") && message.contains("20 s"),
        "{message}"
    );
    assert_eq!(
        *retry_after_ms,
        Some((config.session_grace - secs(10)).as_millis() as u64)
    );
}

#[test]
fn a_new_member_sees_recent_messages_marked_as_history_before_its_join() {
    let config = RoomConfig {
        history_on_join: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Ann", ms(0));
    for (id, text) in [(1, "one"), (2, "two"), (3, "three")] {
        harness.frame(A, say(LOBBY, id, text), ms(1));
    }
    let outs = harness.member(B, "Bob", ms(2));
    let frames = received(&outs, B);
    let names: Vec<String> = frames
        .iter()
        .skip(1)
        .map(|frame| match frame {
            ServerFrame::Entered { history, .. } => format!("entered, {history} follow"),
            ServerFrame::History { text, seq, .. } => format!("history {seq} {text}"),
            ServerFrame::Joined { nick, seq, .. } => format!("joined {seq} {nick}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "entered, 2 follow",
            "history 3 two",
            "history 4 three",
            "joined 5 Bob"
        ]
    );
}

#[test]
fn history_is_bounded_in_bytes_per_room_and_for_the_whole_server() {
    let config = RoomConfig {
        history_bytes_max: 2_000,
        history_bytes_total_max: 3_000,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Ann", ms(0));
    harness.frame(A, join("dev"), ms(0));
    let text = "x".repeat(400);
    for id in 1..=20 {
        let room = if id % 2 == 0 { LOBBY } else { "dev" };
        harness.frame(A, say(room, id, &text), ms(1));
        assert!(harness.rooms.history_bytes() <= 3_000);
    }
    assert!(
        harness.rooms.history_bytes() > 2_000,
        "both rooms keep some"
    );
}

#[test]
fn the_longest_lists_of_the_longest_names_fit_in_a_frame() {
    use crate::protocol::{FRAME_BYTES_MAX, NICK_CHARS_MAX, ROOM_CHARS_MAX, RoomCount, encode};
    use crate::room::membership::LISTED_MAX;
    // U+20000, four bytes of UTF-8, which JSON does not escape.
    let nick = "\u{20000}".repeat(NICK_CHARS_MAX);
    let room = "\u{20000}".repeat(ROOM_CHARS_MAX);
    let members = ServerFrame::Members {
        room: room.clone(),
        nicks: vec![nick; LISTED_MAX],
        total: u64::MAX,
    };
    let listed = RoomCount {
        room,
        members: u64::MAX,
    };
    let rooms = ServerFrame::RoomList {
        rooms: vec![listed; LISTED_MAX],
        total: u64::MAX,
    };
    for (kind, frame) in [("members", members), ("room_list", rooms)] {
        let bytes = encode(&frame).len();
        assert!(bytes <= FRAME_BYTES_MAX, "a {kind} frame of {bytes} bytes");
    }
}

#[test]
fn who_and_rooms_answer_with_sorted_lists() {
    let mut harness = Harness::new();
    harness.member(A, "Bob", ms(0));
    harness.member(B, "Ann", ms(0));
    harness.frame(A, join("dev"), ms(1));
    let who = harness.frame(A, ClientFrame::Who { room: LOBBY.into() }, ms(2));
    assert_eq!(
        received(&who, A),
        [ServerFrame::Members {
            room: LOBBY.into(),
            nicks: vec!["Ann".into(), "Bob".into()],
            total: 2
        }]
    );
    let rooms = harness.frame(B, ClientFrame::ListRooms, ms(3));
    let [ServerFrame::RoomList { rooms, total: 2 }] = &received(&rooms, B)[..] else {
        panic!("a room list");
    };
    assert_eq!(rooms[0].room, LOBBY, "the largest first");
    let not_in = harness.frame(B, ClientFrame::Who { room: "dev".into() }, ms(4));
    assert_eq!(error_codes(&received(&not_in, B)), [ErrorCode::NotInRoom]);
}
