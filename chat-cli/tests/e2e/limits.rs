//! Every limit of the server, over loopback against the real binary: each
//! gives the peer that hits it a clear error (or the answer the protocol
//! promises), and the clients beside it keep chatting.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_core::protocol::{self, ClientFrame, ErrorCode, PROTOCOL_VERSION, ServerFrame};

use crate::harness::{Client, RawPeer, Server};

/// Alice says `text`; Bob must see it.
fn still_chatting(alice: &mut Client, bob: &mut Client, text: &str) {
    alice.type_line(text);
    bob.wait_for(&format!("Alice: {text}"));
}

/// A server with `options`, Alice and Bob chatting on it.
fn chatting(options: &[&str]) -> (Server, Client, Client) {
    let server = Server::start(options);
    let mut alice = Client::join(&server.addr, "Alice");
    let mut bob = Client::join(&server.addr, "Bob");
    still_chatting(&mut alice, &mut bob, "before");
    (server, alice, bob)
}

fn errors(frames: &[ServerFrame]) -> Vec<ErrorCode> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn hello(nick: &str) -> ClientFrame {
    ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        nick: nick.to_owned(),
        resume: None,
    }
}

fn send(room: &str, id: u64, text: &str) -> ClientFrame {
    ClientFrame::Send {
        room: room.to_owned(),
        id,
        text: text.to_owned(),
        action: false,
    }
}

fn join(room: &str) -> ClientFrame {
    ClientFrame::Join {
        room: room.to_owned(),
    }
}

/// Reads frames until one matches; returns everything read.
fn read_until(peer: &mut RawPeer, wanted: impl Fn(&ServerFrame) -> bool) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    // Bounded: each read waits at most the harness's WAIT, and the server
    // answers every frame these tests send.
    loop {
        let frame = peer
            .read_frame()
            .unwrap_or_else(|| panic!("closed after {frames:?}"));
        let done = wanted(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[test]
fn a_connection_that_never_finishes_its_hello_is_closed_at_the_deadline() {
    let (server, mut alice, mut bob) = chatting(&["--handshake-timeout", "1s"]);
    let started = Instant::now();
    let mut silent = RawPeer::connect(&server.addr);
    // Heartbeats are not a hello: they do not keep a connection in.
    let mut beating = RawPeer::connect(&server.addr);
    beating.send(&ClientFrame::Heartbeat);
    // One byte at a time, slower than the deadline allows for a frame.
    let mut trickling = RawPeer::connect(&server.addr);
    let bytes = protocol::encode(&hello("Trickler"));
    let trickled = std::thread::spawn(move || {
        for byte in bytes.iter().take(20) {
            trickling.send_bytes_tolerant(&[*byte]);
            std::thread::sleep(Duration::from_millis(200)); // the peer's pace
        }
        trickling.read_to_close()
    });
    for peer in [&mut silent, &mut beating] {
        let frames = peer.read_to_close();
        assert!(
            errors(&frames) == [ErrorCode::HandshakeTimeout],
            "a clear error, then the close: {frames:?}"
        );
    }
    assert!(errors(&trickled.join().expect("the trickling peer")) == [ErrorCode::HandshakeTimeout]);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "closed near the deadline"
    );
    still_chatting(
        &mut alice,
        &mut bob,
        "after three handshakes that never ended",
    );
}

#[test]
fn connections_past_the_limits_are_refused_with_a_clear_error() {
    // Alice and Bob hold two connections from 127.0.0.1.
    let (server, mut alice, mut bob) = chatting(&["--connections-per-address-max", "3"]);
    let mut third = RawPeer::join(&server.addr, "Third");
    let mut fourth = RawPeer::connect(&server.addr);
    let frames = fourth.read_to_close();
    assert_eq!(
        errors(&frames),
        [ErrorCode::TooManyConnections],
        "{frames:?}"
    );
    third.send(&send(protocol::DEFAULT_ROOM, 1, "still here"));
    bob.wait_for("Third: still here");
    still_chatting(&mut alice, &mut bob, "after a refused connection");

    let (server, mut alice, mut bob) = chatting(&[
        "--connections-max",
        "2",
        "--connections-per-address-max",
        "64",
    ]);
    let frames = RawPeer::connect(&server.addr).read_to_close();
    assert_eq!(
        errors(&frames),
        [ErrorCode::TooManyConnections],
        "{frames:?}"
    );
    still_chatting(&mut alice, &mut bob, "after a connection past the total");
}

#[test]
fn a_flood_is_throttled_then_closed_and_a_burst_within_the_rate_is_all_delivered() {
    let (server, mut alice, mut bob) = chatting(&[
        "--message-rate",
        "10",
        "--message-burst",
        "5",
        "--flood-timeout",
        "2s",
    ]);
    // A burst over the rate: throttled, not refused; every message acked.
    let mut eager = RawPeer::join(&server.addr, "Eager");
    for id in 1..=15 {
        eager.send(&send(protocol::DEFAULT_ROOM, id, &format!("eager {id}")));
    }
    let frames = read_until(&mut eager, |frame| {
        matches!(frame, ServerFrame::Ack { id: 15, .. })
    });
    assert!(errors(&frames).is_empty(), "{frames:?}");
    bob.wait_for("Eager: eager 15");
    // A flood that never stops: closed with rate_limited.
    let mut flooder = RawPeer::join(&server.addr, "Flooder");
    let flooding = std::thread::spawn(move || {
        let mut id = 0;
        // Bounded: the server closes the connection within its flood timeout.
        while id < 100_000 {
            id += 1;
            if !flooder.send_bytes_tolerant(&protocol::encode(&send(
                protocol::DEFAULT_ROOM,
                id,
                "flood",
            ))) {
                break;
            }
        }
        flooder.read_to_close()
    });
    still_chatting(&mut alice, &mut bob, "during the flood");
    let frames = flooding.join().expect("the flooder");
    assert_eq!(
        errors(&frames).last(),
        Some(&ErrorCode::RateLimited),
        "{:?}",
        frames.last()
    );
    bob.wait_for("Flooder has left the chatroom.");
    still_chatting(&mut alice, &mut bob, "after the flood");
}

#[test]
fn a_full_room_refuses_a_member_and_rooms_are_freed_when_left() {
    let (server, mut alice, mut bob) = chatting(&["--room-members-max", "2", "--rooms-max", "3"]);
    let mut carol = RawPeer::connect(&server.addr);
    carol.send(&hello("Carol"));
    carol.send(&join(protocol::DEFAULT_ROOM));
    let frames = read_until(&mut carol, |frame| {
        matches!(frame, ServerFrame::Error { .. })
    });
    assert_eq!(errors(&frames), [ErrorCode::RoomFull], "{frames:?}");
    // Carol visits twenty rooms, one after the other: each is freed when she
    // leaves it, so three rooms are enough.
    for number in 1..=20 {
        let room = format!("visit{number}");
        carol.send(&join(&room));
        read_until(&mut carol, |frame| {
            matches!(frame, ServerFrame::Entered { .. })
        });
        carol.send(&ClientFrame::Leave { room });
        read_until(&mut carol, |frame| {
            matches!(frame, ServerFrame::Parted { .. })
        });
    }
    // Two rooms at once, with the lobby: the limit.
    carol.send(&join("first"));
    read_until(&mut carol, |frame| {
        matches!(frame, ServerFrame::Entered { .. })
    });
    carol.send(&join("second"));
    read_until(&mut carol, |frame| {
        matches!(frame, ServerFrame::Entered { .. })
    });
    carol.send(&join("third"));
    let frames = read_until(&mut carol, |frame| {
        matches!(frame, ServerFrame::Error { .. })
    });
    assert_eq!(errors(&frames), [ErrorCode::TooManyRooms], "{frames:?}");
    still_chatting(&mut alice, &mut bob, "beside a visitor of many rooms");
}

#[test]
fn history_is_bounded_in_bytes_per_room() {
    let (server, mut alice, mut bob) = chatting(&["--history-bytes-max", "10000"]);
    let long = "x".repeat(4000);
    for number in 1..=5 {
        alice.type_line(&format!("{number} {long}"));
        bob.wait_for(&format!("Alice: {number} {long}"));
    }
    let mut late = RawPeer::connect(&server.addr);
    late.send(&hello("Late"));
    late.send(&join(protocol::DEFAULT_ROOM));
    let frames = read_until(
        &mut late,
        |frame| matches!(frame, ServerFrame::Joined { nick, .. } if nick == "Late"),
    );
    let history: Vec<&str> = frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::History { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        (1..=2).contains(&history.len()),
        "two messages of 4 KB fit in 10 KB: {}",
        history.len()
    );
    assert!(
        history.last().is_some_and(|text| text.starts_with("5 ")),
        "the newest kept"
    );
    still_chatting(&mut alice, &mut bob, "after history was trimmed");
}

/// Starts a server whose standard output is a pipe that the test reads
/// until the listening line, then hands back (to stop reading it, or to
/// close it).
fn server_with_console() -> (
    std::process::Child,
    std::process::ChildStdout,
    String,
    tempfile::TempDir,
) {
    let data = tempfile::tempdir().expect("a data directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    // Bounded: the server prints its listening address at start, or exits.
    while !String::from_utf8_lossy(&seen).contains("Listening on ") || !seen.ends_with(b"\n") {
        assert_eq!(
            stdout.read(&mut byte).expect("read the console"),
            1,
            "the server started"
        );
        seen.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    let addr = text
        .split("Listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address")
        .trim_end_matches('.')
        .to_owned();
    (child, stdout, addr, data)
}

/// Connections that come and go, each a few log lines.
fn churn(addr: &str, count: usize) {
    for number in 0..count {
        let mut peer = RawPeer::join(addr, &format!("churn{number}"));
        peer.send(&ClientFrame::Quit);
        peer.read_to_close();
    }
}

#[test]
fn a_console_that_stops_reading_or_goes_away_never_stops_the_server() {
    // Nobody reads the console: its pipe fills up (64 KiB), then stays full.
    let (mut child, stdout, addr, _data) = server_with_console();
    let mut alice = Client::join(&addr, "Alice");
    let mut bob = Client::join(&addr, "Bob");
    churn(&addr, 400);
    still_chatting(&mut alice, &mut bob, "while the console is not read");
    drop(stdout);
    // The console is gone: writing to it fails; the server carries on.
    churn(&addr, 50);
    still_chatting(&mut alice, &mut bob, "after the console went away");
    assert!(
        child.try_wait().expect("the server's status").is_none(),
        "still running"
    );
    let _ = child.kill();
    let _ = child.wait();
}
