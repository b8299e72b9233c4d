//! Deliberate bugs, compiled in only with `--cfg chat_planted`, to prove that
//! the simulation's oracle catches what each mechanism prevents. One bug at a
//! time is switched on, for the whole process (`just sim-planted`).

use std::sync::atomic::{AtomicU8, Ordering};

/// A deliberate bug, each disabling one mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Bug {
    /// A taken nickname is not refused.
    NickUniqueness = 1,
    /// A departure is announced when the connection drops and again when the
    /// session ends.
    DoubleLeave,
    /// The per-connection outbound queue ignores its byte limit.
    UnboundedQueue,
    /// Retried messages are delivered again.
    NoDedup,
    /// A resume replays from one event too late.
    ReplayOffByOne,
    /// A resume is refused while the session's older connection is attached,
    /// instead of evicting that connection.
    NoEviction,
    /// A nickname change is announced in every room of the member but one.
    RenameSkipsRoom,
    /// A private message is also sent to a third member.
    PrivateToThird,
    /// A resume attaches by nickname, without checking the token.
    ResumeWithoutToken,
    /// A connection that was refused (or said `quit`) still has its later
    /// frames handled.
    FramesAfterRefusal,
    /// Connections that never finish their hello are never dropped for it.
    NoHandshakeDeadline,
    /// Acks and broadcasts go out before their records are durable.
    AckBeforeDurable,
    /// A new segment of the write-ahead log is synced but its directory
    /// entry never is, so a crash can take the whole segment away.
    SegmentDirNotSynced,
    /// Recovery believes a torn or corrupt record instead of cutting the
    /// log's tail there.
    TrustTornTail,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 14] = [
        Bug::NickUniqueness,
        Bug::DoubleLeave,
        Bug::UnboundedQueue,
        Bug::NoDedup,
        Bug::ReplayOffByOne,
        Bug::NoEviction,
        Bug::RenameSkipsRoom,
        Bug::PrivateToThird,
        Bug::ResumeWithoutToken,
        Bug::FramesAfterRefusal,
        Bug::NoHandshakeDeadline,
        Bug::AckBeforeDurable,
        Bug::SegmentDirNotSynced,
        Bug::TrustTornTail,
    ];

    /// The bug's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::NickUniqueness => "nick-uniqueness",
            Bug::DoubleLeave => "double-leave",
            Bug::UnboundedQueue => "unbounded-queue",
            Bug::NoDedup => "no-dedup",
            Bug::ReplayOffByOne => "replay-off-by-one",
            Bug::NoEviction => "no-eviction",
            Bug::RenameSkipsRoom => "rename-skips-room",
            Bug::PrivateToThird => "private-to-third",
            Bug::ResumeWithoutToken => "resume-without-token",
            Bug::FramesAfterRefusal => "frames-after-refusal",
            Bug::NoHandshakeDeadline => "no-handshake-deadline",
            Bug::AckBeforeDurable => "ack-before-durable",
            Bug::SegmentDirNotSynced => "segment-dir-not-synced",
            Bug::TrustTornTail => "trust-torn-tail",
        }
    }
}

static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// Switches `bug` on (or every bug off, with `None`) for this process.
pub fn activate(bug: Option<Bug>) {
    ACTIVE.store(bug.map_or(0, |bug| bug as u8), Ordering::SeqCst);
}

/// Whether `bug` is on.
pub fn is_active(bug: Bug) -> bool {
    ACTIVE.load(Ordering::Relaxed) == bug as u8
}
