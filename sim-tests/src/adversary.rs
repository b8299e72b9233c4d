//! Adversaries: raw-protocol clients that write what any program may write.
//!
//! An adversary is a host of its own that runs episodes, one connection
//! each, at scripted times: frames pipelined after one that must end the
//! conversation, frames before the hello, a second hello, garbage, frames
//! split byte by byte, resumes with guessed, mismatched or expired tokens,
//! message ids misused, floods, silence, half-closes, resets in the middle
//! of a frame. Each episode's whole conversation is recorded (what was
//! written, every frame the server answered, when the connection closed)
//! for the oracle to judge against the protocol's contract, beside the
//! honest users who must not notice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_core::protocol::{
    self, ClientFrame, FRAME_BYTES_MAX, MESSAGE_ID_MAX, PROTOCOL_VERSION, Resume, ServerFrame,
};
use chat_core::reader::{FrameReader, Read};
use chat_net::{Network, SimNetwork};
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::scenario::{SECOND_ROOM, SERVER_HOST, SERVER_PORT};
use crate::seeds::SeedRng;

/// What one episode does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Episode {
    /// A send before the hello, then a hello and a join, in one write: the
    /// connection is refused and the hello must not join anyone.
    PipelinedRefusal,
    /// Hello, join, quit, then a send, in one write: the send after `quit`
    /// has no effect and nothing comes after `bye`.
    AfterQuit,
    /// Hello, join, a send, a leave of the room, then a send to it, in one
    /// write: the first is shown to its sender before its ack, the second
    /// is refused with `not_in_room`.
    AfterLeave,
    /// Every kind of frame a welcomed client may send, pipelined in one
    /// write: each gets its answer, in order.
    EveryFrame,
    /// Hello, join, then a second hello: refused, and the session ends.
    SecondHello,
    /// Bytes that are not a frame.
    Garbage(Garbage),
    /// Hello, join and a send, written one byte at a time: all answered.
    ByteByByte,
    /// A resume of an existing nickname with a guessed token.
    GuessedResume {
        /// Whose session it tries to take.
        victim: String,
    },
    /// A session that quit, then a resume with its (now dead) token, then
    /// a resume with a live token but another incarnation.
    ExpiredResume,
    /// Message ids misused: a retry with other text, 0, above the maximum,
    /// and a stale one never sent.
    IdAbuse,
    /// Many messages at once, with nothing read in between.
    Flood {
        /// How many.
        count: u64,
    },
    /// Connects and never finishes a hello (`trickle`: sends one byte of a
    /// hello every second instead of nothing).
    Silent {
        /// Trickle bytes instead of staying silent.
        trickle: bool,
    },
    /// Hello, join, then closes its writing side and keeps reading.
    HalfClose,
    /// Hello, join, half a frame, then drops the connection.
    ResetMidFrame,
    /// Hello, join, then long messages at a steady pace, never reading:
    /// the server must drop it once its queue fills, whoever it is.
    NeverReads,
}

impl Episode {
    /// Its name, for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Episode::PipelinedRefusal => "adversary frames after a refusal",
            Episode::AfterQuit => "adversary frames after quit",
            Episode::AfterLeave => "adversary frames after leave",
            Episode::EveryFrame => "adversary frames of every kind pipelined",
            Episode::SecondHello => "adversary second hellos",
            Episode::Garbage(_) => "adversary garbage",
            Episode::ByteByByte => "adversary frames split byte by byte",
            Episode::GuessedResume { .. } => "adversary guessed resumes",
            Episode::ExpiredResume => "adversary expired resumes",
            Episode::IdAbuse => "adversary message ids misused",
            Episode::Flood { .. } => "adversary floods",
            Episode::Silent { .. } => "adversary silent connections",
            Episode::HalfClose => "adversary half-closes",
            Episode::ResetMidFrame => "adversary resets mid-frame",
            Episode::NeverReads => "adversary readers that never read",
        }
    }

    /// What it does, in a phrase, for reports.
    pub fn summary(&self) -> String {
        match self {
            Episode::PipelinedRefusal => {
                "a send before any hello, then a hello and a join, in one write".to_owned()
            }
            Episode::AfterQuit => "hello, join, a send, quit, and a send after the quit".to_owned(),
            Episode::AfterLeave => {
                "hello, join, a send, a leave, and a send to the room left".to_owned()
            }
            Episode::EveryFrame => "every kind of frame, pipelined in one write".to_owned(),
            Episode::SecondHello => "hello, join, then a second hello".to_owned(),
            Episode::Garbage(Garbage::Http) => "garbage: an HTTP request".to_owned(),
            Episode::Garbage(Garbage::Latin1) => "garbage: a hello that is not UTF-8".to_owned(),
            Episode::Garbage(Garbage::Oversized) => {
                "garbage: a frame longer than the limit".to_owned()
            }
            Episode::Garbage(Garbage::UnknownType) => "garbage: JSON of no frame type".to_owned(),
            Episode::ByteByByte => "hello, join and a send, one byte at a time".to_owned(),
            Episode::GuessedResume { victim } => {
                format!("a resume of {victim}'s session with a guessed token")
            }
            Episode::ExpiredResume => {
                "a session that quits, then resumes with its dead token and another incarnation"
                    .to_owned()
            }
            Episode::IdAbuse => {
                "message ids misused: a retry with other text, 0, too high, stale".to_owned()
            }
            Episode::Flood { count } => format!("a flood of {count} messages at once"),
            Episode::Silent { trickle: false } => "connects and never says hello".to_owned(),
            Episode::Silent { trickle: true } => {
                "connects and trickles a hello, one byte a second".to_owned()
            }
            Episode::HalfClose => "hello, join, then closes its writing side".to_owned(),
            Episode::ResetMidFrame => "hello, join, half a frame, then a reset".to_owned(),
            Episode::NeverReads => "hello, join, long messages, and never reads".to_owned(),
        }
    }

    /// A word or two for a picture's band.
    pub fn label(&self) -> &'static str {
        match self {
            Episode::PipelinedRefusal => "refusal",
            Episode::AfterQuit => "after quit",
            Episode::AfterLeave => "after leave",
            Episode::EveryFrame => "every frame",
            Episode::SecondHello => "2nd hello",
            Episode::Garbage(_) => "garbage",
            Episode::ByteByByte => "byte by byte",
            Episode::GuessedResume { .. } => "guessed resume",
            Episode::ExpiredResume => "expired resume",
            Episode::IdAbuse => "id abuse",
            Episode::Flood { .. } => "flood",
            Episode::Silent { .. } => "silent",
            Episode::HalfClose => "half-close",
            Episode::ResetMidFrame => "reset",
            Episode::NeverReads => "never reads",
        }
    }
}

/// Kinds of garbage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// An HTTP request.
    Http,
    /// Not UTF-8.
    Latin1,
    /// A frame longer than the limit.
    Oversized,
    /// JSON of no frame type.
    UnknownType,
}

/// An adversary host and what it does, when.
#[derive(Clone, Debug)]
pub struct AdversaryScript {
    /// The host's name.
    pub host: String,
    /// Episodes by start time.
    pub episodes: Vec<(Duration, Episode)>,
}

/// One episode's conversation, as recorded.
#[derive(Clone, Debug, Default)]
pub struct Conversation {
    /// The episode (and the nickname it used).
    pub episode: Option<Episode>,
    /// The nickname it used, if any.
    pub nick: String,
    /// When it first connected (None: it could not).
    pub connected: Option<Duration>,
    /// Where in `received` each of its connections starts (an episode that
    /// reconnects has two).
    pub connections: Vec<usize>,
    /// The frames written, by kind, with when.
    pub sent: Vec<(Duration, String)>,
    /// The frames received, with when.
    pub received: Vec<(Duration, ServerFrame)>,
    /// When the server closed the connection (or it broke), if it did.
    pub closed: Option<Duration>,
    /// A line from the server that was not a frame, if any.
    pub garbage_received: Option<String>,
    /// When the episode gave up waiting.
    pub ended: Duration,
}

/// Draws an adversary's script.
pub fn script(
    rng: &mut SeedRng,
    index: usize,
    victims: &[String],
    active: Duration,
) -> AdversaryScript {
    let count = rng.random_range(3..=8);
    let active_ms = u64::try_from(active.as_millis()).unwrap_or(u64::MAX);
    let mut episodes: Vec<(Duration, Episode)> = (0..count)
        .map(|_| {
            let at = Duration::from_millis(rng.random_range(1_000..active_ms - 15_000));
            (at, draw_episode(rng, victims))
        })
        .collect();
    episodes.sort_by_key(|(at, _)| *at);
    AdversaryScript {
        host: format!("adv{index}"),
        episodes,
    }
}

fn draw_episode(rng: &mut SeedRng, victims: &[String]) -> Episode {
    match rng.random_range(0..16) {
        0 => Episode::PipelinedRefusal,
        1 => Episode::AfterQuit,
        2 => Episode::SecondHello,
        3 => Episode::Garbage(Garbage::Http),
        4 => Episode::Garbage(
            [Garbage::Latin1, Garbage::Oversized, Garbage::UnknownType][rng.random_range(0..3)],
        ),
        5 => Episode::ByteByByte,
        6 if !victims.is_empty() => Episode::GuessedResume {
            victim: victims[rng.random_range(0..victims.len())].clone(),
        },
        6 | 7 => Episode::ExpiredResume,
        8 => Episode::IdAbuse,
        9 => Episode::Flood {
            count: rng.random_range(50..300),
        },
        10 => Episode::Silent {
            trickle: rng.random_bool(0.5),
        },
        11 => Episode::HalfClose,
        12 => Episode::NeverReads,
        13 => Episode::AfterLeave,
        14 => Episode::EveryFrame,
        _ => Episode::ResetMidFrame,
    }
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// How long an episode waits for the server after its last write.
const EPISODE_WAIT: Duration = Duration::from_secs(20);

/// Runs an adversary's episodes, recording each conversation.
pub async fn run(script: AdversaryScript, record: Arc<Mutex<Vec<Conversation>>>) {
    for (number, (at, episode)) in script.episodes.into_iter().enumerate() {
        tokio::time::sleep(at.saturating_sub(now())).await;
        let nick = format!("{}-{number}", script.host);
        let conversation = run_episode(episode, nick).await;
        record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conversation);
    }
}

fn hello(nick: &str, resume: Option<Resume>) -> ClientFrame {
    ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        nick: nick.to_owned(),
        resume,
    }
}

fn join() -> ClientFrame {
    ClientFrame::Join {
        room: protocol::DEFAULT_ROOM.to_owned(),
    }
}

fn send(id: u64, text: &str) -> ClientFrame {
    ClientFrame::Send {
        room: protocol::DEFAULT_ROOM.to_owned(),
        id,
        text: text.to_owned(),
        action: false,
    }
}

/// The name a frame is counted under.
pub fn kind_of(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Hello {
            resume: Some(_), ..
        } => "resume",
        ClientFrame::Hello { .. } => "hello",
        ClientFrame::Join { .. } => "join",
        ClientFrame::Leave { .. } => "leave",
        ClientFrame::Send { .. } => "send",
        ClientFrame::Private { .. } => "private",
        ClientFrame::Nick { .. } => "nick",
        ClientFrame::ListRooms => "list_rooms",
        ClientFrame::Who { .. } => "who",
        ClientFrame::Heartbeat => "heartbeat",
        ClientFrame::Quit => "quit",
    }
}

/// What the server said on one connection, as the reading task saw it.
#[derive(Default)]
struct Inbox {
    received: Vec<(Duration, ServerFrame)>,
    closed: Option<Duration>,
    garbage: Option<String>,
}

type SimReader = <SimNetwork as Network>::Reader;

/// A connection of an episode. A task of its own reads it all the time, so
/// that an adversary is never a slow reader by accident: only what it
/// writes is hostile.
struct Wire {
    conversation: Conversation,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    reading: Option<JoinHandle<()>>,
    /// The reading side, until the reading task takes it.
    unread: Option<SimReader>,
    writer: Option<<SimNetwork as Network>::Writer>,
}

/// The longest one `listen` waits, however busy the connection.
const LISTEN_MAX: Duration = Duration::from_secs(60);

fn lock(inbox: &Mutex<Inbox>) -> std::sync::MutexGuard<'_, Inbox> {
    inbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads frames into the inbox until the connection ends.
async fn read_all(reader: SimReader, inbox: Arc<Mutex<Inbox>>, arrived: Arc<Notify>) {
    let mut frames = FrameReader::<_, ServerFrame>::new(reader, FRAME_BYTES_MAX);
    // Bounded: each pass reads from the connection, which ends, or the task
    // is aborted when its episode ends.
    loop {
        match frames.next_or_progress().await {
            Read::Progress => continue,
            Read::Frame(Ok(frame)) => lock(&inbox).received.push((now(), frame)),
            Read::Frame(Err(error)) => {
                let mut inbox = lock(&inbox);
                inbox.garbage = Some(error.to_string());
                inbox.closed = Some(now());
            }
            Read::End => lock(&inbox).closed = Some(now()),
        }
        arrived.notify_one();
        if lock(&inbox).closed.is_some() {
            return;
        }
    }
}

impl Wire {
    async fn open(conversation: Conversation) -> Option<Wire> {
        let mut wire = Wire::open_unread(conversation).await?;
        wire.start_reading();
        Some(wire)
    }

    /// Connects without reading yet.
    async fn open_unread(conversation: Conversation) -> Option<Wire> {
        let address = format!("{SERVER_HOST}:{SERVER_PORT}");
        let connection = tokio::time::timeout(Duration::from_secs(5), SimNetwork.connect(&address))
            .await
            .ok()?
            .ok()?;
        let mut conversation = conversation;
        conversation.connected.get_or_insert(now());
        conversation.connections.push(conversation.received.len());
        Some(Wire {
            conversation,
            inbox: Arc::new(Mutex::new(Inbox::default())),
            arrived: Arc::new(Notify::new()),
            reading: None,
            unread: Some(connection.reader),
            writer: Some(connection.writer),
        })
    }

    /// Starts the task that reads everything the server sends.
    fn start_reading(&mut self) {
        if let Some(reader) = self.unread.take() {
            let (inbox, arrived) = (self.inbox.clone(), self.arrived.clone());
            self.reading = Some(tokio::spawn(read_all(reader, inbox, arrived)));
        }
    }

    /// Writes frames in one write (pipelined).
    async fn write_frames(&mut self, frames: &[ClientFrame]) {
        let mut bytes = Vec::new();
        for frame in frames {
            bytes.extend_from_slice(&protocol::encode(frame));
            self.conversation
                .sent
                .push((now(), kind_of(frame).to_owned()));
        }
        self.write_bytes(&bytes, None).await;
    }

    /// Writes raw bytes (counted as `kind` if given), in one write.
    async fn write_bytes(&mut self, bytes: &[u8], kind: Option<&str>) {
        if let Some(kind) = kind {
            self.conversation.sent.push((now(), kind.to_owned()));
        }
        if let Some(writer) = self.writer.as_mut()
            && writer.write_all(bytes).await.is_err()
        {
            self.writer = None;
        }
    }

    fn closed(&self) -> bool {
        lock(&self.inbox).closed.is_some()
    }

    /// Waits until the server closes the connection or `wait` passes with
    /// nothing new (at most [`LISTEN_MAX`]).
    async fn listen(&mut self, wait: Duration) {
        let deadline = now() + LISTEN_MAX;
        // Bounded by the deadline.
        while !self.closed() && now() < deadline {
            if tokio::time::timeout(wait, self.arrived.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Waits until the server has answered a hello (a welcome and the
    /// room entered, or an error), closed the connection, or `most` passed.
    async fn wait_for_welcome(&mut self, most: Duration) {
        let deadline = now() + most;
        let answered = |inbox: &Inbox| {
            inbox.closed.is_some()
                || inbox.received.iter().any(|(_, frame)| {
                    matches!(
                        frame,
                        ServerFrame::Entered { .. } | ServerFrame::Error { .. }
                    )
                })
        };
        // Bounded by the deadline.
        while !answered(&lock(&self.inbox)) && now() < deadline {
            let left = deadline.saturating_sub(now());
            let _ = tokio::time::timeout(left, self.arrived.notified()).await;
        }
    }

    /// The first welcome's token, if one came.
    fn token(&self) -> Option<(String, String)> {
        lock(&self.inbox)
            .received
            .iter()
            .find_map(|(_, frame)| match frame {
                ServerFrame::Welcome {
                    token, incarnation, ..
                } => Some((token.clone(), incarnation.clone())),
                _ => None,
            })
    }

    fn finish(self) -> Conversation {
        if let Some(reading) = &self.reading {
            reading.abort();
        }
        let mut conversation = self.conversation;
        let mut inbox = lock(&self.inbox);
        conversation.received.append(&mut inbox.received);
        conversation.closed = inbox.closed;
        conversation.garbage_received = inbox.garbage.take().or(conversation.garbage_received);
        conversation.ended = now();
        conversation
    }
}

async fn run_episode(episode: Episode, nick: String) -> Conversation {
    let conversation = Conversation {
        episode: Some(episode.clone()),
        nick: nick.clone(),
        ..Conversation::default()
    };
    let opened = if episode == Episode::NeverReads {
        Wire::open_unread(conversation.clone()).await
    } else {
        Wire::open(conversation.clone()).await
    };
    let Some(mut wire) = opened else {
        let mut conversation = conversation;
        conversation.ended = now();
        return conversation;
    };
    match &episode {
        Episode::PipelinedRefusal => {
            wire.write_frames(&[
                send(1, &format!("{nick} before any hello")),
                hello(&nick, None),
                join(),
            ])
            .await;
        }
        Episode::AfterQuit => {
            let frames = [
                hello(&nick, None),
                join(),
                send(1, &format!("{nick} before quit")),
                ClientFrame::Quit,
                send(2, &format!("{nick} after quit")),
            ];
            wire.write_frames(&frames).await;
        }
        Episode::AfterLeave => {
            let frames = [
                hello(&nick, None),
                join(),
                send(1, &format!("{nick} before leave")),
                ClientFrame::Leave {
                    room: protocol::DEFAULT_ROOM.to_owned(),
                },
                send(2, &format!("{nick} after leave")),
            ];
            wire.write_frames(&frames).await;
        }
        Episode::EveryFrame => wire.write_frames(&every_frame(&nick)).await,
        Episode::SecondHello => {
            wire.write_frames(&[hello(&nick, None), join(), hello(&nick, None)])
                .await
        }
        Episode::Garbage(kind) => wire.write_bytes(&garbage(*kind), Some("garbage")).await,
        Episode::ByteByByte => byte_by_byte(&mut wire, &nick).await,
        Episode::GuessedResume { victim } => guessed_resume(&mut wire, victim).await,
        Episode::ExpiredResume => return expired_resume(wire, &nick).await,
        Episode::IdAbuse => id_abuse(&mut wire, &nick).await,
        Episode::Flood { count } => flood(&mut wire, &nick, *count).await,
        Episode::Silent { trickle } => silent(&mut wire, &nick, *trickle).await,
        Episode::HalfClose => {
            wire.write_frames(&[hello(&nick, None), join()]).await;
            wire.wait_for_welcome(EPISODE_WAIT).await;
            if let Some(mut writer) = wire.writer.take() {
                let _ = writer.shutdown().await;
            }
        }
        Episode::ResetMidFrame => {
            wire.write_frames(&[hello(&nick, None), join()]).await;
            wire.wait_for_welcome(EPISODE_WAIT).await;
            wire.write_bytes(b"{\"type\":\"send\",\"room\":\"lob", Some("partial"))
                .await;
            return wire.finish();
        }
        Episode::NeverReads => never_reads(&mut wire, &nick).await,
    }
    wire.listen(EPISODE_WAIT).await;
    wire.finish()
}

fn garbage(kind: Garbage) -> Vec<u8> {
    match kind {
        Garbage::Http => b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n".to_vec(),
        Garbage::Latin1 => b"{\"type\":\"hello\",\"nick\":\"J\xf6rg\"}\n".to_vec(),
        Garbage::Oversized => {
            let mut bytes = b"{\"type\":\"send\",\"text\":\"".to_vec();
            bytes.extend(std::iter::repeat_n(b'x', FRAME_BYTES_MAX + 10));
            bytes
        }
        Garbage::UnknownType => b"{\"type\":\"dance\"}\n".to_vec(),
    }
}

async fn byte_by_byte(wire: &mut Wire, nick: &str) {
    let frames = [
        hello(nick, None),
        join(),
        send(1, &format!("{nick} one byte at a time")),
    ];
    let mut bytes = Vec::new();
    for frame in &frames {
        bytes.extend_from_slice(&protocol::encode(frame));
        wire.conversation
            .sent
            .push((now(), kind_of(frame).to_owned()));
    }
    wire.conversation
        .sent
        .push((now(), "byte-split".to_owned()));
    for byte in bytes {
        wire.write_bytes(&[byte], None).await;
        // The pace of a slow link; the reading task goes on meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn guessed_resume(wire: &mut Wire, victim: &str) {
    // Any 32 hexadecimal digits: the right form, (almost surely) not a token.
    let guess = Resume {
        token: "0123456789abcdef0123456789abcdef".to_owned(),
        incarnation: String::new(),
        rooms: BTreeMap::new(),
        private_seq: 0,
    };
    wire.write_frames(&[hello(victim, Some(guess))]).await;
}

async fn expired_resume(mut wire: Wire, nick: &str) -> Conversation {
    wire.write_frames(&[hello(nick, None), join()]).await;
    wire.wait_for_welcome(EPISODE_WAIT).await;
    let ticket = wire.token();
    wire.write_frames(&[ClientFrame::Quit]).await;
    wire.listen(EPISODE_WAIT).await;
    let Some((token, incarnation)) = ticket else {
        return wire.finish();
    };
    let first = wire.finish();
    let Some(mut again) = Wire::open(first.clone()).await else {
        return Conversation {
            ended: now(),
            ..first
        };
    };
    let dead = Resume {
        token: token.clone(),
        incarnation: incarnation.clone(),
        rooms: BTreeMap::new(),
        private_seq: 0,
    };
    let elsewhere = Resume {
        token,
        incarnation: format!("{incarnation}0"),
        rooms: BTreeMap::new(),
        private_seq: 0,
    };
    again
        .write_frames(&[hello(nick, Some(dead)), hello(nick, Some(elsewhere))])
        .await;
    again.listen(EPISODE_WAIT).await;
    again.finish()
}

async fn id_abuse(wire: &mut Wire, nick: &str) {
    let frames = [
        hello(nick, None),
        join(),
        send(5, &format!("{nick} five")),
        send(5, &format!("{nick} five, other text")),
        send(0, &format!("{nick} zero")),
        send(MESSAGE_ID_MAX + 1, &format!("{nick} too high")),
        send(3, &format!("{nick} stale")),
        send(6, &format!("{nick} six")),
    ];
    wire.write_frames(&frames).await;
}

async fn flood(wire: &mut Wire, nick: &str, count: u64) {
    wire.write_frames(&[hello(nick, None), join()]).await;
    let frames: Vec<ClientFrame> = (1..=count)
        .map(|id| send(id, &format!("{nick} flood {id}")))
        .collect();
    for chunk in frames.chunks(50) {
        wire.write_frames(chunk).await;
    }
}

async fn silent(wire: &mut Wire, nick: &str, trickle: bool) {
    if !trickle {
        return;
    }
    let bytes = protocol::encode(&hello(nick, None));
    wire.conversation.sent.push((now(), "trickle".to_owned()));
    // A byte a second, for longer than any handshake deadline (the reading
    // task sees the server's answer when it comes).
    for byte in bytes.iter().take(30) {
        wire.write_bytes(&[*byte], None).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if wire.writer.is_none() || wire.closed() {
            return;
        }
    }
}

/// How long a reader that never reads keeps writing.
const NEVER_READS_FOR: Duration = Duration::from_secs(30);

async fn never_reads(wire: &mut Wire, nick: &str) {
    wire.write_frames(&[hello(nick, None), join()]).await;
    let padding = "~".repeat(2000);
    let started = now();
    // Bounded by the time and by the id: ten messages a second, within the
    // rate limit, each echoed back to a connection that does not read.
    for id in 1..=300 {
        if wire.writer.is_none() || now() >= started + NEVER_READS_FOR {
            break;
        }
        wire.write_frames(&[send(id, &format!("{nick} unread {id} {padding}"))])
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only now does it look at what came (and see that it was dropped).
    wire.start_reading();
}

/// One conversation in a line per frame: what was written, what came back
/// (heartbeats left out), and when it closed; for transcripts.
pub fn describe(conversation: &Conversation) -> Vec<String> {
    let mut lines = Vec::new();
    let episode = conversation
        .episode
        .as_ref()
        .map_or_else(|| "?".to_owned(), |episode| format!("{episode:?}"));
    lines.push(format!("{} ({episode})", conversation.nick));
    if conversation.connected.is_none() {
        lines.push("  could not connect".to_owned());
        return lines;
    }
    let sent: Vec<&str> = conversation
        .sent
        .iter()
        .map(|(_, kind)| kind.as_str())
        .collect();
    if sent.is_empty() {
        lines.push("  wrote nothing".to_owned());
    } else {
        lines.push(format!("  wrote: {}", sent.join(", ")));
    }
    for (_, frame) in &conversation.received {
        if matches!(frame, ServerFrame::Heartbeat) {
            continue;
        }
        lines.push(format!("  got: {}", frame_summary(frame)));
    }
    if conversation.closed.is_some() {
        lines.push("  closed by the server".to_owned());
    }
    lines
}

/// A frame in a few words: its kind and what identifies it.
pub fn frame_summary(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Welcome { nick, resumed, .. } => {
            format!("welcome {nick} (resumed: {resumed})")
        }
        ServerFrame::Entered { room, history, .. } => format!("entered {room} ({history} shown)"),
        ServerFrame::Ack { id, .. } => format!("ack {id}"),
        ServerFrame::Error { code, id, .. } => match id {
            Some(id) => format!("error {code} (id {id})"),
            None => format!("error {code}"),
        },
        ServerFrame::Message { nick, text, .. } => format!("message from {nick}: {text}"),
        ServerFrame::History { nick, .. } => format!("history from {nick}"),
        ServerFrame::Joined { nick, .. } => format!("{nick} joined"),
        ServerFrame::Left { nick, .. } => format!("{nick} left"),
        ServerFrame::Bye => "bye".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Every frame a welcomed client may send, in an order where each makes
/// sense: the answers come in the same order.
fn every_frame(nick: &str) -> Vec<ClientFrame> {
    vec![
        hello(nick, None),
        join(),
        ClientFrame::Join {
            room: SECOND_ROOM.to_owned(),
        },
        send(1, &format!("{nick} says everything")),
        ClientFrame::Private {
            to: nick.to_owned(),
            id: 2,
            text: format!("{nick} to itself"),
            action: true,
        },
        ClientFrame::Nick {
            nick: format!("{nick}x"),
        },
        ClientFrame::Who {
            room: SECOND_ROOM.to_owned(),
        },
        ClientFrame::ListRooms,
        ClientFrame::Heartbeat,
        ClientFrame::Leave {
            room: SECOND_ROOM.to_owned(),
        },
        ClientFrame::Quit,
    ]
}

/// Every kind of frame adversaries send, as counted in `sent`: the client
/// frames by [`kind_of`], and the raw writes.
pub const FRAME_KINDS: [&str; 15] = [
    "hello",
    "resume",
    "join",
    "leave",
    "send",
    "private",
    "nick",
    "list_rooms",
    "who",
    "heartbeat",
    "quit",
    "garbage",
    "byte-split",
    "trickle",
    "partial",
];
