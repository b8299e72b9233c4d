//! The run's trace: every log line of the server and clients, stamped with
//! simulated time (never the wall clock), captured in memory.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt;

/// Prints turmoil's simulated time, `-` outside a host.
struct SimTime;

impl FormatTime for SimTime {
    fn format_time(&self, writer: &mut Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(elapsed) => write!(writer, "{:>9.3}s", elapsed.as_secs_f64()),
            None => write!(writer, "{:>10}", "-"),
        }
    }
}

/// The captured trace.
#[derive(Clone, Default)]
pub struct TraceBuffer {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl TraceBuffer {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        let bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Writes into a [`TraceBuffer`].
pub struct BufferWriter {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl io::Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for TraceBuffer {
    type Writer = BufferWriter;

    fn make_writer(&'a self) -> BufferWriter {
        BufferWriter {
            bytes: self.bytes.clone(),
        }
    }
}

/// A subscriber that writes our crates' logs (debug and up) into `buffer`.
///
/// A static target filter rather than an `EnvFilter`: the trace's levels are
/// fixed, and an `EnvFilter` costs a lookup on every span that turmoil enters
/// each step (a tenth of a run's time, measured).
pub fn subscriber(buffer: TraceBuffer) -> impl Subscriber + Send + Sync {
    let targets = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("turmoil", LevelFilter::INFO)
        .with_target("chat_core", LevelFilter::DEBUG)
        .with_target("chat_net", LevelFilter::DEBUG)
        .with_target("sim_tests", LevelFilter::DEBUG);
    tracing_subscriber::fmt()
        .with_timer(SimTime)
        .with_ansi(false)
        .with_target(false)
        .with_writer(buffer)
        .finish()
        .with(targets)
}
