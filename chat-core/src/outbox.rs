//! The bounded outbound queue of one connection, and the loop that writes it.
//!
//! The room pushes encoded frames ([`Bytes`], shared among all recipients of
//! a broadcast) and never waits: when a connection's queued bytes would pass
//! the limit, [`Outbox::push`] fails and the server drops that connection.
//! [`write_loop`] drains the queue with vectored writes, many frames per
//! system call.
//!
//! Hand-written rather than a tokio channel because the bound is in bytes, not
//! in frames, and the writer takes everything queued at once (double
//! buffering), which a channel cannot hand over.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Mutex;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::buggify::{self, Site};

/// Most frames handed to one vectored write.
const FRAMES_PER_WRITE_MAX: usize = 64;

/// Unwritten bursts (replays, history on join) may hold this many times the
/// live limit before another is refused: enough for a client that pipelines
/// a few joins before it can read their answers, not for one that never
/// reads.
const BURST_LIMITS_MAX: usize = 4;

/// A writer's local queue keeps at most this much capacity while idle.
const IDLE_CAPACITY_MAX: usize = 4;

/// Why a frame was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// Queuing it would pass the byte limit: the peer does not read.
    Full,
    /// The connection is closing; nothing more is sent.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    Open,
    /// Write what is queued, then close.
    AfterFlush,
    /// Close without writing anything more.
    Now,
}

#[derive(Debug)]
struct State {
    frames: VecDeque<Bytes>,
    /// Bytes queued here plus bytes the writer took but has not written yet.
    bytes: usize,
    /// How many of those belong to a replay, which the limit does not count.
    replay_bytes: usize,
    closing: Closing,
}

/// What [`Outbox::push_without_waking`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// Bytes now queued that count against the limit.
    pub queued: usize,
    /// The queue was empty, so the writer may be waiting: it must be woken
    /// with [`Outbox::wake_writer`].
    pub was_empty: bool,
}

/// The outbound queue of one connection.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    wake_writer: Notify,
    /// Woken when the outbox is closed without flushing.
    wake_aborted: Notify,
    bytes_max: usize,
}

impl Outbox {
    /// An empty queue that holds at most `bytes_max` bytes.
    pub fn new(bytes_max: usize) -> Self {
        Self {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                replay_bytes: 0,
                closing: Closing::Open,
            }),
            wake_writer: Notify::new(),
            wake_aborted: Notify::new(),
            bytes_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Invariant: no code panics while holding this lock (it only moves
        // queue entries and counters), so it is never poisoned.
        self.state.lock().expect("outbox lock poisoned")
    }

    /// Queues a frame without waiting and wakes the writer; returns the
    /// bytes now queued that count against the limit.
    pub fn push(&self, frame: Bytes) -> Result<usize, PushError> {
        let pushed = self.push_without_waking(frame)?;
        if pushed.was_empty {
            self.wake_writer();
        }
        Ok(pushed.queued)
    }

    /// Queues a frame like [`Outbox::push`] but leaves waking the writer to
    /// the caller (see [`Pushed::was_empty`]), who can then do it after
    /// releasing its own locks.
    pub fn push_without_waking(&self, frame: Bytes) -> Result<Pushed, PushError> {
        let mut state = self.lock();
        if state.closing != Closing::Open {
            return Err(PushError::Closed);
        }
        let live = state.bytes - state.replay_bytes;
        if live + frame.len() > self.bytes_max && !planted!(UnboundedQueue) {
            return Err(PushError::Full);
        }
        state.bytes += frame.len();
        state.frames.push_back(frame);
        Ok(Pushed {
            queued: state.bytes - state.replay_bytes,
            was_empty: state.frames.len() == 1,
        })
    }

    /// Wakes the writer to take what is queued.
    pub fn wake_writer(&self) {
        self.wake_writer.notify_one();
    }

    /// Queues a burst the client asked for, all at once and beyond the
    /// limit: the events a resumed client missed, or a room's recent
    /// messages on joining it. A burst is bounded by the history kept, and
    /// refusing it would only make the client ask again and again. Live
    /// frames queued after it are limited as usual. A burst is refused
    /// while more than [`BURST_LIMITS_MAX`] limits' worth of earlier bursts
    /// is still unwritten: a client that joins and leaves rooms without
    /// reading must not make the server hold history for it without end.
    pub fn push_replay(&self, frames: Vec<Bytes>) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.closing != Closing::Open {
            return Err(PushError::Closed);
        }
        if state.replay_bytes > self.bytes_max.saturating_mul(BURST_LIMITS_MAX)
            && !planted!(UnboundedQueue)
        {
            return Err(PushError::Full);
        }
        let was_empty = state.frames.is_empty();
        for frame in frames {
            state.bytes += frame.len();
            state.replay_bytes += frame.len();
            state.frames.push_back(frame);
        }
        drop(state);
        if was_empty {
            self.wake_writer();
        }
        Ok(())
    }

    /// Stops accepting frames; with `flush` the writer first writes what is
    /// queued, without it the writer stops at once.
    pub fn close(&self, flush: bool) {
        let mut state = self.lock();
        state.closing = match (state.closing, flush) {
            (Closing::Now, _) | (_, false) => Closing::Now,
            (_, true) => Closing::AfterFlush,
        };
        let aborted = state.closing == Closing::Now;
        drop(state);
        self.wake_writer();
        if aborted {
            self.wake_aborted.notify_waiters();
        }
    }

    /// Completes once the outbox is closed without flushing: whoever holds
    /// the connection must drop it (a writer may be blocked on a peer that
    /// does not read).
    pub async fn aborted(&self) {
        loop {
            let notified = self.wake_aborted.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close in between is not missed.
            notified.as_mut().enable();
            if self.lock().closing == Closing::Now {
                return;
            }
            notified.await;
        }
    }

    /// Bytes queued or being written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// True once [`Outbox::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closing != Closing::Open
    }

    /// Waits for frames to write and swaps them into `local` (which must be
    /// empty). Returns false when the writer should stop.
    async fn take(&self, local: &mut VecDeque<Bytes>) -> bool {
        debug_assert!(local.is_empty());
        loop {
            {
                let mut state = self.lock();
                match state.closing {
                    Closing::Now => return false,
                    _ if !state.frames.is_empty() => {
                        std::mem::swap(&mut state.frames, local);
                        return true;
                    }
                    Closing::AfterFlush => return false,
                    Closing::Open => {}
                }
            }
            self.wake_writer.notified().await;
        }
    }

    fn written(&self, bytes: usize) -> bool {
        let mut state = self.lock();
        assert!(state.bytes >= bytes, "wrote more than was queued");
        state.bytes -= bytes;
        // Frames go out in order and a replay precedes the live frames after
        // it, so written bytes are counted as replay bytes first. (Bytes
        // queued just before a replay, such as the welcome, are counted so
        // too, which errs on the strict side.)
        state.replay_bytes -= state.replay_bytes.min(bytes);
        state.closing != Closing::Now
    }
}

/// Writes everything pushed into `outbox` to `writer` until the outbox is
/// closed (after flushing, if asked), then shuts the writer down.
///
/// Returns an error if a write fails. A write blocked by a peer that does not
/// read stays blocked: the caller must drop this future once the outbox is
/// closed with `flush == false`.
pub async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, outbox: &Outbox) -> io::Result<()> {
    let mut local = VecDeque::new();
    loop {
        // Let the tasks that are running queue more first: under load a
        // write then carries many frames; when idle this costs one yield.
        tokio::task::yield_now().await;
        if !outbox.take(&mut local).await {
            break;
        }
        while !local.is_empty() {
            let written = write_some(&mut writer, &local).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            consume(&mut local, written);
            if !outbox.written(written) {
                return Ok(());
            }
        }
        writer.flush().await?;
        if buggify::fire(Site::SpuriousWake) {
            outbox.wake_writer(); // the next wait ends with nothing queued
        }
        if local.capacity() > IDLE_CAPACITY_MAX {
            local.shrink_to(IDLE_CAPACITY_MAX);
        }
    }
    writer.shutdown().await
}

/// One vectored write of up to [`FRAMES_PER_WRITE_MAX`] queued frames. The
/// slice array lives only during a poll, not in the future's state: an idle
/// connection's writer stays small.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: &VecDeque<Bytes>,
) -> io::Result<usize> {
    std::future::poll_fn(|context| {
        let mut slices = [IoSlice::new(&[]); FRAMES_PER_WRITE_MAX];
        let mut count = frames.len().min(FRAMES_PER_WRITE_MAX);
        for (slice, frame) in slices.iter_mut().zip(frames) {
            *slice = IoSlice::new(frame);
        }
        if let Some(first) = frames.front()
            && buggify::fire(Site::ShortWrite)
        {
            // Part of the first frame only, as a kernel may take.
            let part = 1 + buggify::below(first.len() as u64) as usize;
            slices[0] = IoSlice::new(&first[..part.min(first.len())]);
            count = 1;
        }
        Pin::new(&mut *writer).poll_write_vectored(context, &slices[..count])
    })
    .await
}

/// Removes `written` bytes from the front of `frames`.
fn consume(frames: &mut VecDeque<Bytes>, mut written: usize) {
    while written > 0 {
        // Invariant: the writer never reports more bytes than it was given.
        let front = frames.front_mut().expect("written bytes were queued");
        if front.len() <= written {
            written -= front.len();
            frames.pop_front();
        } else {
            front.advance(written);
            written = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Whether `aborted()` has completed, polled once without waiting.
    fn has_aborted(outbox: &Outbox) -> bool {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let aborted = std::pin::pin!(outbox.aborted());
        aborted.poll(&mut context).is_ready()
    }

    /// A waker that remembers being woken.
    struct Woken(AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_close_without_flush_aborts_and_wakes_who_waits_a_flushing_close_does_neither() {
        let outbox = Outbox::new(10);
        assert!(!outbox.is_closed() && !has_aborted(&outbox), "open");
        let woken = Arc::new(Woken(AtomicBool::new(false)));
        let waker = std::task::Waker::from(Arc::clone(&woken));
        let mut context = std::task::Context::from_waker(&waker);
        let mut waiting = std::pin::pin!(outbox.aborted());
        assert!(waiting.as_mut().poll(&mut context).is_pending());
        outbox.close(true);
        assert!(outbox.is_closed(), "closed after flushing");
        assert!(
            !has_aborted(&outbox),
            "a flushing close lets the writer finish"
        );
        assert!(!woken.0.load(Ordering::SeqCst), "and wakes no one");
        outbox.close(false);
        assert!(
            woken.0.load(Ordering::SeqCst),
            "a close without flush wakes"
        );
        assert!(waiting.as_mut().poll(&mut context).is_ready(), "and aborts");
        outbox.close(true);
        assert!(has_aborted(&outbox), "and stays aborted");
    }

    #[test]
    fn push_refuses_past_the_byte_limit_and_after_close() {
        let outbox = Outbox::new(10);
        assert_eq!(outbox.push(Bytes::from_static(b"123456")), Ok(6));
        assert_eq!(
            outbox.push(Bytes::from_static(b"12345")),
            Err(PushError::Full)
        );
        assert_eq!(outbox.push(Bytes::from_static(b"1234")), Ok(10));
        assert_eq!(outbox.queued_bytes(), 10);
        outbox.close(true);
        assert_eq!(
            outbox.push(Bytes::from_static(b"1")),
            Err(PushError::Closed)
        );
    }

    #[test]
    fn a_replay_goes_beyond_the_limit_but_live_frames_after_it_do_not() {
        let outbox = Outbox::new(10);
        let replay = vec![
            Bytes::from_static(b"0123456789"),
            Bytes::from_static(b"0123456789"),
        ];
        assert_eq!(outbox.push_replay(replay), Ok(()));
        assert_eq!(outbox.queued_bytes(), 20);
        assert_eq!(
            outbox.push(Bytes::from_static(b"12345678")),
            Ok(8),
            "the replay is not counted"
        );
        assert_eq!(
            outbox.push(Bytes::from_static(b"123")),
            Err(PushError::Full)
        );
        assert!(outbox.written(20), "the replay is written");
        assert_eq!(outbox.push(Bytes::from_static(b"12")), Ok(10));
    }

    #[test]
    fn a_burst_is_refused_while_four_limits_of_earlier_bursts_are_unwritten() {
        let outbox = Outbox::new(10);
        let burst = || vec![Bytes::from_static(b"012345"), Bytes::from_static(b"6789")];
        // Bursts of 10 bytes against a limit of 10: the fifth brings the
        // unwritten bursts to 50, past four limits; the sixth is refused.
        for number in 1..=5 {
            assert_eq!(outbox.push_replay(burst()), Ok(()), "burst {number}");
        }
        assert_eq!(outbox.push_replay(burst()), Err(PushError::Full));
        assert!(outbox.written(15));
        assert_eq!(outbox.push_replay(burst()), Ok(()), "35 unwritten again");
    }

    #[test]
    fn consume_handles_partial_frames() {
        let mut frames: VecDeque<Bytes> = [&b"abc"[..], b"de", b"f"]
            .into_iter()
            .map(Bytes::from_static)
            .collect();
        consume(&mut frames, 4);
        assert_eq!(
            frames,
            vec![Bytes::from_static(b"e"), Bytes::from_static(b"f")]
        );
    }

    #[tokio::test]
    async fn the_writer_flushes_in_order_then_shuts_down() {
        let outbox = Outbox::new(1000);
        let (client, mut server) = tokio::io::duplex(4);
        for frame in ["one\n", "two\n", "three\n"] {
            outbox
                .push(Bytes::from_static(frame.as_bytes()))
                .expect("room left");
        }
        outbox.close(true);
        let reading = async {
            let mut received = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received)
                .await
                .expect("duplex read");
            received
        };
        let (written, received) = tokio::join!(write_loop(client, &outbox), reading);
        written.expect("writes succeed");
        assert_eq!(received, b"one\ntwo\nthree\n");
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn close_without_flush_drops_what_is_queued() {
        let outbox = Outbox::new(1000);
        let (client, mut server) = tokio::io::duplex(64);
        outbox
            .push(Bytes::from_static(b"never\n"))
            .expect("room left");
        outbox.close(false);
        write_loop(client, &outbox).await.expect("nothing to write");
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received)
            .await
            .expect("duplex read");
        assert!(received.is_empty());
    }
}
