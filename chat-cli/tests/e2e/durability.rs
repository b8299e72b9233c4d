//! kill -9 of the server while clients chat, then a restart on the same
//! data directory: to its users a pause, and nothing else.

use std::collections::BTreeMap;

use chat_core::protocol::{self, ClientFrame, Resume, ServerFrame};

use crate::harness::{Client, RawPeer, Server};

/// Long enough that nobody's session ends while the server is down.
const SERVER_OPTIONS: [&str; 2] = ["--session-grace", "60s"];

/// A raw peer that keeps every room event it is sent, by number.
struct Witness {
    peer: RawPeer,
    token: String,
    incarnation: String,
    events: BTreeMap<u64, String>,
}

impl Witness {
    fn join(addr: &str) -> Self {
        let mut peer = RawPeer::connect(addr);
        peer.send(&ClientFrame::Hello {
            version: protocol::PROTOCOL_VERSION,
            nick: "Witness".to_owned(),
            resume: None,
        });
        let Some(ServerFrame::Welcome {
            token, incarnation, ..
        }) = peer.read_frame()
        else {
            panic!("a welcome");
        };
        peer.send(&ClientFrame::Join {
            room: protocol::DEFAULT_ROOM.to_owned(),
        });
        let mut witness = Self {
            peer,
            token,
            incarnation,
            events: BTreeMap::new(),
        };
        witness.read_until_closed();
        witness
    }

    /// Reads until the connection ends (the server is killed, or quits).
    fn read_until_closed(&mut self) {
        while let Some(frame) = self.peer.read_frame() {
            self.keep(frame);
        }
    }

    fn keep(&mut self, frame: ServerFrame) {
        let (seq, event) = match frame {
            ServerFrame::Message {
                seq, nick, text, ..
            }
            | ServerFrame::History {
                seq, nick, text, ..
            } => (seq, format!("{nick}: {text}")),
            ServerFrame::Joined { seq, nick, .. } => (seq, format!("{nick} joined")),
            ServerFrame::Left { seq, nick, .. } => (seq, format!("{nick} left")),
            _ => return,
        };
        let previous = self.events.insert(seq, event.clone());
        assert!(
            previous.as_ref().is_none_or(|previous| *previous == event),
            "#{seq} was {previous:?} and is now {event:?}"
        );
    }
}

fn join(addr: &str, nick: &str) -> Client {
    let mut client = Client::start(addr, &["--nick", nick]);
    client.wait_for("You are now connected to the chatroom.");
    client
}

#[test]
fn a_server_killed_mid_conversation_keeps_every_acknowledged_message() {
    let data = tempfile::tempdir().expect("a data directory");
    let dir = data.path().to_str().expect("a UTF-8 path");
    let mut options = vec!["--data-dir", dir];
    options.extend(SERVER_OPTIONS);
    let server = Server::start(&options);
    let addr = server.addr.clone();
    let mut alice = join(&addr, "Alice");
    let mut bob = join(&addr, "Bob");
    // The witness reads on a thread of its own until the server dies.
    let witness = {
        let addr = addr.clone();
        std::thread::spawn(move || Witness::join(&addr))
    };
    bob.wait_for("Witness has connected to the chatroom.");
    let lines: Vec<String> = (1..=300).map(|number| format!("line {number}")).collect();
    for line in &lines {
        alice.type_line(line);
    }
    // The server's message rate (a burst of 100, then 20 a second) spreads
    // Alice's 300 lines over seconds: the kill lands while most are still
    // to be sent or unacknowledged, and her client must resend those.
    bob.wait_for("Alice: line 120");
    server.kill();
    let mut witness = witness.join().expect("the witness thread");
    let seen_before = witness.events.clone();
    assert!(
        seen_before.values().any(|event| event == "Alice: line 120"),
        "the witness saw what Bob saw: {seen_before:#?}"
    );

    let mut server = Server::start_on(&addr, &options);
    server.wait_for_log("Recovered ");
    for client in [&mut alice, &mut bob] {
        client.wait_for_prefix("Reconnected;");
        client.wait_for("Alice: line 300");
    }
    // The witness resumes its session and asks for the room from the start.
    let mut peer = RawPeer::connect(&addr);
    peer.send(&ClientFrame::Hello {
        version: protocol::PROTOCOL_VERSION,
        nick: "Witness".to_owned(),
        resume: Some(Resume {
            token: witness.token.clone(),
            incarnation: witness.incarnation.clone(),
            rooms: BTreeMap::from([(protocol::DEFAULT_ROOM.to_owned(), 0)]),
            private_seq: 0,
        }),
    });
    let welcome = peer.read_frame().expect("a welcome");
    assert!(
        matches!(welcome, ServerFrame::Welcome { resumed: true, .. }),
        "the session survived the crash: {welcome:?}"
    );
    witness.peer = peer;
    // Alice's last line is the last event: once it is replayed, all is.
    while !witness
        .events
        .values()
        .any(|event| event == "Alice: line 300")
    {
        let frame = witness.peer.read_frame().expect("the replay");
        witness.keep(frame);
    }
    let after = &witness.events;
    for (seq, event) in &seen_before {
        assert_eq!(
            after.get(seq),
            Some(event),
            "#{seq} kept its number and content across the crash"
        );
    }
    // From the witness's own join on (what came before is not its to see).
    let numbers: Vec<u64> = after.keys().copied().collect();
    let first = numbers[0];
    assert_eq!(
        numbers,
        (first..first + numbers.len() as u64).collect::<Vec<_>>(),
        "the log has no holes"
    );
    for line in &lines {
        let event = format!("Alice: {line}");
        let logged = after.values().filter(|logged| **logged == event).count();
        assert_eq!(logged, 1, "{line} is in the log once");
        for client in [&mut alice, &mut bob] {
            assert_eq!(client.count(&event), 1, "{event} shown once");
        }
    }
    for client in [&mut alice, &mut bob] {
        assert_eq!(
            client.count("The server no longer knows this session; joining the chatroom again (what was said meanwhile is not shown)."),
            0,
            "the session survived"
        );
        assert_eq!(client.count("Bob has left the chatroom."), 0);
    }
}
