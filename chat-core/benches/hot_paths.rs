//! Micro-benchmarks of the hot paths: encoding and decoding frames, and the
//! room state machine's broadcast of one message to a full room.
//! Run with `cargo bench -p chat-core` (or `just bench-micro`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::BytesMut;
use chat_core::protocol::{
    self, ClientFrame, FRAME_BYTES_MAX, FrameDecoder, PROTOCOL_VERSION, ServerFrame,
};
use chat_core::room::{Action, ConnectionId, RoomConfig, Rooms};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::codec::Decoder;

fn codec(criterion: &mut Criterion) {
    let message = ServerFrame::Message {
        room: "lobby".into(),
        seq: 123_456,
        nick: "Joshua".into(),
        text: "What's up? Nothing much, just benchmarking the codec.".into(),
        action: false,
    };
    let mut group = criterion.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode a message event", |bench| {
        bench.iter(|| protocol::encode(black_box(&message)))
    });
    let send = protocol::encode(&ClientFrame::Send {
        room: "lobby".into(),
        id: 42,
        text: "Hello there".into(),
        action: false,
    });
    group.bench_function("decode a send frame", |bench| {
        let mut decoder = FrameDecoder::<ClientFrame>::new(FRAME_BYTES_MAX);
        bench.iter_batched(
            || BytesMut::from(&send[..]),
            |mut buffer| decoder.decode(&mut buffer).expect("valid frame"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Takes every record as written at once, and every action released.
fn settle(rooms: &mut Rooms) {
    while let Some(record) = rooms.poll_record() {
        rooms.handle_durable(record.lsn);
    }
}

/// A room of `members` joined members; `persistent` makes a record of
/// every input, as a durable server does.
fn full_room(members: u64, persistent: bool) -> Rooms {
    let config = RoomConfig {
        message_rate: 0,
        connections_per_address_max: usize::MAX,
        ..RoomConfig::default()
    };
    let mut rooms = Rooms::new(config, "bench".into(), [1; 32], persistent);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for member in 0..members {
        let connection = ConnectionId(member);
        rooms.handle_connection_opened(connection, peer, Duration::ZERO);
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick: format!("member{member}"),
            resume: None,
        };
        rooms.handle_frame(connection, hello, Duration::ZERO);
        let join = ClientFrame::Join {
            room: "lobby".into(),
        };
        rooms.handle_frame(connection, join, Duration::ZERO);
        settle(&mut rooms);
        while rooms.poll_action().is_some() {}
    }
    rooms
}

fn broadcast(criterion: &mut Criterion) {
    let members = 100;
    let mut group = criterion.benchmark_group("room");
    group.throughput(Throughput::Elements(members));
    for (name, persistent) in [
        ("accept a message and fan it out to 100 members", false),
        ("the same, with its durable record", true),
    ] {
        let mut rooms = full_room(members, persistent);
        let mut id = 0;
        group.bench_function(name, |bench| {
            bench.iter(|| {
                id += 1;
                let send = ClientFrame::Send {
                    room: "lobby".into(),
                    id,
                    text: "Hello there".into(),
                    action: false,
                };
                rooms.handle_frame(ConnectionId(0), send, Duration::ZERO);
                settle(&mut rooms);
                let mut deliveries = 0;
                while let Some(action) = rooms.poll_action() {
                    if let Action::Broadcast {
                        recipients, frame, ..
                    } = action
                    {
                        for recipient in recipients.iter() {
                            black_box((recipient, frame.clone()));
                            deliveries += 1;
                        }
                    }
                }
                deliveries
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec, broadcast);
criterion_main!(benches);
