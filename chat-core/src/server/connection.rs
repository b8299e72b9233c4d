//! One task per connection: it reads frames for the state machine and
//! writes what the state machine queues for it.

use std::sync::Arc;
use std::time::Duration;

use chat_net::{Connection, Network};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::Shared;
use super::state::Link;
use crate::outbox::write_loop;
use crate::protocol::{ClientFrame, FRAME_BYTES_MAX, FrameError};
use crate::reader::{FrameReader, Read};
use crate::room::{CloseReason, ConnectionId};

/// Most frames of one connection handled under one lock, so that one busy
/// sender cannot hold the room for long.
const FRAMES_PER_LOCK_MAX: usize = 64;

/// How long a connection closed by the server keeps draining its input.
pub const LINGER: Duration = Duration::from_secs(1);

/// Least time between two reports that bytes of an unfinished frame
/// arrived on one connection (each takes the state lock).
const PROGRESS_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// How a connection task's main loop ended.
enum Ending {
    /// The state machine closed it at once.
    Aborted,
    /// The peer closed its side.
    PeerClosed,
    /// The server closed it after writing everything queued.
    Flushed(std::io::Result<()>),
}

/// Serves one accepted connection until it closes.
pub(super) async fn serve<N: Network>(
    shared: Arc<Shared>,
    id: ConnectionId,
    connection: Connection<N::Reader, N::Writer>,
) {
    let link = Arc::new(Link::new(shared.config.queue_bytes_max, connection.peer));
    {
        let now = shared.now();
        let mut state = shared.lock();
        state.links.insert(id, link.clone());
        state
            .rooms
            .handle_connection_opened(id, connection.peer.ip(), now);
        state.carry_out(now);
        shared.release(state);
    }
    let mut frames = FrameReader::<_, ClientFrame>::new(connection.reader, FRAME_BYTES_MAX);
    let ending = serve_until_closed(&shared, id, &link, &mut frames, connection.writer).await;
    match ending {
        Ending::Aborted | Ending::PeerClosed => {}
        Ending::Flushed(Err(error)) => tracing::debug!(connection = id.0, %error, "write failed"),
        Ending::Flushed(Ok(())) if !frames.at_eof() => {
            // Lingering close: read (and drop) what the peer still sends, so
            // that closing with unread input does not reset the connection
            // and destroy the last frames we wrote before the peer reads them.
            let _ = tokio::time::timeout(LINGER, frames.discard_rest()).await;
        }
        Ending::Flushed(Ok(())) => {}
    }
    shared.handle(|rooms, now| rooms.handle_connection_closed(id, CloseReason::PeerClosed, now));
    shared.lock().links.remove(&id);
}

/// Hands `first` and every further frame already read to the state machine
/// under one lock, then carries out their actions together: a busy sender's
/// messages reach each recipient's queue in one go. The frames are decoded
/// before the lock is taken. A decoding error met on the way is handed over
/// after the frames before it.
fn handle_frames<R: AsyncRead + Unpin>(
    shared: &Shared,
    id: ConnectionId,
    first: Result<ClientFrame, FrameError>,
    frames: &mut FrameReader<R, ClientFrame>,
) {
    let mut batch = vec![first];
    while batch.len() < FRAMES_PER_LOCK_MAX && batch.last().is_some_and(Result::is_ok) {
        match frames.try_next() {
            Some(frame) => batch.push(frame),
            None => break,
        }
    }
    let now = shared.now();
    let mut state = shared.lock();
    for frame in batch {
        match frame {
            Ok(frame) => state.rooms.handle_frame(id, frame, now),
            Err(error) => {
                tracing::debug!(connection = id.0, %error, "bad input");
                state.rooms.handle_bad_frame(id, &error, now);
            }
        }
    }
    state.carry_out(now);
    shared.release(state);
}

/// Reads frames for the state machine and writes what it queues, until the
/// connection is closed by either side.
async fn serve_until_closed<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    shared: &Shared,
    id: ConnectionId,
    link: &Link,
    frames: &mut FrameReader<R, ClientFrame>,
    writer: W,
) -> Ending {
    let writing = write_loop(writer, &link.outbox);
    tokio::pin!(writing);
    let mut reading = true;
    let mut progress_reported = Instant::now();
    loop {
        let paused = link.is_paused();
        tokio::select! {
            biased;
            () = link.outbox.aborted() => return Ending::Aborted,
            result = &mut writing => return Ending::Flushed(result),
            () = link.until_resumed(), if reading && paused => {}
            read = frames.next_or_progress(), if reading && !paused => match read {
                Read::Frame(frame) => {
                    reading = frame.is_ok();
                    handle_frames(shared, id, frame, frames);
                }
                Read::Progress => {
                    if progress_reported.elapsed() >= PROGRESS_REPORT_INTERVAL {
                        progress_reported = Instant::now();
                        let now = shared.now();
                        shared.lock().rooms.handle_progress(id, now);
                    }
                }
                Read::End if link.outbox.is_closed() => reading = false,
                Read::End => return Ending::PeerClosed,
            },
        }
    }
}
