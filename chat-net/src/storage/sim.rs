//! turmoil's simulated file system (feature `sim`, turmoil's `unstable-fs`).
//!
//! Each simulated host has its own file system, which survives `sim.crash`
//! except for what was not synced: unsynced writes are lost or torn (with
//! `Builder::fs().block_size(..)`), and files whose directory was not synced
//! disappear. Every call must run inside a simulated host's task (the shim
//! panics outside a simulation); nothing here uses `spawn_blocking`.
//!
//! turmoil has no file locks. [`SimStorage`] keeps a table of locked
//! directories per instance (shared by its clones): a second lock of the same
//! directory through the same storage is refused, as `flock` would refuse it,
//! and a crash releases it, because crashing drops the host's tasks and with
//! them the guard. Use one `SimStorage` per simulated host: separate instances
//! do not see each other's locks (and hosts do not share file systems anyway).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use turmoil::fs::shim::std::fs as std_fs;
use turmoil::fs::shim::tokio::fs::{self, File, OpenOptions};

use super::{Storage, StorageError, StorageFile, StorageOperation, parent_of};

/// The simulated file system of the host the code runs on.
#[derive(Clone, Debug, Default)]
pub struct SimStorage {
    locked: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl SimStorage {
    /// The current host's file system, with an empty lock table.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A file opened by [`SimStorage`].
#[derive(Debug)]
pub struct SimFile {
    file: File,
    path: PathBuf,
    size: u64,
}

/// Holds a directory's entry in [`SimStorage`]'s lock table until dropped.
#[derive(Debug)]
pub struct SimLock {
    locked: Arc<Mutex<BTreeSet<PathBuf>>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.locked
            .lock()
            .expect("the lock table's mutex is never held across a panic")
            .remove(&self.path);
    }
}

async fn open_file(path: &Path, options: &OpenOptions) -> io::Result<SimFile> {
    let file = options.open(path).await?;
    let size = file.metadata().await?.len();
    Ok(SimFile {
        file,
        path: path.to_path_buf(),
        size,
    })
}

async fn read_bounded(path: &Path, bytes_max: u64) -> Result<Vec<u8>, StorageError> {
    let read_error = |source| StorageError::io(StorageOperation::Read, path, source);
    let size = fs::metadata(path).await.map_err(read_error)?.len();
    if size > bytes_max {
        return Err(StorageError::TooLarge {
            path: path.to_path_buf(),
            size,
            bytes_max,
        });
    }
    let bytes = fs::read(path).await.map_err(read_error)?;
    if bytes.len() as u64 > bytes_max {
        return Err(StorageError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            bytes_max,
        });
    }
    Ok(bytes)
}

async fn create_dir_all_durably(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !std_fs::exists(ancestor))
        .collect();
    fs::create_dir_all(dir).await?;
    for created in missing.iter().rev() {
        fs::sync_dir(parent_of(created)).await?;
    }
    Ok(())
}

impl Storage for SimStorage {
    type File = SimFile;
    type Lock = SimLock;

    async fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        create_dir_all_durably(dir)
            .await
            .map_err(|source| StorageError::io(StorageOperation::CreateDirectory, dir, source))
    }

    async fn lock(&self, dir: &Path) -> Result<SimLock, StorageError> {
        if !std_fs::exists(dir) {
            let source = io::Error::new(io::ErrorKind::NotFound, "directory not found");
            return Err(StorageError::io(StorageOperation::Lock, dir, source));
        }
        let newly_locked = self
            .locked
            .lock()
            .expect("the lock table's mutex is never held across a panic")
            .insert(dir.to_path_buf());
        if !newly_locked {
            return Err(StorageError::Locked {
                path: dir.to_path_buf(),
            });
        }
        Ok(SimLock {
            locked: Arc::clone(&self.locked),
            path: dir.to_path_buf(),
        })
    }

    async fn create_new(&self, path: &Path) -> Result<SimFile, StorageError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        open_file(path, &options)
            .await
            .map_err(|source| StorageError::io(StorageOperation::Create, path, source))
    }

    async fn open_append(&self, path: &Path) -> Result<SimFile, StorageError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        open_file(path, &options)
            .await
            .map_err(|source| StorageError::io(StorageOperation::Open, path, source))
    }

    async fn read(&self, path: &Path, bytes_max: u64) -> Result<Vec<u8>, StorageError> {
        read_bounded(path, bytes_max).await
    }

    async fn list_dir(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        let list_error = |source| StorageError::io(StorageOperation::List, dir, source);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).await.map_err(list_error)? {
            if let Ok(name) = entry.map_err(list_error)?.file_name().into_string() {
                names.push(name);
            }
        }
        // turmoil lists a directory in hash order, which differs per run.
        names.sort();
        Ok(names)
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        fs::rename(from, to)
            .await
            .map_err(|source| StorageError::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                source,
            })
    }

    async fn remove_file(&self, path: &Path) -> Result<(), StorageError> {
        fs::remove_file(path)
            .await
            .map_err(|source| StorageError::io(StorageOperation::Remove, path, source))
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        fs::sync_dir(dir)
            .await
            .map_err(|source| StorageError::io(StorageOperation::SyncDirectory, dir, source))
    }
}

impl StorageFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn append(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        let append_error = |source| StorageError::io(StorageOperation::Append, &self.path, source);
        let mut written = 0;
        // Each pass writes at least one byte or fails, so it ends.
        while written < bytes.len() {
            let offset = self.size + written as u64;
            let count = self
                .file
                .write_at(&bytes[written..], offset)
                .await
                .map_err(append_error)?;
            if count == 0 {
                return Err(append_error(io::ErrorKind::WriteZero.into()));
            }
            written += count;
        }
        self.size += written as u64;
        Ok(())
    }

    async fn sync_data(&mut self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .await
            .map_err(|source| StorageError::io(StorageOperation::Sync, &self.path, source))
    }

    async fn truncate(&mut self, size: u64) -> Result<(), StorageError> {
        assert!(size <= self.size, "truncate only shortens a file");
        self.file
            .set_len(size)
            .await
            .map_err(|source| StorageError::io(StorageOperation::Truncate, &self.path, source))?;
        self.size = size;
        Ok(())
    }
}
