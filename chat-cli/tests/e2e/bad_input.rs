//! Misbehaving peers get an error or a close; everyone else keeps chatting.

use chat_core::protocol::{ClientFrame, ErrorCode, FRAME_BYTES_MAX, PROTOCOL_VERSION, ServerFrame};

use crate::harness::{Client, RawPeer, Server};

/// Alice says `text`; Bob must see it.
fn still_chatting(alice: &mut Client, bob: &mut Client, text: &str) {
    alice.type_line(text);
    bob.wait_for(&format!("Alice: {text}"));
}

fn error_code(frames: &[ServerFrame]) -> Option<ErrorCode> {
    frames.iter().find_map(|frame| match frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    })
}

#[test]
fn garbage_oversized_frames_invalid_utf8_and_truncation_harm_no_one_else() {
    let mut server = Server::start(&[]);
    let mut alice = Client::join(&server.addr, "Alice");
    let mut bob = Client::join(&server.addr, "Bob");
    still_chatting(&mut alice, &mut bob, "before anything");

    let mut garbage = RawPeer::connect(&server.addr);
    garbage.send_bytes(b"GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n");
    assert_eq!(
        error_code(&garbage.read_to_close()),
        Some(ErrorCode::BadFrame)
    );
    still_chatting(&mut alice, &mut bob, "after garbage");

    // A joined peer that then sends a frame over the limit, with no newline.
    let mut huge = RawPeer::join(&server.addr, "Huge");
    bob.wait_for("Huge has connected to the chatroom.");
    huge.send_bytes(&vec![b'x'; FRAME_BYTES_MAX + 10]);
    assert_eq!(
        error_code(&huge.read_to_close()),
        Some(ErrorCode::FrameTooLarge)
    );
    bob.wait_for("Huge has left the chatroom.");
    still_chatting(&mut alice, &mut bob, "after a huge frame");

    let mut latin1 = RawPeer::connect(&server.addr);
    latin1.send_bytes(b"{\"type\":\"hello\",\"nick\":\"J\xf6rg\"}\n");
    assert_eq!(
        error_code(&latin1.read_to_close()),
        Some(ErrorCode::InvalidUtf8)
    );
    still_chatting(&mut alice, &mut bob, "after invalid UTF-8");

    // A joined peer that vanishes in the middle of a frame.
    let mut vanishing = RawPeer::join(&server.addr, "Vanishing");
    bob.wait_for("Vanishing has connected to the chatroom.");
    vanishing.send_bytes(b"{\"type\":\"send\",\"room\":\"lob");
    vanishing.close();
    still_chatting(&mut alice, &mut bob, "after a truncated frame");

    // A peer that speaks another protocol version.
    let mut future = RawPeer::connect(&server.addr);
    future.send(&ClientFrame::Hello {
        version: PROTOCOL_VERSION + 1,
        nick: "Future".into(),
        resume: None,
    });
    assert_eq!(
        error_code(&future.read_to_close()),
        Some(ErrorCode::UnsupportedVersion)
    );
    still_chatting(&mut alice, &mut bob, "at the end");

    assert_eq!(bob.count("Alice: before anything"), 1);
    assert_eq!(alice.count("Bob has left the chatroom."), 0);
    server.wait_for_log("Refused (bad_frame)");
}
