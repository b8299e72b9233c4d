//! The wire protocol: frames, their encoding, framing limits and the rules
//! for names and texts.
//!
//! Every frame is one JSON object on one line (newline-delimited JSON), with
//! a `type` field naming the frame: any language can speak it and `nc` can
//! debug it. PROTOCOL.md at the top of the repository describes each frame
//! with an example exchange; this module is the reference.
//!
//! - [`frames`]: what each side sends.
//! - [`codec`]: the decoder, which enforces [`FRAME_BYTES_MAX`] before it
//!   buffers more than that and checks UTF-8, and the encoder.
//! - [`names`]: nicknames, room names and texts; what a screen shows must
//!   not be forgeable, so the rules are strict.

pub mod codec;
pub mod frames;
pub mod names;

pub use codec::{FrameDecoder, FrameError, decode_line, encode};
pub use frames::{ClientFrame, ErrorCode, Resume, RoomCount, RoomStart, Seq, ServerFrame};
pub use names::{NameError, name_key, validate_nick, validate_room, validate_text};

/// The protocol version this code speaks. A hello with another version is
/// refused with [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest frame, newline included, that either side accepts.
pub const FRAME_BYTES_MAX: usize = 16 * 1024;

/// Largest message text in bytes (UTF-8). With control characters refused,
/// JSON escaping at most doubles it, so a message frame stays under
/// [`FRAME_BYTES_MAX`].
pub const TEXT_BYTES_MAX: usize = 4096;

/// Longest nickname, in characters.
pub const NICK_CHARS_MAX: usize = 32;

/// Longest room name, in characters.
pub const ROOM_CHARS_MAX: usize = 32;

/// Largest client message id. JSON numbers above 2^53 lose precision in
/// many languages, so ids stay below it; an id there also cannot block a
/// session by using up every id at once.
pub const MESSAGE_ID_MAX: u64 = (1 << 53) - 1;

/// The room the command-line client joins.
pub const DEFAULT_ROOM: &str = "lobby";
