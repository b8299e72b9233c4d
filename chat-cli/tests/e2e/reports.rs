//! `client --transcript` and `server --observe`: the JSON-lines reports the
//! real-process oracle test reads back are what the processes did, stamped
//! on one time line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_core::protocol::ServerFrame;
use chat_core::report::{ClientReport, ServerReport, Stamped, parse_lines};
use chat_core::room::Notice;
use chat_core::session::{EndReason, Line};

use crate::harness::{Client, Server};

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Vec<Stamped<T>> {
    let text = std::fs::read_to_string(path).expect("the report file");
    parse_lines(&text).expect("every line a record")
}

#[test]
fn a_conversation_is_reported_by_the_client_and_the_server() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let observed = directory.path().join("server.jsonl");
    let transcript = directory.path().join("ann.jsonl");
    let began = since_epoch();
    let mut server = Server::start(&["--observe", observed.to_str().expect("a UTF-8 path")]);
    let mut ann = Client::start(
        &server.addr,
        &[
            "--nick",
            "ann",
            "--transcript",
            transcript.to_str().expect("a UTF-8 path"),
        ],
    );
    ann.wait_for("You are now connected to the chatroom.");
    ann.type_line("hello there");
    ann.wait_for("ann: hello there");
    ann.type_line(".exit");
    let (code, _) = ann.finish();
    assert_eq!(code, Some(0));
    server.wait_for_log("ann has left the server.");
    let ended = since_epoch();

    let shown: Vec<Stamped<ClientReport>> = read(&transcript);
    let records: Vec<&ClientReport> = shown.iter().map(|stamped| &stamped.record).collect();
    assert!(
        records.contains(&&ClientReport::Shown(Line::YouAreIn {
            room: chat_core::protocol::DEFAULT_ROOM.into(),
            first: true
        })),
        "{records:?}"
    );
    let message_seq = records.iter().find_map(|record| match record {
        ClientReport::Shown(Line::Message { text, seq, .. }) if text == "hello there" => Some(*seq),
        _ => None,
    });
    assert!(message_seq.is_some(), "{records:?}");
    let typed: Vec<&ClientReport> = records
        .iter()
        .copied()
        .filter(|record| matches!(record, ClientReport::Typed(_)))
        .collect();
    assert_eq!(
        typed,
        [
            &ClientReport::Typed("hello there".into()),
            &ClientReport::Typed(".exit".into())
        ]
    );
    let Some(ClientReport::Ended(outcome)) = records.last() else {
        panic!("the transcript ends with the outcome: {records:?}");
    };
    assert_eq!(outcome.reason, EndReason::Left);
    assert_eq!(outcome.tally.delivered, 1);

    let server_records: Vec<Stamped<ServerReport>> = read(&observed);
    assert_eq!(server_records[0].record, ServerReport::Starting);
    assert!(matches!(
        server_records[1].record,
        ServerReport::Recovered { .. }
    ));
    let released = server_records
        .iter()
        .find_map(|stamped| match &stamped.record {
            ServerReport::Event {
                frame: ServerFrame::Message { seq, text, .. },
                ..
            } if text == "hello there" => Some(*seq),
            _ => None,
        });
    assert_eq!(
        released, message_seq,
        "the client showed the number released"
    );
    assert!(server_records.iter().any(|stamped| stamped.record
        == ServerReport::Notice(Notice::LeftServer("ann".into()))));

    // One time line: every stamp within the test, each file in order.
    for stamps in [
        shown.iter().map(|stamped| stamped.at).collect::<Vec<_>>(),
        server_records.iter().map(|stamped| stamped.at).collect(),
    ] {
        assert!(stamps.is_sorted(), "{stamps:?}");
        assert!(stamps.iter().all(|at| *at >= began && *at <= ended));
    }
}
