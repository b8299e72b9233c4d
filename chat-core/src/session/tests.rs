//! Unit tests of the client session state machine (no runtime, no I/O).

use super::*;
use crate::protocol::{RoomStart, ServerFrame};

const LOBBY: &str = "lobby";

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// A session, and what it asked for so far.
struct Harness {
    session: Session,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        Self {
            session: Session::new(config),
        }
    }

    fn named(nick: &str) -> Self {
        Self::new(SessionConfig::new(nick, LOBBY))
    }

    fn drain(&mut self) -> Vec<SessionAction> {
        std::iter::from_fn(|| self.session.poll_action()).collect()
    }

    fn frame(&mut self, frame: ServerFrame, now: Duration) -> Vec<SessionAction> {
        self.session.handle_frame(frame, now);
        self.drain()
    }

    fn line(&mut self, line: &str, now: Duration) -> Vec<SessionAction> {
        self.session.handle_user_line(line.to_owned(), now);
        self.drain()
    }

    fn tick(&mut self, now: Duration) -> Vec<SessionAction> {
        self.session.handle_tick(now);
        self.drain()
    }

    /// Connects, is welcomed afresh as `nick`, and joins the lobby, where
    /// its own join is event `join_seq`.
    fn online(nick: &str, join_seq: Seq) -> Self {
        let mut harness = Self::named(nick);
        harness.drain();
        harness.session.handle_connected(ms(0));
        harness.drain();
        harness.frame(welcome(nick, false, vec![], 0), ms(1));
        harness.frame(entered(LOBBY, join_seq, 0), ms(2));
        harness.frame(joined(LOBBY, join_seq, nick), ms(3));
        harness
    }
}

fn welcome(nick: &str, resumed: bool, rooms: Vec<RoomStart>, replayed: u64) -> ServerFrame {
    ServerFrame::Welcome {
        version: PROTOCOL_VERSION,
        nick: nick.into(),
        token: "ab".repeat(16),
        incarnation: "one".into(),
        resumed,
        rooms,
        private_seq: 0,
        replayed,
        heartbeat_interval_ms: 5000,
        heartbeat_timeout_ms: 15000,
        text_bytes_max: 4096,
    }
}

fn entered(room: &str, seq: Seq, history: u64) -> ServerFrame {
    ServerFrame::Entered {
        room: room.into(),
        seq,
        history,
    }
}

fn joined(room: &str, seq: Seq, nick: &str) -> ServerFrame {
    ServerFrame::Joined {
        room: room.into(),
        seq,
        nick: nick.into(),
    }
}

fn message(room: &str, seq: Seq, nick: &str, text: &str) -> ServerFrame {
    ServerFrame::Message {
        room: room.into(),
        seq,
        nick: nick.into(),
        text: text.into(),
        action: false,
    }
}

fn shown(actions: &[SessionAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|action| match action {
            SessionAction::Show(line) => Some(line.to_string()),
            _ => None,
        })
        .collect()
}

fn sent(actions: &[SessionAction]) -> Vec<ClientFrame> {
    actions
        .iter()
        .filter_map(|action| match action {
            SessionAction::Send(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn prompts(actions: &[SessionAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|action| match action {
            SessionAction::Prompt(prompt) => Some(prompt.clone()),
            _ => None,
        })
        .collect()
}

fn exit(actions: &[SessionAction]) -> Option<Outcome> {
    actions.iter().find_map(|action| match action {
        SessionAction::Exit(outcome) => Some(*outcome),
        _ => None,
    })
}

#[test]
fn the_original_conversation_shows_the_original_lines() {
    let mut harness = Harness::named("John");
    assert_eq!(harness.drain(), [SessionAction::Connect]);
    harness.session.handle_connected(ms(0));
    let hello = sent(&harness.drain());
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { nick, resume: None, .. }] if nick == "John")
    );
    let welcomed = harness.frame(welcome("John", false, vec![], 0), ms(1));
    assert_eq!(sent(&welcomed), [ClientFrame::Join { room: LOBBY.into() }]);
    harness.frame(entered(LOBBY, 2, 0), ms(2));
    let own = harness.frame(joined(LOBBY, 2, "John"), ms(3));
    assert_eq!(
        shown(&own),
        [
            "John has connected to the chatroom.",
            "You are now connected to the chatroom."
        ]
    );
    assert!(
        prompts(&own).is_empty(),
        "no prompt in the original conversation"
    );
    let typed = harness.line("Hello there", ms(4));
    assert!(
        matches!(&sent(&typed)[..], [ClientFrame::Send { id: 1, text, .. }] if text == "Hello there")
    );
    let echo = harness.frame(message(LOBBY, 3, "John", "Hello there"), ms(5));
    assert_eq!(shown(&echo), ["John: Hello there"]);
    harness.frame(
        ServerFrame::Ack {
            id: 1,
            seq: 3,
            room: Some(LOBBY.into()),
            to: None,
        },
        ms(6),
    );
    let leaving = harness.line(".exit", ms(7));
    assert_eq!(shown(&leaving), ["Disconnecting from server..."]);
    assert_eq!(sent(&leaving), [ClientFrame::Quit]);
    let bye = harness.frame(ServerFrame::Bye, ms(8));
    assert_eq!(bye, [SessionAction::Disconnect]);
    harness.session.handle_disconnected(ms(9));
    let outcome = exit(&harness.drain()).expect("exits");
    assert_eq!(outcome.reason, EndReason::Left);
    assert_eq!(outcome.tally.delivered, 1);
}

#[test]
fn the_nickname_is_asked_after_connecting_and_again_when_refused() {
    let mut harness = Harness::new(SessionConfig::asking(LOBBY));
    harness.drain();
    assert!(
        !harness.session.wants_input(),
        "nothing is read before the server is reached"
    );
    harness.session.handle_connected(ms(0));
    assert_eq!(prompts(&harness.drain()), [NICK_PROMPT]);
    assert!(harness.session.wants_input());
    let bad = harness.line("no spaces", ms(1));
    assert!(
        shown(&bad)[0].starts_with("That nickname cannot be used: nickname contains white space")
    );
    assert!(sent(&bad).is_empty());
    let hello = harness.line("Joshua", ms(2));
    assert!(matches!(&sent(&hello)[..], [ClientFrame::Hello { .. }]));
    let refused = harness.frame(
        ServerFrame::error(ErrorCode::NickTaken, "the nickname Joshua is already taken"),
        ms(3),
    );
    assert_eq!(
        shown(&refused),
        ["That nickname cannot be used: the nickname Joshua is already taken."]
    );
    assert_eq!(prompts(&refused), [NICK_PROMPT]);
    assert!(exit(&refused).is_none(), "asked again, not ended");
    let again = harness.line("Josh", ms(4));
    assert!(matches!(&sent(&again)[..], [ClientFrame::Hello { nick, .. }] if nick == "Josh"));
}

#[test]
fn an_unreachable_server_is_reported_before_any_nickname_is_asked() {
    let mut harness = Harness::new(SessionConfig::asking(LOBBY));
    harness.drain();
    harness
        .session
        .handle_connect_failed("connection refused", ms(0));
    let actions = harness.drain();
    assert_eq!(
        shown(&actions),
        ["Cannot reach the server: connection refused."]
    );
    assert!(prompts(&actions).is_empty());
    assert_eq!(
        exit(&actions).map(|outcome| outcome.reason),
        Some(EndReason::Unreachable)
    );
}

#[test]
fn a_nickname_from_the_command_line_that_is_refused_ends_the_session() {
    let mut harness = Harness::named("Joshua");
    harness.drain();
    harness.session.handle_connected(ms(0));
    harness.drain();
    let refused = harness.frame(ServerFrame::error(ErrorCode::NickTaken, "taken"), ms(1));
    assert_eq!(
        exit(&refused).map(|outcome| outcome.reason),
        Some(EndReason::Refused(ErrorCode::NickTaken))
    );
}

#[test]
fn a_lost_connection_resumes_every_room_and_resends_what_was_unacked() {
    let mut harness = Harness::online("Ann", 1);
    harness.line("/join dev", ms(10));
    harness.frame(entered("dev", 1, 0), ms(11));
    harness.frame(joined("dev", 1, "Ann"), ms(12));
    harness.frame(message(LOBBY, 2, "Bob", "hi"), ms(13));
    harness.line("unacked", ms(14));
    harness.session.handle_disconnected(ms(15));
    let lost = harness.drain();
    assert!(shown(&lost)[0].starts_with("Connection to the server lost"));
    let reconnect = harness.tick(secs(10));
    assert_eq!(reconnect, [SessionAction::Connect]);
    harness.session.handle_connected(secs(10));
    let hello = sent(&harness.drain());
    let [
        ClientFrame::Hello {
            resume: Some(resume),
            ..
        },
    ] = &hello[..]
    else {
        panic!("a resume: {hello:?}");
    };
    assert_eq!(resume.rooms.get(LOBBY), Some(&2));
    assert_eq!(resume.rooms.get("dev"), Some(&1));
    let starts = vec![
        RoomStart {
            room: LOBBY.into(),
            last_seq: 2,
        },
        RoomStart {
            room: "dev".into(),
            last_seq: 1,
        },
    ];
    let welcomed = harness.frame(welcome("Ann", true, starts, 0), secs(10));
    assert_eq!(shown(&welcomed), ["Reconnected; nothing was missed."]);
    assert!(
        matches!(&sent(&welcomed)[..], [ClientFrame::Send { id: 1, room, .. }] if room == "dev")
    );
}

#[test]
fn a_forgotten_session_joins_its_rooms_again() {
    let mut harness = Harness::online("Ann", 1);
    harness.session.handle_disconnected(ms(10));
    harness.drain();
    harness.tick(secs(10));
    harness.session.handle_connected(secs(10));
    harness.drain();
    let unknown = harness.frame(
        ServerFrame::error(ErrorCode::SessionUnknown, "gone"),
        secs(10),
    );
    assert_eq!(shown(&unknown)[0], Line::Rejoining.to_string());
    assert!(matches!(
        &sent(&unknown)[..],
        [ClientFrame::Hello { resume: None, .. }]
    ));
    let welcomed = harness.frame(welcome("Ann", false, vec![], 0), secs(11));
    assert_eq!(sent(&welcomed), [ClientFrame::Join { room: LOBBY.into() }]);
}

#[test]
fn a_second_room_becomes_current_and_the_first_is_tagged() {
    let mut harness = Harness::online("Ann", 1);
    let join = harness.line("/join dev", ms(10));
    assert_eq!(sent(&join), [ClientFrame::Join { room: "dev".into() }]);
    assert_eq!(
        prompts(&join),
        ["[dev] "],
        "typed lines go to dev from now on"
    );
    harness.frame(entered("dev", 3, 1), ms(11));
    let history = harness.frame(
        ServerFrame::History {
            room: "dev".into(),
            seq: 2,
            nick: "Bob".into(),
            text: "earlier".into(),
            action: false,
        },
        ms(12),
    );
    assert_eq!(
        shown(&history),
        ["  Bob: earlier", "--- end of recent messages"]
    );
    let arrived = harness.frame(joined("dev", 3, "Ann"), ms(13));
    assert_eq!(
        shown(&arrived),
        [
            "Ann has connected to the chatroom.",
            "You are now in dev; lines you type go there."
        ]
    );
    let lobby = harness.frame(message(LOBBY, 2, "Bob", "over here"), ms(14));
    assert_eq!(shown(&lobby), ["[lobby] Bob: over here"]);
    let typed = harness.line("in dev", ms(15));
    assert!(matches!(&sent(&typed)[..], [ClientFrame::Send { room, .. }] if room == "dev"));
    let back = harness.line("/join lobby", ms(16));
    assert_eq!(shown(&back), ["Lines you type go to lobby now."]);
    assert!(sent(&back).is_empty(), "switching needs no request");
    let leave = harness.line("/leave dev", ms(17));
    assert_eq!(sent(&leave), [ClientFrame::Leave { room: "dev".into() }]);
    let parted = harness.frame(ServerFrame::Parted { room: "dev".into() }, ms(18));
    assert_eq!(shown(&parted), ["You left dev."]);
    assert_eq!(prompts(&parted), [""], "back to the original screen");
}

#[test]
fn private_messages_are_sent_and_shown_by_direction() {
    let mut harness = Harness::online("Ann", 1);
    let typed = harness.line("/msg Bob psst", ms(10));
    assert!(
        matches!(&sent(&typed)[..], [ClientFrame::Private { to, id: 1, text, .. }] if to == "Bob" && text == "psst")
    );
    let copy = ServerFrame::Private {
        seq: 1,
        from: "Ann".into(),
        to: "Bob".into(),
        text: "psst".into(),
        action: false,
        sent: true,
    };
    assert_eq!(shown(&harness.frame(copy, ms(11))), ["-> *Bob* psst"]);
    let reply = ServerFrame::Private {
        seq: 3,
        from: "Bob".into(),
        to: "Ann".into(),
        text: "yes?".into(),
        action: false,
        sent: false,
    };
    assert_eq!(
        shown(&harness.frame(reply, ms(12))),
        [
            "(1 private message is no longer available and was skipped.)",
            "*Bob* yes?"
        ]
    );
}

#[test]
fn mistakes_get_hints_and_are_never_sent() {
    let mut harness = Harness::online("Ann", 1);
    let unknown = harness.line("/shrug", ms(10));
    assert!(sent(&unknown).is_empty());
    assert!(shown(&unknown)[0].starts_with("Unknown command /shrug"));
    let usage = harness.line("/msg Bob", ms(11));
    assert_eq!(shown(&usage), ["Usage: /msg NICK text"]);
    let blank = harness.line("   ", ms(12));
    assert!(blank.is_empty(), "a blank line does nothing");
    let slash = harness.line("//shrug", ms(13));
    assert!(matches!(&sent(&slash)[..], [ClientFrame::Send { text, .. }] if text == "/shrug"));
}

#[test]
fn a_message_the_server_refuses_is_reported_and_is_not_a_loss() {
    let mut harness = Harness::online("Ann", 1);
    harness.line("/msg Nobody hi", ms(10));
    let refused = harness.frame(
        ServerFrame::Error {
            code: ErrorCode::NoSuchNick,
            message: "nobody here is called Nobody".into(),
            id: Some(1),
            room: None,
            retry_after_ms: None,
        },
        ms(11),
    );
    assert_eq!(shown(&refused), ["Not sent: nobody here is called Nobody."]);
    let leaving = harness.line(".exit", ms(12));
    assert_eq!(
        sent(&leaving),
        [ClientFrame::Quit],
        "nothing is waiting for an ack"
    );
    harness.frame(ServerFrame::Bye, ms(13));
    harness.session.handle_disconnected(ms(14));
    let done = harness.drain();
    let outcome = exit(&done).expect("exits");
    assert_eq!((outcome.tally.refused, outcome.tally.unconfirmed), (1, 0));
    assert_eq!(shown(&done), ["1 message typed: 0 delivered, 1 refused."]);
}

#[test]
fn a_paused_client_says_so_and_reconnects_when_the_server_must_have_dropped_it() {
    let mut harness = Harness::online("Ann", 1);
    harness.tick(ms(250));
    let short = harness.tick(secs(5));
    assert_eq!(
        shown(&short),
        ["This client was paused for 4 s; checking the connection..."]
    );
    assert!(!short.contains(&SessionAction::Disconnect));
    let long = harness.tick(secs(40));
    assert_eq!(
        shown(&long)[0],
        "This client was paused for 35 s; checking the connection..."
    );
    assert!(long.contains(&SessionAction::Disconnect));
    assert!(shown(&long)[1].contains("this client was paused"));
}

#[test]
fn a_silent_server_is_given_up_on_after_the_heartbeat_timeout() {
    let mut harness = Harness::online("Ann", 1);
    for second in 1..15 {
        let actions = harness.tick(secs(second));
        assert!(
            !actions.contains(&SessionAction::Disconnect),
            "at {second} s"
        );
    }
    let actions = harness.tick(secs(15) + ms(10));
    assert!(actions.contains(&SessionAction::Disconnect));
    assert!(shown(&actions)[0].contains("the server stopped answering"));
}

#[test]
fn events_are_shown_once_in_order_with_gaps_announced() {
    let mut harness = Harness::online("Ann", 1);
    let first = harness.frame(message(LOBBY, 2, "Bob", "one"), ms(10));
    assert_eq!(shown(&first), ["Bob: one"]);
    assert!(
        harness
            .frame(message(LOBBY, 2, "Bob", "one"), ms(11))
            .is_empty(),
        "a duplicate"
    );
    let skipped = harness.frame(message(LOBBY, 5, "Bob", "four"), ms(12));
    assert_eq!(
        shown(&skipped),
        [
            "(2 messages are no longer available and were skipped.)",
            "Bob: four"
        ]
    );
    let gap = harness.frame(
        ServerFrame::Gap {
            room: Some(LOBBY.into()),
            from: 6,
            to: 9,
        },
        ms(13),
    );
    assert_eq!(
        shown(&gap),
        ["(4 messages are no longer available and were skipped.)"]
    );
}

#[test]
fn a_renamed_member_is_announced_and_our_own_nickname_follows() {
    let mut harness = Harness::online("Ann", 1);
    let typed = harness.line("/nick Anna", ms(10));
    assert_eq!(
        sent(&typed),
        [ClientFrame::Nick {
            nick: "Anna".into()
        }]
    );
    let renamed = ServerFrame::Renamed {
        room: LOBBY.into(),
        seq: 2,
        from: "Ann".into(),
        to: "Anna".into(),
    };
    assert_eq!(
        shown(&harness.frame(renamed, ms(11))),
        ["Ann is now known as Anna."]
    );
    let changed = harness.frame(
        ServerFrame::NickChanged {
            nick: "Anna".into(),
        },
        ms(12),
    );
    assert_eq!(shown(&changed), ["You are now known as Anna."]);
    harness.session.handle_disconnected(ms(13));
    harness.drain();
    harness.tick(secs(10));
    harness.session.handle_connected(secs(10));
    let hello = sent(&harness.drain());
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { nick, .. }] if nick == "Anna"),
        "resumes as Anna"
    );
}

#[test]
fn leaving_after_a_signal_does_not_wait_forever() {
    let mut harness = Harness::online("Ann", 1);
    harness.line("never acked", ms(10));
    harness.session.handle_input_closed(ms(11));
    assert!(sent(&harness.drain()).is_empty(), "waits for the ack first");
    harness.session.handle_abandon(secs(4));
    let actions = harness.drain();
    assert!(
        actions
            .iter()
            .any(|action| matches!(action, SessionAction::Send(ClientFrame::Quit))),
        "the quit goes out: {actions:?}"
    );
    assert!(
        !actions
            .iter()
            .any(|action| matches!(action, SessionAction::Disconnect)),
        "the exit closes the connection after the quit, not before: {actions:?}"
    );
    let outcome = exit(&actions).expect("exits");
    assert_eq!(outcome.tally.unconfirmed, 1);
    assert!(shown(&actions).contains(&"1 message could not be confirmed as delivered.".to_owned()));
}

#[test]
fn a_rename_the_client_never_heard_of_still_ends_in_a_rejoin() {
    let mut harness = Harness::online("Ann", 1);
    harness.line("/nick Anna", ms(10));
    harness.line("unacked", ms(11));
    harness.session.handle_disconnected(ms(12));
    harness.drain();
    harness.tick(secs(10));
    harness.session.handle_connected(secs(10));
    let hello = sent(&harness.drain());
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { nick, resume: Some(_), .. }] if nick == "Ann")
    );
    let unknown = harness.frame(
        ServerFrame::error(ErrorCode::SessionUnknown, "gone"),
        secs(10),
    );
    assert_eq!(
        shown(&unknown)[0],
        Line::Rejoining.to_string(),
        "{unknown:?}"
    );
}

#[test]
fn a_refused_join_switches_typed_lines_back_and_says_so() {
    let mut harness = Harness::online("Ann", 1);
    let asked = harness.line("/join crowded", ms(10));
    assert_eq!(prompts(&asked), ["[crowded] "]);
    let refused = harness.frame(
        ServerFrame::Error {
            code: ErrorCode::RoomFull,
            message: "crowded is full".into(),
            id: None,
            room: Some("crowded".into()),
            retry_after_ms: None,
        },
        ms(11),
    );
    assert_eq!(
        shown(&refused),
        [
            "The server reported an error: crowded is full.",
            "Lines you type go to lobby now."
        ]
    );
    assert_eq!(prompts(&refused), [""]);
    let said = harness.line("still here", ms(12));
    assert!(
        matches!(&sent(&said)[..], [ClientFrame::Send { room, .. }] if room == LOBBY),
        "{said:?}"
    );
}
