//! The bytes of a segment file: its name, its header, and its framed records.
//!
//! Pure functions only (no I/O), so every way a segment can be torn or
//! damaged is tested on byte slices.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header (36 bytes)
//!   magic            8   "CHATWAL\n"
//!   format version   4   FORMAT_VERSION
//!   segment index    8   the number in the file's name
//!   salt             8   derived from the directory's incarnation and the index
//!   record bytes max 4   the largest payload this segment may hold
//!   header checksum  4   CRC-32 of the 32 bytes before it
//! frame (9 bytes + payload), repeated
//!   payload length   4
//!   kind             1   1 = snapshot (only as the first frame), 2 = record
//!   checksum         4   CRC-32 of salt, payload length, kind and payload
//!   payload
//! ```
//!
//! The magic and the version come first and never move, so that any later
//! format can still be recognized as newer. A frame's checksum covers the
//! salt, so that records of another segment (or another directory) never
//! validate here, and the length and kind, so that a zero-filled hole left
//! by a torn write never validates (nor does a flipped length).

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// The format this program writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Hard limit on a record's payload, whatever a segment's header says.
pub const RECORD_BYTES_LIMIT: u32 = 256 * 1024 * 1024;

/// Hard limit on a segment file's size, whatever the configuration says.
pub const SEGMENT_BYTES_LIMIT: u64 = 1024 * 1024 * 1024;

const SEGMENT_MAGIC: [u8; 8] = *b"CHATWAL\n";

/// Bytes in a segment's header.
pub const SEGMENT_HEADER_BYTES: usize = 36;

/// Bytes in a frame before its payload.
pub const FRAME_HEADER_BYTES: usize = 9;

const SEGMENT_NAME_DIGITS: usize = 20;
const SEGMENT_NAME_SUFFIX: &str = ".log";

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The state of everything before this segment; only ever first.
    Snapshot = 1,
    /// One record appended after the snapshot.
    Record = 2,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Snapshot),
            2 => Some(RecordKind::Record),
            _ => None,
        }
    }
}

/// The file name of segment `index`: zero-padded, so names sort as numbers.
pub fn segment_name(index: u64) -> String {
    format!(
        "{index:0width$}{SEGMENT_NAME_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

/// The index in a segment's file name, or `None` for any other name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_NAME_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let index: u64 = digits.parse().ok()?;
    (index >= 1).then_some(index)
}

/// The salt of segment `index` in the directory of `incarnation`. Derived,
/// not drawn, so that the log needs no randomness and a segment copied from
/// another directory (another incarnation) or renamed is recognized.
pub fn segment_salt(incarnation: &str, index: u64) -> u64 {
    let half = |seed: u8| {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[seed]);
        hasher.update(incarnation.as_bytes());
        hasher.update(&index.to_le_bytes());
        u64::from(hasher.finalize())
    };
    (half(1) << 32) | half(2)
}

/// A segment's header, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The number in the file's name.
    pub index: u64,
    /// Mixed into every frame's checksum.
    pub salt: u64,
    /// The largest payload a frame of this segment may hold.
    pub record_bytes_max: u32,
}

/// Why a segment's header is not one this program accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The file is shorter than a header.
    Short,
    /// The header does not begin with the segment magic.
    Magic,
    /// Written by a newer format version.
    NewerVersion(u32),
    /// The header's checksum does not match.
    Checksum,
    /// An unknown older version (there is none before 1).
    UnknownVersion(u32),
    /// The header names another segment index than the file name.
    Index(u64),
    /// The salt belongs to another directory.
    Salt,
    /// The header's record limit is over [`RECORD_BYTES_LIMIT`].
    RecordLimit(u32),
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::Short => write!(formatter, "shorter than a segment header"),
            HeaderProblem::Magic => write!(formatter, "not a segment file (wrong magic)"),
            HeaderProblem::NewerVersion(found) => write!(formatter, "format version {found}"),
            HeaderProblem::Checksum => write!(formatter, "header checksum mismatch"),
            HeaderProblem::UnknownVersion(found) => write!(formatter, "unknown version {found}"),
            HeaderProblem::Index(found) => {
                write!(formatter, "its header says it is segment {found}")
            }
            HeaderProblem::Salt => write!(formatter, "it belongs to another data directory"),
            HeaderProblem::RecordLimit(found) => {
                write!(formatter, "record limit {found} over the hard limit")
            }
        }
    }
}

fn header_checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The 36 bytes of `header`.
pub fn encode_header(header: SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut bytes = [0; SEGMENT_HEADER_BYTES];
    bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&header.index.to_le_bytes());
    bytes[20..28].copy_from_slice(&header.salt.to_le_bytes());
    bytes[28..32].copy_from_slice(&header.record_bytes_max.to_le_bytes());
    let checksum = header_checksum(&bytes[0..32]);
    bytes[32..36].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let field = bytes[at..at + 4].try_into().expect("a 4-byte slice");
    u32::from_le_bytes(field)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let field = bytes[at..at + 8].try_into().expect("an 8-byte slice");
    u64::from_le_bytes(field)
}

/// The header at the start of `bytes`, checked against the file's name
/// (`expected_index`) and the directory (`expected_salt`).
pub fn decode_header(
    bytes: &[u8],
    expected_index: u64,
    expected_salt: u64,
) -> Result<SegmentHeader, HeaderProblem> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(HeaderProblem::Short);
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(HeaderProblem::Magic);
    }
    let version = le_u32(bytes, 8);
    if version > FORMAT_VERSION {
        return Err(HeaderProblem::NewerVersion(version));
    }
    if le_u32(bytes, 32) != header_checksum(&bytes[0..32]) {
        return Err(HeaderProblem::Checksum);
    }
    if version != FORMAT_VERSION {
        return Err(HeaderProblem::UnknownVersion(version));
    }
    let header = SegmentHeader {
        index: le_u64(bytes, 12),
        salt: le_u64(bytes, 20),
        record_bytes_max: le_u32(bytes, 28),
    };
    if header.index != expected_index {
        return Err(HeaderProblem::Index(header.index));
    }
    if header.salt != expected_salt {
        return Err(HeaderProblem::Salt);
    }
    if header.record_bytes_max > RECORD_BYTES_LIMIT {
        return Err(HeaderProblem::RecordLimit(header.record_bytes_max));
    }
    Ok(header)
}

fn frame_checksum(salt: u64, length: u32, kind: u8, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&salt.to_le_bytes());
    hasher.update(&length.to_le_bytes());
    hasher.update(&[kind]);
    hasher.update(payload);
    hasher.finalize()
}

/// Bytes a frame of `payload_bytes` takes in a segment.
pub fn frame_bytes(payload_bytes: usize) -> u64 {
    (FRAME_HEADER_BYTES + payload_bytes) as u64
}

/// Appends the frame of `payload` to `buffer`.
pub fn encode_frame(buffer: &mut BytesMut, salt: u64, kind: RecordKind, payload: &[u8]) {
    let length = u32::try_from(payload.len()).expect("payloads were checked against the limit");
    buffer.reserve(FRAME_HEADER_BYTES + payload.len());
    buffer.put_u32_le(length);
    buffer.put_u8(kind as u8);
    buffer.put_u32_le(frame_checksum(salt, length, kind as u8, payload));
    buffer.put_slice(payload);
}

/// Why the frames of a segment stop before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameDamage {
    /// The file ends inside a frame.
    Partial,
    /// A length over the segment's record limit.
    LengthOverLimit(u32),
    /// The frame's checksum does not match (a torn write, a hole, damage).
    Checksum,
    /// A kind byte this version does not know.
    UnknownKind(u8),
    /// A snapshot frame that is not the segment's first.
    MisplacedSnapshot,
}

impl fmt::Display for FrameDamage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameDamage::Partial => write!(formatter, "a partial record"),
            FrameDamage::LengthOverLimit(length) => {
                write!(
                    formatter,
                    "a record length of {length} bytes, over the limit"
                )
            }
            FrameDamage::Checksum => write!(formatter, "a record checksum mismatch"),
            FrameDamage::UnknownKind(kind) => write!(formatter, "an unknown record kind {kind}"),
            FrameDamage::MisplacedSnapshot => {
                write!(formatter, "a snapshot record after the first record")
            }
        }
    }
}

/// One good frame: its kind and where its payload lies in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Snapshot or record.
    pub kind: RecordKind,
    /// The payload's byte range in the file.
    pub payload: Range<usize>,
}

/// What a segment file holds, up to its first damage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedSegment {
    /// Its header.
    pub header: SegmentHeader,
    /// Its good frames, in order.
    pub frames: Vec<Frame>,
    /// The end of the last good frame: where a cut would go.
    pub valid_bytes: usize,
    /// Why parsing stopped before the end of the file, if it did.
    pub damage: Option<FrameDamage>,
}

impl ParsedSegment {
    /// Whether its first frame is a snapshot.
    pub fn begins_with_snapshot(&self) -> bool {
        self.frames
            .first()
            .is_some_and(|frame| frame.kind == RecordKind::Snapshot)
    }
}

/// The frame at `offset`, or why there is none.
fn decode_frame(bytes: &[u8], offset: usize, header: &SegmentHeader) -> Result<Frame, FrameDamage> {
    let rest = &bytes[offset..];
    if rest.len() < FRAME_HEADER_BYTES {
        return Err(FrameDamage::Partial);
    }
    let length = le_u32(rest, 0);
    if length > header.record_bytes_max {
        return Err(FrameDamage::LengthOverLimit(length));
    }
    let start = offset + FRAME_HEADER_BYTES;
    let end = start + length as usize;
    if planted!(TrustTornTail) {
        // Planted bug: whatever the length and kind say is believed, torn or not.
        let kind = RecordKind::from_byte(rest[4]).unwrap_or(RecordKind::Record);
        let end = end.min(bytes.len());
        return Ok(Frame {
            kind,
            payload: start..end,
        });
    }
    if end > bytes.len() {
        return Err(FrameDamage::Partial);
    }
    let kind_byte = rest[4];
    if le_u32(rest, 5) != frame_checksum(header.salt, length, kind_byte, &bytes[start..end]) {
        return Err(FrameDamage::Checksum);
    }
    let kind = RecordKind::from_byte(kind_byte).ok_or(FrameDamage::UnknownKind(kind_byte))?;
    Ok(Frame {
        kind,
        payload: start..end,
    })
}

/// Parses a whole segment file: its header, then frames until the end or the
/// first damage. Each pass of the loop consumes at least a frame header, so
/// it ends within `bytes.len() / FRAME_HEADER_BYTES` passes.
pub fn parse_segment(
    bytes: &[u8],
    expected_index: u64,
    expected_salt: u64,
) -> Result<ParsedSegment, HeaderProblem> {
    let header = decode_header(bytes, expected_index, expected_salt)?;
    let mut parsed = ParsedSegment {
        header,
        frames: Vec::new(),
        valid_bytes: SEGMENT_HEADER_BYTES,
        damage: None,
    };
    while parsed.valid_bytes < bytes.len() {
        match decode_frame(bytes, parsed.valid_bytes, &header) {
            Ok(frame) if frame.kind == RecordKind::Snapshot && !parsed.frames.is_empty() => {
                parsed.damage = Some(FrameDamage::MisplacedSnapshot);
                break;
            }
            Ok(frame) => {
                parsed.valid_bytes = frame.payload.end;
                parsed.frames.push(frame);
            }
            Err(damage) => {
                parsed.damage = Some(damage);
                break;
            }
        }
    }
    Ok(parsed)
}

/// The payloads of `frames`, as slices of `file` (no copy).
pub fn payloads<'a>(file: &'a Bytes, frames: &'a [Frame]) -> impl Iterator<Item = Bytes> + 'a {
    frames.iter().map(|frame| file.slice(frame.payload.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: u64 = 0x1234_5678_9abc_def0;

    fn header(index: u64) -> SegmentHeader {
        SegmentHeader {
            index,
            salt: SALT,
            record_bytes_max: 100,
        }
    }

    fn segment(records: &[(RecordKind, &[u8])]) -> Vec<u8> {
        let mut buffer = BytesMut::new();
        buffer.put_slice(&encode_header(header(7)));
        for (kind, payload) in records {
            encode_frame(&mut buffer, SALT, *kind, payload);
        }
        buffer.to_vec()
    }

    fn parse(bytes: &[u8]) -> ParsedSegment {
        parse_segment(bytes, 7, SALT).expect("the header is good")
    }

    #[test]
    fn names_sort_as_numbers_and_round_trip() {
        assert_eq!(segment_name(1), "00000000000000000001.log");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert!(segment_name(9) < segment_name(10));
        for other in [
            "meta",
            "00000000000000000000.log",
            "1.log",
            "0000000000000000000a.log",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn salts_differ_per_index_and_per_incarnation() {
        assert_ne!(segment_salt("a", 1), segment_salt("a", 2));
        assert_ne!(segment_salt("a", 1), segment_salt("b", 1));
        assert_eq!(segment_salt("a", 1), segment_salt("a", 1));
    }

    #[test]
    fn a_clean_segment_parses_to_its_end() {
        let bytes = segment(&[(RecordKind::Snapshot, b"state"), (RecordKind::Record, b"")]);
        let parsed = parse(&bytes);
        assert_eq!(parsed.damage, None);
        assert_eq!(parsed.valid_bytes, bytes.len());
        assert!(parsed.begins_with_snapshot());
        let file = Bytes::from(bytes);
        let all: Vec<Bytes> = payloads(&file, &parsed.frames).collect();
        assert_eq!(all, [&b"state"[..], b""]);
    }

    #[test]
    fn a_partial_record_stops_parsing_at_the_last_good_one() {
        let bytes = segment(&[(RecordKind::Record, b"one"), (RecordKind::Record, b"two")]);
        let good = SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES + 3;
        for cut in good + 1..bytes.len() {
            let parsed = parse(&bytes[..cut]);
            assert_eq!(parsed.damage, Some(FrameDamage::Partial), "cut at {cut}");
            assert_eq!(parsed.valid_bytes, good);
            assert_eq!(parsed.frames.len(), 1);
        }
    }

    #[test]
    fn a_zero_filled_hole_never_validates() {
        let mut bytes = segment(&[(RecordKind::Record, b"one")]);
        let good = bytes.len();
        bytes.resize(good + 64, 0);
        bytes
            .extend_from_slice(&segment(&[(RecordKind::Record, b"after")])[SEGMENT_HEADER_BYTES..]);
        let parsed = parse(&bytes);
        assert_eq!(parsed.damage, Some(FrameDamage::Checksum));
        assert_eq!(parsed.valid_bytes, good);
    }

    #[test]
    fn every_flipped_byte_of_a_frame_is_caught() {
        let bytes = segment(&[(RecordKind::Record, b"payload")]);
        for at in SEGMENT_HEADER_BYTES..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let parsed = parse(&damaged);
            assert!(parsed.damage.is_some(), "flip at {at} went unnoticed");
            assert!(parsed.frames.is_empty());
        }
    }

    #[test]
    fn a_length_over_the_limit_is_damage() {
        let mut bytes = segment(&[]);
        bytes.extend_from_slice(&101u32.to_le_bytes());
        bytes.resize(bytes.len() + 200, 1);
        assert_eq!(
            parse(&bytes).damage,
            Some(FrameDamage::LengthOverLimit(101))
        );
    }

    #[test]
    fn a_record_of_another_segment_does_not_validate() {
        let mut buffer = BytesMut::new();
        buffer.put_slice(&encode_header(header(7)));
        encode_frame(&mut buffer, SALT ^ 1, RecordKind::Record, b"stale");
        assert_eq!(parse(&buffer).damage, Some(FrameDamage::Checksum));
    }

    #[test]
    fn a_snapshot_after_the_first_record_is_damage() {
        let bytes = segment(&[(RecordKind::Record, b"one"), (RecordKind::Snapshot, b"two")]);
        let parsed = parse(&bytes);
        assert_eq!(parsed.damage, Some(FrameDamage::MisplacedSnapshot));
        assert_eq!(parsed.frames.len(), 1);
    }

    #[test]
    fn headers_are_checked_against_name_directory_and_version() {
        let bytes = encode_header(header(7));
        assert_eq!(decode_header(&bytes, 7, SALT), Ok(header(7)));
        assert_eq!(
            decode_header(&bytes[..35], 7, SALT),
            Err(HeaderProblem::Short)
        );
        assert_eq!(decode_header(&bytes, 8, SALT), Err(HeaderProblem::Index(7)));
        assert_eq!(decode_header(&bytes, 7, SALT + 1), Err(HeaderProblem::Salt));
        let mut newer = bytes;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        // The version is read before the checksum: a newer layout may differ.
        assert_eq!(
            decode_header(&newer, 7, SALT),
            Err(HeaderProblem::NewerVersion(2))
        );
        let mut damaged = bytes;
        damaged[20] ^= 1;
        assert_eq!(
            decode_header(&damaged, 7, SALT),
            Err(HeaderProblem::Checksum)
        );
        assert_eq!(decode_header(&[0; 36], 7, SALT), Err(HeaderProblem::Magic));
    }
}
