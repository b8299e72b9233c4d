//! The files the chat stores its durable state in, as a trait.
//!
//! chat-core's write-ahead log is generic over [`Storage`], so the same log
//! runs on the real file system ([`TokioStorage`]) and, behind the `sim`
//! feature, on turmoil's simulated file system (`SimStorage`), where a crash
//! loses every write that was not synced and tears the ones in flight.
//!
//! The trait offers exactly the verbs a log needs, each with the durability
//! rule that real file systems and turmoil share:
//! - data written to a file is durable only after [`StorageFile::sync_data`];
//! - a file's *name* (creating, renaming or removing it) is durable only after
//!   [`Storage::sync_dir`] on its directory. This is its own verb because
//!   turmoil cannot open a directory as a file (the Linux idiom
//!   `File::open(dir)?.sync_all()` fails there with `NotFound`).
//!
//! A failed sync is never retried by callers: after a failed `fsync` the
//! kernel may have dropped the dirty pages, so a later successful one proves
//! nothing. [`FaultyStorage`] injects such failures, which turmoil cannot (its
//! `sync_all` never fails).
//!
//! This module knows nothing about logs or chat.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

mod disk;
mod faulty;
#[cfg(feature = "sim")]
mod sim;

pub use disk::{TokioFile, TokioLock, TokioStorage};
pub use faulty::{FaultyFile, FaultyStorage};
#[cfg(feature = "sim")]
pub use sim::{SimFile, SimLock, SimStorage};

#[cfg(test)]
mod tests;

/// What a storage call was doing when it failed; shown in its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageOperation {
    /// Creating a directory and its missing parents.
    CreateDirectory,
    /// Taking the exclusive lock of a directory.
    Lock,
    /// Creating a new file.
    Create,
    /// Opening an existing file.
    Open,
    /// Appending to a file.
    Append,
    /// Syncing a file's data to disk.
    Sync,
    /// Syncing a directory's entries to disk.
    SyncDirectory,
    /// Cutting a file to a shorter length.
    Truncate,
    /// Reading a whole file.
    Read,
    /// Listing a directory.
    List,
    /// Removing a file.
    Remove,
}

impl fmt::Display for StorageOperation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            StorageOperation::CreateDirectory => "create the directory",
            StorageOperation::Lock => "lock",
            StorageOperation::Create => "create",
            StorageOperation::Open => "open",
            StorageOperation::Append => "append to",
            StorageOperation::Sync => "sync",
            StorageOperation::SyncDirectory => "sync the directory",
            StorageOperation::Truncate => "truncate",
            StorageOperation::Read => "read",
            StorageOperation::List => "list the directory",
            StorageOperation::Remove => "remove",
        })
    }
}

/// Errors of the storage seam: each names the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system (or the simulator) refused an operation.
    #[error("cannot {operation} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        operation: StorageOperation,
        /// The file or directory it was done to.
        path: PathBuf,
        /// What the operating system (or simulator) said.
        source: io::Error,
    },
    /// A rename failed.
    #[error("cannot rename {} to {}: {source}", .from.display(), .to.display())]
    Rename {
        /// The file's old name.
        from: PathBuf,
        /// The name it was to get.
        to: PathBuf,
        /// What the operating system (or simulator) said.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error(
        "{} is in use by another process (its lock is held): stop the other server, or give this one another directory",
        .path.display()
    )]
    Locked {
        /// The locked directory.
        path: PathBuf,
    },
    /// A file is larger than the caller allows itself to read.
    #[error("{} holds {size} bytes, more than the {bytes_max} bytes it may hold", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The most the reader accepts.
        bytes_max: u64,
    },
}

impl StorageError {
    /// An [`StorageError::Io`] error.
    pub fn io(operation: StorageOperation, path: &Path, source: io::Error) -> Self {
        StorageError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The kind of the underlying I/O error, if there is one (for example
    /// `NotFound` when reading a file that does not exist).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StorageError::Io { source, .. } | StorageError::Rename { source, .. } => {
                Some(source.kind())
            }
            StorageError::Locked { .. } | StorageError::TooLarge { .. } => None,
        }
    }
}

/// A file system holding a log: files in directories, written by appending.
///
/// Paths are absolute in simulation (turmoil has no working directory).
pub trait Storage: Clone + Send + Sync + 'static {
    /// An open file, for appending.
    type File: StorageFile;
    /// Holds a directory's exclusive lock until dropped.
    type Lock: Send + Sync + 'static;

    /// Creates `dir` and its missing parents, durably: each parent of a
    /// directory created here is synced.
    fn create_dir_all(&self, dir: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Takes the exclusive lock of `dir`, or fails at once with
    /// [`StorageError::Locked`] when another holder has it. The lock goes when
    /// the returned guard is dropped, or when the process dies.
    fn lock(&self, dir: &Path) -> impl Future<Output = Result<Self::Lock, StorageError>> + Send;

    /// Creates a new, empty file, failing if `path` exists. Its name is
    /// durable only after [`Storage::sync_dir`] on its directory.
    fn create_new(
        &self,
        path: &Path,
    ) -> impl Future<Output = Result<Self::File, StorageError>> + Send;

    /// Opens an existing file for appending (and truncating).
    fn open_append(
        &self,
        path: &Path,
    ) -> impl Future<Output = Result<Self::File, StorageError>> + Send;

    /// Reads the whole file, refusing one larger than `bytes_max` with
    /// [`StorageError::TooLarge`] before reading it.
    fn read(
        &self,
        path: &Path,
        bytes_max: u64,
    ) -> impl Future<Output = Result<Vec<u8>, StorageError>> + Send;

    /// The names of the entries of `dir`, sorted. Names that are not UTF-8
    /// are left out (nothing this program writes has one).
    fn list_dir(
        &self,
        dir: &Path,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Renames a file, replacing `to` if it exists. Durable only after
    /// [`Storage::sync_dir`] on the directories involved.
    fn rename(
        &self,
        from: &Path,
        to: &Path,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Removes a file. Durable only after [`Storage::sync_dir`].
    fn remove_file(&self, path: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Makes the entries of `dir` (files created, renamed or removed in it)
    /// durable.
    fn sync_dir(&self, dir: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// A file opened for appending. The handle knows the file's size and
/// appends there.
pub trait StorageFile: Send + Sync + 'static {
    /// The file's path.
    fn path(&self) -> &Path;

    /// The file's size in bytes, as far as this handle knows: its size when
    /// opened, plus what it appended, minus what it truncated. After a failed
    /// append the size on disk is unknown.
    fn size(&self) -> u64;

    /// Writes all of `bytes` at the end of the file. Durable only after
    /// [`StorageFile::sync_data`].
    fn append(&mut self, bytes: Bytes) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Makes the file's data and size durable (`fdatasync`).
    fn sync_data(&mut self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Cuts the file to `size` bytes (at most its current size). Durable only
    /// after [`StorageFile::sync_data`].
    fn truncate(&mut self, size: u64) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// The directory whose entry holds `path`: `path`'s parent, or the current
/// directory for a bare file name.
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
