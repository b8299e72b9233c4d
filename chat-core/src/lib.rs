//! The chat: wire protocol, state machines, and the async drivers that run
//! them over any [`chat_net::Network`].
//!
//! Layers, lowest first (nothing imports anything above it):
//! - [`protocol`]: frames, their JSON encoding, framing limits, validation.
//! - [`room`] (server side) and [`session`] (client side): pure state
//!   machines. Events with the current time go in, actions come out; they do
//!   no I/O, read no clock and use only the randomness they are handed.
//! - [`reader`] and [`outbox`]: reading frames from a stream, and the bounded
//!   per-connection queue of encoded frames with the loop that writes it.
//! - [`server`] and [`client`]: the async drivers that feed the state machines
//!   from the network and carry out their actions.

pub mod client;
pub mod outbox;
pub mod protocol;
pub mod reader;
pub mod room;
pub mod server;
pub mod session;
