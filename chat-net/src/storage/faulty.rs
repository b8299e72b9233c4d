//! A [`Storage`] wrapper that fails on command, for testing what a caller
//! does when an append or a sync fails, or a read returns a flipped byte.
//!
//! turmoil can fail reads and writes at random but its syncs never fail, and
//! the real file system fails only when the disk does; yet a failed `fsync`
//! is the case a log must get right (it must stop, not retry). Tell a
//! [`FaultyStorage`] to fail the next append, data sync or directory sync,
//! or to flip a byte of what the next read returns; each fault is one-shot
//! and shared by every clone and every file opened through it. A failed
//! operation does nothing to the inner storage.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{Storage, StorageError, StorageFile, StorageOperation};

#[derive(Debug, Default)]
struct Faults {
    append: AtomicBool,
    sync: AtomicBool,
    sync_dir: AtomicBool,
    /// Every append fails as on a full disk, until cleared.
    full: AtomicBool,
    /// The file whose next read returns a flipped byte.
    read: Mutex<Option<PathBuf>>,
}

impl Faults {
    fn read_target(&self) -> std::sync::MutexGuard<'_, Option<PathBuf>> {
        self.read
            .lock()
            .expect("the fault table's mutex is never held across a panic")
    }
}

/// Whether the fault `armed` was armed, disarming it.
fn fires(armed: &AtomicBool) -> bool {
    armed.swap(false, Ordering::SeqCst)
}

fn injected(operation: StorageOperation, path: &Path) -> StorageError {
    StorageError::io(operation, path, io::Error::other("injected failure"))
}

/// `inner`, failing the operations it is told to fail.
#[derive(Clone, Debug)]
pub struct FaultyStorage<S> {
    inner: S,
    faults: Arc<Faults>,
}

/// A file opened through a [`FaultyStorage`].
#[derive(Debug)]
pub struct FaultyFile<F> {
    inner: F,
    faults: Arc<Faults>,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner`; nothing fails until told to.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            faults: Arc::default(),
        }
    }

    /// The next append to any file fails (and writes nothing).
    pub fn fail_next_append(&self) {
        self.faults.append.store(true, Ordering::SeqCst);
    }

    /// The next data sync of any file fails (and syncs nothing).
    pub fn fail_next_sync(&self) {
        self.faults.sync.store(true, Ordering::SeqCst);
    }

    /// The next directory sync fails (and syncs nothing).
    pub fn fail_next_sync_dir(&self) {
        self.faults.sync_dir.store(true, Ordering::SeqCst);
    }

    /// Every append fails with "no space left on device" while `full` is
    /// set (not one-shot: a disk stays full until room is made).
    pub fn set_full(&self, full: bool) {
        self.faults.full.store(full, Ordering::SeqCst);
    }

    /// The next read of `path` returns its middle byte flipped (the file
    /// itself is unchanged), as a disk or a bus can once.
    pub fn corrupt_next_read(&self, path: &Path) {
        *self.faults.read_target() = Some(path.to_path_buf());
    }

    fn wrap(&self, inner: S::File) -> FaultyFile<S::File> {
        FaultyFile {
            inner,
            faults: Arc::clone(&self.faults),
        }
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    type File = FaultyFile<S::File>;
    type Lock = S::Lock;

    async fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        self.inner.create_dir_all(dir).await
    }

    async fn lock(&self, dir: &Path) -> Result<S::Lock, StorageError> {
        self.inner.lock(dir).await
    }

    async fn create_new(&self, path: &Path) -> Result<Self::File, StorageError> {
        Ok(self.wrap(self.inner.create_new(path).await?))
    }

    async fn open_append(&self, path: &Path) -> Result<Self::File, StorageError> {
        Ok(self.wrap(self.inner.open_append(path).await?))
    }

    async fn read(&self, path: &Path, bytes_max: u64) -> Result<Vec<u8>, StorageError> {
        let mut bytes = self.inner.read(path, bytes_max).await?;
        let fires = {
            let mut target = self.faults.read_target();
            let fires = target.as_deref() == Some(path);
            if fires {
                *target = None;
            }
            fires
        };
        if fires && !bytes.is_empty() {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x20;
        }
        Ok(bytes)
    }

    async fn list_dir(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        self.inner.list_dir(dir).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.inner.rename(from, to).await
    }

    async fn remove_file(&self, path: &Path) -> Result<(), StorageError> {
        self.inner.remove_file(path).await
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        if fires(&self.faults.sync_dir) {
            return Err(injected(StorageOperation::SyncDirectory, dir));
        }
        self.inner.sync_dir(dir).await
    }
}

impl<F: StorageFile> StorageFile for FaultyFile<F> {
    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn append(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        if fires(&self.faults.append) {
            return Err(injected(StorageOperation::Append, self.inner.path()));
        }
        if self.faults.full.load(Ordering::SeqCst) {
            let full = io::Error::new(io::ErrorKind::StorageFull, "no space left on device");
            return Err(StorageError::io(
                StorageOperation::Append,
                self.inner.path(),
                full,
            ));
        }
        self.inner.append(bytes).await
    }

    async fn sync_data(&mut self) -> Result<(), StorageError> {
        if fires(&self.faults.sync) {
            return Err(injected(StorageOperation::Sync, self.inner.path()));
        }
        self.inner.sync_data().await
    }

    async fn truncate(&mut self, size: u64) -> Result<(), StorageError> {
        self.inner.truncate(size).await
    }
}
