//! The `meta` file: the directory's format and its incarnation id.
//!
//! Written once, when the directory is first used, and before anything else:
//! to `meta.tmp`, synced, renamed to `meta`, and the directory synced, so
//! that `meta` appears whole or not at all. The incarnation id it holds is
//! kept for as long as the directory lives; it also seeds every segment's
//! salt, so a segment from another directory is recognized.
//!
//! Layout (integers little-endian): magic `CHATMETA` (8 bytes), format
//! version (4), incarnation length (2), the incarnation (UTF-8), CRC-32 of
//! everything before it (4).

use std::path::Path;

use bytes::Bytes;
use chat_net::{Storage, StorageFile};

use super::segment::FORMAT_VERSION;
use super::{READ_ATTEMPTS_MAX, StoreError};

const META_MAGIC: [u8; 8] = *b"CHATMETA";

/// The meta file's name in the data directory.
pub const META_NAME: &str = "meta";

/// Where the meta file is written before it is renamed into place.
pub const META_TEMPORARY_NAME: &str = "meta.tmp";

/// Longest incarnation id, in bytes.
pub const INCARNATION_BYTES_MAX: usize = 256;

const META_BYTES_MAX: u64 = (8 + 4 + 2 + INCARNATION_BYTES_MAX + 4) as u64;

/// The bytes of a meta file holding `incarnation`.
pub fn encode_meta(incarnation: &str) -> Vec<u8> {
    let length = u16::try_from(incarnation.len()).expect("incarnations were checked");
    let mut bytes = Vec::with_capacity(META_BYTES_MAX as usize);
    bytes.extend_from_slice(&META_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(incarnation.as_bytes());
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Why a meta file is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaProblem {
    /// Written by a newer format version.
    NewerVersion(u32),
    /// Damaged: what is wrong with it.
    Damaged(&'static str),
}

/// The incarnation in a meta file.
pub fn decode_meta(bytes: &[u8]) -> Result<String, MetaProblem> {
    if bytes.len() < 14 || bytes[0..8] != META_MAGIC {
        return Err(MetaProblem::Damaged(
            "it does not begin with the meta magic",
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("a 4-byte slice"));
    if version > FORMAT_VERSION {
        return Err(MetaProblem::NewerVersion(version));
    }
    let length = usize::from(u16::from_le_bytes(
        bytes[12..14].try_into().expect("2 bytes"),
    ));
    if length > INCARNATION_BYTES_MAX || bytes.len() != 14 + length + 4 {
        return Err(MetaProblem::Damaged("its length is wrong"));
    }
    let (body, checksum) = bytes.split_at(14 + length);
    if u32::from_le_bytes(checksum.try_into().expect("a 4-byte slice")) != crc32fast::hash(body) {
        return Err(MetaProblem::Damaged("its checksum does not match"));
    }
    if version != FORMAT_VERSION {
        return Err(MetaProblem::Damaged("its format version is unknown"));
    }
    let incarnation = std::str::from_utf8(&body[14..])
        .map_err(|_| MetaProblem::Damaged("its incarnation is not UTF-8"))?;
    Ok(incarnation.to_owned())
}

/// Reads the meta file, re-reading before calling it damaged or unreadable:
/// a read can fail once, or return a flipped byte once (turmoil's
/// `io_error_probability` and `corruption_probability`), and the next not.
/// Returns the incarnation and how many reads were repeated.
async fn read_meta<S: Storage>(storage: &S, path: &Path) -> Result<(String, u64), StoreError> {
    let mut problem = None;
    let mut read_error = None;
    for attempt in 0..READ_ATTEMPTS_MAX {
        match storage.read(path, META_BYTES_MAX).await {
            Ok(bytes) => match decode_meta(&bytes) {
                Ok(incarnation) => return Ok((incarnation, attempt as u64)),
                Err(found) => problem = Some(found),
            },
            Err(chat_net::StorageError::TooLarge { .. }) => {
                problem = Some(MetaProblem::Damaged("it is too large"));
                break;
            }
            Err(error) => read_error = Some(error),
        }
    }
    let problem = match (problem, read_error) {
        (Some(problem), _) => problem,
        (None, Some(error)) => return Err(error.into()),
        (None, None) => unreachable!("at least one read was attempted"),
    };
    Err(match problem {
        MetaProblem::NewerVersion(found) => StoreError::NewerFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        },
        MetaProblem::Damaged(reason) => StoreError::MetaDamaged {
            path: path.to_path_buf(),
            reason,
        },
    })
}

/// Writes a new meta file for `incarnation`, durably, and atomically: a
/// crash leaves either no `meta` or a whole one.
async fn create_meta<S: Storage>(
    storage: &S,
    dir: &Path,
    incarnation: &str,
) -> Result<(), StoreError> {
    let (temporary, path) = (dir.join(META_TEMPORARY_NAME), dir.join(META_NAME));
    let mut file = storage.create_new(&temporary).await?;
    file.append(Bytes::from(encode_meta(incarnation))).await?;
    file.sync_data().await?;
    storage.rename(&temporary, &path).await?;
    storage.sync_dir(dir).await?;
    Ok(())
}

/// The directory's incarnation: read from `meta`, or, in a directory that
/// holds no log yet, created with `new_incarnation` and written; and how many
/// reads of `meta` were repeated. `names` is the directory's listing; a
/// leftover `meta.tmp` is removed.
pub async fn load_or_create<S: Storage>(
    storage: &S,
    dir: &Path,
    names: &[String],
    holds_segments: bool,
    new_incarnation: impl FnOnce() -> String,
) -> Result<(String, u64), StoreError> {
    if names.iter().any(|name| name == META_TEMPORARY_NAME) {
        storage.remove_file(&dir.join(META_TEMPORARY_NAME)).await?;
    }
    let path = dir.join(META_NAME);
    if names.iter().any(|name| name == META_NAME) {
        let loaded = read_meta(storage, &path).await?;
        // The rename that put it in place may not be durable yet (a restart
        // without a crash keeps pending operations visible).
        storage.sync_dir(dir).await?;
        return Ok(loaded);
    }
    if holds_segments {
        return Err(StoreError::MetaMissing { path });
    }
    let incarnation = new_incarnation();
    if incarnation.is_empty() || incarnation.len() > INCARNATION_BYTES_MAX {
        return Err(StoreError::InvalidConfig(format!(
            "an incarnation id must have 1 to {INCARNATION_BYTES_MAX} bytes, not {}",
            incarnation.len()
        )));
    }
    create_meta(storage, dir, &incarnation).await?;
    Ok((incarnation, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let bytes = encode_meta("incarnation-7");
        assert_eq!(decode_meta(&bytes), Ok("incarnation-7".to_owned()));
    }

    #[test]
    fn every_truncation_and_flip_is_refused() {
        let bytes = encode_meta("incarnation-7");
        for cut in 0..bytes.len() {
            assert!(decode_meta(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode_meta(&damaged).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn a_newer_version_is_recognized_whatever_follows() {
        let mut bytes = encode_meta("x");
        bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
        bytes.truncate(14);
        assert_eq!(decode_meta(&bytes), Err(MetaProblem::NewerVersion(9)));
    }
}
