//! The run's trace: every log line of the server and clients, stamped with
//! simulated time (never the wall clock), captured in memory.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

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
pub fn subscriber(buffer: TraceBuffer) -> impl Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(
            "warn,turmoil=info,chat_core=debug,chat_net=debug,sim_tests=debug",
        ))
        .with_timer(SimTime)
        .with_ansi(false)
        .with_target(false)
        .with_writer(buffer)
        .finish()
}
