//! The real file system, through `std::fs` on tokio's blocking threads.
//!
//! Directory syncs open the directory and `fsync` it (Linux allows that);
//! data syncs are `fdatasync`; the lock is an advisory `flock` on the
//! directory itself (`File::try_lock`), which the kernel releases when the
//! process dies, so a crashed server never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{Storage, StorageError, StorageFile, StorageOperation, parent_of};

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioStorage;

/// A file opened by [`TokioStorage`].
#[derive(Debug)]
pub struct TokioFile {
    file: Arc<File>,
    path: PathBuf,
    size: u64,
}

/// Holds a directory's `flock` until dropped.
#[derive(Debug)]
pub struct TokioLock {
    _directory: File,
}

/// Runs blocking file-system work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(io::Error::other("the runtime is shutting down")),
    }
}

fn sync_dir_now(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `create_dir_all`, then a sync of the parent of each directory it created,
/// top down, so that every new name is durable.
fn create_dir_all_durably(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !ancestor.exists())
        .collect();
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        sync_dir_now(parent_of(created))?;
    }
    Ok(())
}

fn read_bounded(path: &Path, bytes_max: u64) -> Result<Vec<u8>, StorageError> {
    let read_error = |source| StorageError::io(StorageOperation::Read, path, source);
    let file = File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > bytes_max {
        return Err(StorageError::TooLarge {
            path: path.to_path_buf(),
            size,
            bytes_max,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte past the limit tells a file that grew since `metadata`.
    file.take(bytes_max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > bytes_max {
        return Err(StorageError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            bytes_max,
        });
    }
    Ok(bytes)
}

fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn open_file(path: PathBuf, options: OpenOptions) -> io::Result<TokioFile> {
    let file = options.open(&path)?;
    let size = file.metadata()?.len();
    Ok(TokioFile {
        file: Arc::new(file),
        path,
        size,
    })
}

impl Storage for TokioStorage {
    type File = TokioFile;
    type Lock = TokioLock;

    async fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        let owned = dir.to_path_buf();
        blocking(move || create_dir_all_durably(&owned))
            .await
            .map_err(|source| StorageError::io(StorageOperation::CreateDirectory, dir, source))
    }

    async fn lock(&self, dir: &Path) -> Result<TokioLock, StorageError> {
        let owned = dir.to_path_buf();
        let locked = blocking(move || {
            let directory = File::open(&owned)?;
            match directory.try_lock() {
                Ok(()) => Ok(Some(TokioLock {
                    _directory: directory,
                })),
                Err(fs::TryLockError::WouldBlock) => Ok(None),
                Err(fs::TryLockError::Error(error)) => Err(error),
            }
        })
        .await
        .map_err(|source| StorageError::io(StorageOperation::Lock, dir, source))?;
        locked.ok_or_else(|| StorageError::Locked {
            path: dir.to_path_buf(),
        })
    }

    async fn create_new(&self, path: &Path) -> Result<TokioFile, StorageError> {
        let owned = path.to_path_buf();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        blocking(move || open_file(owned, options))
            .await
            .map_err(|source| StorageError::io(StorageOperation::Create, path, source))
    }

    async fn open_append(&self, path: &Path) -> Result<TokioFile, StorageError> {
        let owned = path.to_path_buf();
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        blocking(move || open_file(owned, options))
            .await
            .map_err(|source| StorageError::io(StorageOperation::Open, path, source))
    }

    async fn read(&self, path: &Path, bytes_max: u64) -> Result<Vec<u8>, StorageError> {
        let owned = path.to_path_buf();
        match tokio::task::spawn_blocking(move || read_bounded(&owned, bytes_max)).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(StorageError::io(
                StorageOperation::Read,
                path,
                io::Error::other("the runtime is shutting down"),
            )),
        }
    }

    async fn list_dir(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        let owned = dir.to_path_buf();
        blocking(move || list_names(&owned))
            .await
            .map_err(|source| StorageError::io(StorageOperation::List, dir, source))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let (from_owned, to_owned) = (from.to_path_buf(), to.to_path_buf());
        blocking(move || fs::rename(from_owned, to_owned))
            .await
            .map_err(|source| StorageError::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                source,
            })
    }

    async fn remove_file(&self, path: &Path) -> Result<(), StorageError> {
        let owned = path.to_path_buf();
        blocking(move || fs::remove_file(owned))
            .await
            .map_err(|source| StorageError::io(StorageOperation::Remove, path, source))
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        let owned = dir.to_path_buf();
        blocking(move || sync_dir_now(&owned))
            .await
            .map_err(|source| StorageError::io(StorageOperation::SyncDirectory, dir, source))
    }
}

impl StorageFile for TokioFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn append(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        let (file, offset, written) = (Arc::clone(&self.file), self.size, bytes.len() as u64);
        blocking(move || file.write_all_at(&bytes, offset))
            .await
            .map_err(|source| StorageError::io(StorageOperation::Append, &self.path, source))?;
        self.size += written;
        Ok(())
    }

    async fn sync_data(&mut self) -> Result<(), StorageError> {
        let file = Arc::clone(&self.file);
        blocking(move || file.sync_data())
            .await
            .map_err(|source| StorageError::io(StorageOperation::Sync, &self.path, source))
    }

    async fn truncate(&mut self, size: u64) -> Result<(), StorageError> {
        assert!(size <= self.size, "truncate only shortens a file");
        let file = Arc::clone(&self.file);
        blocking(move || file.set_len(size))
            .await
            .map_err(|source| StorageError::io(StorageOperation::Truncate, &self.path, source))?;
        self.size = size;
        Ok(())
    }
}
