//! A network in memory for the client's tests, and the server's end of its
//! connections, which a test plays by hand.

use std::net::SocketAddr;
use std::time::Duration;

use chat_net::{Connection, Listener, NetError, Network};
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::protocol::{
    self, ClientFrame, DEFAULT_ROOM, FRAME_BYTES_MAX, PROTOCOL_VERSION, Seq, ServerFrame,
    TEXT_BYTES_MAX,
};
use crate::reader::FrameReader;

/// Bytes each direction of a stream holds before a write waits.
const STREAM_BYTES_MAX: usize = 64 * 1024;

/// Longest a scripted server waits for the client (simulated time): past
/// it the test fails instead of hanging.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// The session token the scripted server gives.
pub const TOKEN: &str = "token-of-ann";

/// A network in memory: each connect opens a duplex stream and hands its
/// far end to the test, which plays the server.
#[derive(Clone)]
pub struct MemoryNetwork {
    accepted: mpsc::UnboundedSender<DuplexStream>,
}

/// A network in memory, and where the server's ends of its connections
/// come out.
pub fn memory_network() -> (MemoryNetwork, mpsc::UnboundedReceiver<DuplexStream>) {
    let (accepted, connections) = mpsc::unbounded_channel();
    (MemoryNetwork { accepted }, connections)
}

/// The listener of [`MemoryNetwork`], which has none: the client never
/// listens.
pub enum NoListener {}

impl Listener for NoListener {
    type Reader = ReadHalf<DuplexStream>;
    type Writer = WriteHalf<DuplexStream>;

    async fn accept(&mut self) -> Result<Connection<Self::Reader, Self::Writer>, NetError> {
        match *self {}
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match *self {}
    }
}

impl Network for MemoryNetwork {
    type Reader = ReadHalf<DuplexStream>;
    type Writer = WriteHalf<DuplexStream>;
    type Listener = NoListener;

    async fn bind(&self, addr: &str) -> Result<NoListener, NetError> {
        Err(NetError::Bind {
            addr: addr.to_owned(),
            source: std::io::Error::other("the client's tests never listen"),
        })
    }

    async fn connect(
        &self,
        addr: &str,
    ) -> Result<Connection<Self::Reader, Self::Writer>, NetError> {
        let (client_end, server_end) = tokio::io::duplex(STREAM_BYTES_MAX);
        if self.accepted.send(server_end).is_err() {
            return Err(NetError::Connect {
                addr: addr.to_owned(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            });
        }
        let (reader, writer) = tokio::io::split(client_end);
        Ok(Connection {
            reader,
            writer,
            peer: SocketAddr::from(([127, 0, 0, 1], 7000)),
        })
    }
}

/// The server's end of one connection, played by a test. Each step fails
/// the test if the client does not do what the step expects.
pub struct ServerEnd {
    frames: FrameReader<ReadHalf<DuplexStream>, ClientFrame>,
    writer: WriteHalf<DuplexStream>,
}

impl ServerEnd {
    /// The next connection the client opens.
    pub async fn accept(accepted: &mut mpsc::UnboundedReceiver<DuplexStream>) -> Self {
        let stream = tokio::time::timeout(WAIT_MAX, accepted.recv())
            .await
            .expect("the client connects in time")
            .expect("the network is open while the test runs");
        let (reader, writer) = tokio::io::split(stream);
        Self {
            frames: FrameReader::new(reader, FRAME_BYTES_MAX),
            writer,
        }
    }

    /// The client's next frame other than a heartbeat; `None` once it has
    /// closed the connection.
    async fn next_frame(&mut self) -> Option<ClientFrame> {
        let next = async {
            loop {
                match self.frames.next().await? {
                    Ok(ClientFrame::Heartbeat) => {}
                    Ok(frame) => return Some(frame),
                    Err(error) => panic!("the client sent a bad frame: {error}"),
                }
            }
        };
        tokio::time::timeout(WAIT_MAX, next)
            .await
            .expect("the client sends a frame or closes the connection in time")
    }

    /// The client's next frame other than a heartbeat.
    pub async fn expect_frame(&mut self) -> ClientFrame {
        self.next_frame()
            .await
            .expect("the client keeps the connection open")
    }

    /// Waits until the client closes the connection: the frames it sent
    /// first (heartbeats left out), and when it closed.
    pub async fn closed(&mut self) -> (Vec<ClientFrame>, Instant) {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame().await {
            frames.push(frame);
        }
        (frames, Instant::now())
    }

    /// Writes `bytes` as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .await
            .expect("the client keeps the connection open");
    }

    async fn send(&mut self, frame: ServerFrame) {
        self.send_bytes(&protocol::encode(&frame)).await;
    }

    /// Takes the hello of `nick`, welcomes a new session and lets it into
    /// the default room, as event 1.
    pub async fn welcome(&mut self, nick: &str) {
        match self.expect_frame().await {
            ClientFrame::Hello {
                nick: said,
                resume: None,
                ..
            } => assert_eq!(said, nick),
            other => panic!("expected a hello, got {other:?}"),
        }
        self.send(ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            nick: nick.to_owned(),
            token: TOKEN.to_owned(),
            incarnation: "incarnation-1".to_owned(),
            resumed: false,
            rooms: Vec::new(),
            private_seq: 0,
            replayed: 0,
            heartbeat_interval_ms: 5_000,
            heartbeat_timeout_ms: 15_000,
            text_bytes_max: TEXT_BYTES_MAX,
        })
        .await;
        let room = DEFAULT_ROOM.to_owned();
        let join = self.expect_frame().await;
        assert_eq!(join, ClientFrame::Join { room: room.clone() });
        self.send(ServerFrame::Entered {
            room: room.clone(),
            seq: 1,
            history: 0,
        })
        .await;
        let nick = nick.to_owned();
        self.send(ServerFrame::Joined { room, seq: 1, nick }).await;
    }

    /// Takes the client's next frame, a message to the default room saying
    /// `text`; its id.
    pub async fn expect_message(&mut self, text: &str) -> u64 {
        match self.expect_frame().await {
            ClientFrame::Send {
                room,
                id,
                text: said,
                ..
            } if room == DEFAULT_ROOM && said == text => id,
            other => panic!("expected the message {text:?}, got {other:?}"),
        }
    }

    /// Accepts `nick`'s message `id` as event `seq` of the default room:
    /// the event, then the ack, in the order the real server sends them.
    pub async fn accept_message(&mut self, id: u64, seq: Seq, nick: &str, text: &str) {
        let room = DEFAULT_ROOM.to_owned();
        self.send(ServerFrame::Message {
            room: room.clone(),
            seq,
            nick: nick.to_owned(),
            text: text.to_owned(),
            action: false,
        })
        .await;
        self.send(ServerFrame::Ack {
            id,
            seq,
            room: Some(room),
            to: None,
        })
        .await;
    }

    /// Takes the client's quit and says goodbye.
    pub async fn goodbye(&mut self) {
        assert_eq!(self.expect_frame().await, ClientFrame::Quit);
        self.send(ServerFrame::Bye).await;
    }
}
