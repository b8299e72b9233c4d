//! The chat: wire protocol, state machines, and the async drivers that run
//! them over any [`chat_net::Network`].
//!
//! Layers, lowest first (nothing imports anything above it):
//! - [`protocol`]: frames, their JSON encoding, framing limits, validation.
//! - [`room`] (server side) and [`session`] (client side): pure state
//!   machines. Events with the current time go in, actions come out; they do
//!   no I/O, read no clock and use only the randomness they are handed.
//! - [`command`]: what the user's typed lines mean (`/join`, `/msg`, ...).
//! - [`reader`] and [`outbox`]: reading frames from a stream, and the bounded
//!   per-connection queue of encoded frames with the loop that writes it.
//! - `fanout` (private): gathers a room's consecutive broadcasts so that each
//!   recipient gets them in one push.
//! - [`server`] and [`client`]: the async drivers that feed the state machines
//!   from the network and carry out their actions.
//! - [`report`]: what a real process saw (lines shown, events released), as
//!   JSON lines, for tests that judge the real binaries with the
//!   simulation's oracle.
//! - [`store`]: the write-ahead log the server keeps its durable state in,
//!   over any [`chat_net::Storage`]. It knows nothing of rooms: it stores
//!   opaque records.

// `planted!(Bug)` is true only when that deliberate bug is switched on in a
// build with `--cfg chat_planted` (`just sim-planted`); otherwise it is the
// constant `false` and the buggy paths vanish.
#[cfg(chat_planted)]
macro_rules! planted {
    ($bug:ident) => {
        $crate::planted::is_active($crate::planted::Bug::$bug)
    };
}
#[cfg(not(chat_planted))]
macro_rules! planted {
    ($bug:ident) => {
        false
    };
}

pub mod buggify;
pub mod client;
pub mod command;
mod fanout;
pub mod outbox;
#[cfg(chat_planted)]
pub mod planted;
pub mod protocol;
pub mod reader;
pub mod report;
pub mod room;
pub mod server;
pub mod session;
pub mod store;
