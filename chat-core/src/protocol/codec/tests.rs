use bytes::BufMut;
use proptest::prelude::*;

use super::*;
use crate::protocol::frames::{ClientFrame, ErrorCode, Resume, RoomStart, ServerFrame};
use crate::protocol::{FRAME_BYTES_MAX, ROOM_CHARS_MAX, TEXT_BYTES_MAX, validate_text};

fn decode_all<T: DeserializeOwned>(input: &[u8], limit: usize) -> Vec<Result<T, String>> {
    let mut decoder = FrameDecoder::<T>::new(limit);
    let mut buffer = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match decoder.decode_eof(&mut buffer) {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => break,
            Err(error) => {
                out.push(Err(error.to_string()));
                break;
            }
        }
    }
    out
}

#[test]
fn a_hello_reads_as_documented() {
    let line = br#"{"type":"hello","version":2,"nick":"John"}"#;
    let frame: ClientFrame = decode_line(line).expect("valid hello");
    assert_eq!(
        frame,
        ClientFrame::Hello {
            version: 2,
            nick: "John".into(),
            resume: None
        }
    );
    let line = br#"{"type":"hello","version":2,"nick":"John","resume":{"token":"t","incarnation":"i","rooms":{"lobby":4}}}"#;
    let frame: ClientFrame = decode_line(line).expect("valid resume");
    let ClientFrame::Hello {
        resume: Some(resume),
        ..
    } = frame
    else {
        panic!("a resume");
    };
    assert_eq!(resume.rooms.get("lobby"), Some(&4));
    assert_eq!(resume.private_seq, 0, "absent means nothing seen");
}

#[test]
fn encoding_is_one_line_of_json_without_empty_options() {
    let frame = ServerFrame::Message {
        room: "lobby".into(),
        seq: 7,
        nick: "John".into(),
        text: "Hello\nthere \"you\"".into(),
        action: false,
    };
    assert_eq!(
        &encode(&frame)[..],
        &b"{\"type\":\"message\",\"room\":\"lobby\",\"seq\":7,\"nick\":\"John\",\"text\":\"Hello\\nthere \\\"you\\\"\"}\n"[..]
    );
    let ack = ServerFrame::Ack {
        id: 3,
        seq: 9,
        room: Some("lobby".into()),
        to: None,
    };
    assert_eq!(
        &encode(&ack)[..],
        &b"{\"type\":\"ack\",\"id\":3,\"seq\":9,\"room\":\"lobby\"}\n"[..]
    );
}

#[test]
fn merged_and_split_reads_give_whole_frames() {
    let one = encode(&ClientFrame::Heartbeat);
    let two = encode(&ClientFrame::Quit);
    let mut joined = one.to_vec();
    joined.extend_from_slice(&two);
    let mut decoder = FrameDecoder::<ClientFrame>::new(FRAME_BYTES_MAX);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    // Feed one byte at a time: the decoder must wait for each newline.
    for byte in joined {
        buffer.put_u8(byte);
        while let Some(frame) = decoder.decode(&mut buffer).expect("valid input") {
            frames.push(frame);
        }
    }
    assert_eq!(frames, vec![ClientFrame::Heartbeat, ClientFrame::Quit]);
}

#[test]
fn an_overlong_line_is_refused_before_it_is_buffered_whole() {
    let limit = 64;
    let mut decoder = FrameDecoder::<ClientFrame>::new(limit);
    let mut buffer = BytesMut::from(
        &b"{\"type\":\"send\",\"text\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[..],
    );
    let error = decoder.decode(&mut buffer).expect_err("over the limit");
    assert!(matches!(error, FrameError::TooLarge { limit: 64 }));
    let frame = error.to_error_frame().expect("peer can be told");
    assert!(matches!(
        frame,
        ServerFrame::Error {
            code: ErrorCode::FrameTooLarge,
            ..
        }
    ));
}

#[test]
fn a_line_that_cannot_be_json_is_refused_before_its_newline() {
    let mut decoder = FrameDecoder::<ClientFrame>::new(FRAME_BYTES_MAX);
    // A TLS ClientHello starts with 0x16; an HTTP request with a verb.
    for start in [&b"\x16\x03\x01\x02\x00"[..], b"GET / HTTP/1.1"] {
        let mut buffer = BytesMut::from(start);
        let error = decoder.decode(&mut buffer).expect_err("not JSON");
        assert!(matches!(error, FrameError::Malformed(_)), "{error}");
    }
    let mut buffer = BytesMut::from(&b"  {\"type\""[..]);
    assert!(
        decoder
            .decode(&mut buffer)
            .expect("may still become a frame")
            .is_none()
    );
}

#[test]
fn a_line_of_exactly_the_limit_is_accepted() {
    let frame = encode(&ClientFrame::Heartbeat);
    let results = decode_all::<ClientFrame>(&frame, frame.len());
    assert_eq!(results, vec![Ok(ClientFrame::Heartbeat)]);
    let results = decode_all::<ClientFrame>(&frame, frame.len() - 1);
    assert!(results[0].is_err());
}

#[test]
fn invalid_utf8_garbage_and_truncation_are_errors() {
    let results = decode_all::<ClientFrame>(b"{\xff\xfe\n", 100);
    assert_eq!(results, vec![Err("frame is not valid UTF-8".to_string())]);
    let results = decode_all::<ClientFrame>(b"hello world\n", 100);
    assert!(
        results[0]
            .as_ref()
            .is_err_and(|e| e.starts_with("malformed frame"))
    );
    let results = decode_all::<ClientFrame>(b"{\"type\":\"heartbeat\"}\n{\"type\":", 100);
    assert_eq!(
        results,
        vec![
            Ok(ClientFrame::Heartbeat),
            Err("connection closed in the middle of a frame".to_string())
        ]
    );
    let results = decode_all::<ClientFrame>(b"{\"type\":\"heartbeat\",\"extra\":1}\n", 100);
    assert_eq!(
        results,
        vec![Ok(ClientFrame::Heartbeat)],
        "unknown fields are ignored"
    );
    let results = decode_all::<ClientFrame>(b"{\"type\":\"dance\"}\n", 100);
    assert!(results[0].is_err(), "unknown frame types are refused");
}

#[test]
fn crlf_line_endings_are_accepted() {
    let results = decode_all::<ClientFrame>(b"{\"type\":\"quit\"}\r\n", 100);
    assert_eq!(results, vec![Ok(ClientFrame::Quit)]);
}

#[test]
fn error_codes_display_their_wire_names_and_say_whether_they_close() {
    assert_eq!(ErrorCode::NickTaken.to_string(), "nick_taken");
    assert!(!ErrorCode::NickTaken.is_fatal());
    assert!(ErrorCode::ProtocolViolation.is_fatal());
}

fn any_text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn any_resume() -> impl Strategy<Value = Resume> {
    (
        any_text(),
        any_text(),
        proptest::collection::btree_map(any_text(), any::<u64>(), 0..4),
        any::<u64>(),
    )
        .prop_map(|(token, incarnation, rooms, private_seq)| Resume {
            token,
            incarnation,
            rooms,
            private_seq,
        })
}

fn any_client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u32>(), any_text(), proptest::option::of(any_resume())).prop_map(
            |(version, nick, resume)| ClientFrame::Hello {
                version,
                nick,
                resume
            }
        ),
        any_text().prop_map(|room| ClientFrame::Join { room }),
        any_text().prop_map(|room| ClientFrame::Leave { room }),
        (any_text(), any::<u64>(), any_text(), any::<bool>()).prop_map(
            |(room, id, text, action)| ClientFrame::Send {
                room,
                id,
                text,
                action
            }
        ),
        (any_text(), any::<u64>(), any_text(), any::<bool>()).prop_map(|(to, id, text, action)| {
            ClientFrame::Private {
                to,
                id,
                text,
                action,
            }
        }),
        any_text().prop_map(|nick| ClientFrame::Nick { nick }),
        Just(ClientFrame::ListRooms),
        any_text().prop_map(|room| ClientFrame::Who { room }),
        Just(ClientFrame::Heartbeat),
        Just(ClientFrame::Quit),
    ]
}

fn any_server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (
            any_text(),
            any_text(),
            any_text(),
            any::<bool>(),
            proptest::collection::vec((any_text(), any::<u64>()), 0..3),
            any::<u64>(),
            any::<u64>(),
            any::<usize>()
        )
            .prop_map(
                |(nick, token, incarnation, resumed, rooms, private_seq, replayed, text_max)| {
                    ServerFrame::Welcome {
                        version: 2,
                        nick,
                        token,
                        incarnation,
                        resumed,
                        rooms: rooms
                            .into_iter()
                            .map(|(room, last_seq)| RoomStart { room, last_seq })
                            .collect(),
                        private_seq,
                        replayed,
                        heartbeat_interval_ms: 5000,
                        heartbeat_timeout_ms: 15000,
                        text_bytes_max: text_max,
                    }
                }
            ),
        (any_text(), any::<u64>(), any_text()).prop_map(|(room, seq, nick)| ServerFrame::Joined {
            room,
            seq,
            nick
        }),
        (
            any_text(),
            any::<u64>(),
            any_text(),
            any_text(),
            any::<bool>()
        )
            .prop_map(|(room, seq, nick, text, action)| ServerFrame::Message {
                room,
                seq,
                nick,
                text,
                action
            }),
        (any_text(), any::<u64>(), any_text(), any_text()).prop_map(|(room, seq, from, to)| {
            ServerFrame::Renamed {
                room,
                seq,
                from,
                to,
            }
        }),
        (
            any::<u64>(),
            any_text(),
            any_text(),
            any_text(),
            any::<bool>()
        )
            .prop_map(|(seq, from, to, text, action)| ServerFrame::Private {
                sent: action,
                seq,
                from,
                to,
                text,
                action
            }),
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any_text()),
            proptest::option::of(any_text())
        )
            .prop_map(|(id, seq, room, to)| ServerFrame::Ack { id, seq, room, to }),
        (proptest::option::of(any_text()), any::<u64>(), any::<u64>())
            .prop_map(|(room, from, to)| ServerFrame::Gap { room, from, to }),
        Just(ServerFrame::Heartbeat),
        Just(ServerFrame::Bye),
        (any_text(), proptest::option::of(any::<u64>())).prop_map(|(message, id)| {
            ServerFrame::Error {
                code: ErrorCode::IdStale,
                message,
                id,
                room: None,
                retry_after_ms: None,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in any_client_frame()) {
        let bytes = encode(&frame);
        prop_assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        let decoded = decode_all::<ClientFrame>(&bytes, usize::MAX);
        prop_assert_eq!(decoded, vec![Ok(frame)]);
    }

    #[test]
    fn server_frames_round_trip(frame in any_server_frame()) {
        let bytes = encode(&frame);
        let decoded = decode_all::<ServerFrame>(&bytes, usize::MAX);
        prop_assert_eq!(decoded, vec![Ok(frame)]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_all::<ClientFrame>(&input, 64);
    }

    #[test]
    fn valid_texts_fit_in_a_frame(text in "[^\\p{Cc}]{1,200}") {
        let text = text.repeat(TEXT_BYTES_MAX / text.len().max(1));
        prop_assume!(validate_text(&text, TEXT_BYTES_MAX).is_ok());
        let frame = encode(&ServerFrame::Message {
            room: "r".repeat(ROOM_CHARS_MAX),
            seq: u64::MAX,
            nick: "n".repeat(crate::protocol::NICK_CHARS_MAX),
            text,
            action: true,
        });
        prop_assert!(frame.len() <= FRAME_BYTES_MAX);
    }
}
