//! The storage verbs over the real file system (a temporary directory), the
//! fault injector, and (feature `sim`) turmoil's durability rules as seen
//! through the trait.

use std::io::ErrorKind;

use bytes::Bytes;

use super::*;

fn temporary_directory() -> tempfile::TempDir {
    tempfile::tempdir().expect("the system has a temporary directory")
}

#[tokio::test]
async fn create_append_truncate_read() {
    let root = temporary_directory();
    let storage = TokioStorage;
    let dir = root.path().join("a/b/data");
    storage.create_dir_all(&dir).await.expect("create dirs");
    let path = dir.join("file");
    let mut file = storage.create_new(&path).await.expect("create");
    assert_eq!(file.size(), 0);
    file.append(Bytes::from_static(b"hello "))
        .await
        .expect("append");
    file.append(Bytes::from_static(b"world"))
        .await
        .expect("append");
    file.sync_data().await.expect("sync");
    assert_eq!(file.size(), 11);
    assert_eq!(
        storage.read(&path, 100).await.expect("read"),
        b"hello world"
    );

    file.truncate(5).await.expect("truncate");
    file.append(Bytes::from_static(b"!")).await.expect("append");
    assert_eq!(storage.read(&path, 100).await.expect("read"), b"hello!");

    let reopened = storage.open_append(&path).await.expect("open");
    assert_eq!(reopened.size(), 6);
    storage.sync_dir(&dir).await.expect("sync dir");
}

#[tokio::test]
async fn create_new_refuses_an_existing_file() {
    let root = temporary_directory();
    let storage = TokioStorage;
    let path = root.path().join("file");
    storage.create_new(&path).await.expect("create");
    let error = storage.create_new(&path).await.expect_err("exists");
    assert_eq!(error.io_kind(), Some(ErrorKind::AlreadyExists));
    let message = error.to_string();
    assert!(message.starts_with("cannot create "), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn read_refuses_a_file_over_its_limit() {
    let root = temporary_directory();
    let storage = TokioStorage;
    let path = root.path().join("file");
    let mut file = storage.create_new(&path).await.expect("create");
    file.append(Bytes::from_static(b"12345"))
        .await
        .expect("append");
    assert_eq!(storage.read(&path, 5).await.expect("read").len(), 5);
    let error = storage.read(&path, 4).await.expect_err("too large");
    assert!(matches!(
        error,
        StorageError::TooLarge {
            size: 5,
            bytes_max: 4,
            ..
        }
    ));
    let missing = storage.read(&root.path().join("missing"), 4).await;
    let error = missing.expect_err("missing");
    assert_eq!(error.io_kind(), Some(ErrorKind::NotFound));
}

#[tokio::test]
async fn list_rename_remove() {
    let root = temporary_directory();
    let storage = TokioStorage;
    for name in ["c", "a", "b"] {
        storage
            .create_new(&root.path().join(name))
            .await
            .expect("create");
    }
    assert_eq!(
        storage.list_dir(root.path()).await.expect("list"),
        ["a", "b", "c"]
    );
    let (from, to) = (root.path().join("a"), root.path().join("d"));
    storage.rename(&from, &to).await.expect("rename");
    storage
        .remove_file(&root.path().join("b"))
        .await
        .expect("remove");
    assert_eq!(
        storage.list_dir(root.path()).await.expect("list"),
        ["c", "d"]
    );
    let error = storage.rename(&from, &to).await.expect_err("gone");
    assert!(error.to_string().starts_with("cannot rename "), "{error}");
}

#[tokio::test]
async fn a_second_lock_of_a_directory_is_refused_until_the_first_goes() {
    let root = temporary_directory();
    let storage = TokioStorage;
    let first = storage.lock(root.path()).await.expect("first lock");
    let error = storage.lock(root.path()).await.expect_err("held");
    assert!(matches!(error, StorageError::Locked { .. }));
    let message = error.to_string();
    assert!(
        message.contains(&root.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("in use by another process"), "{message}");
    drop(first);
    storage.lock(root.path()).await.expect("lock again");
}

#[tokio::test]
async fn faults_fire_once_and_do_nothing() {
    let root = temporary_directory();
    let storage = FaultyStorage::new(TokioStorage);
    let path = root.path().join("file");
    let mut file = storage.create_new(&path).await.expect("create");

    storage.fail_next_append();
    let error = file
        .append(Bytes::from_static(b"lost"))
        .await
        .expect_err("injected");
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(file.size(), 0);
    file.append(Bytes::from_static(b"kept"))
        .await
        .expect("append");

    storage.fail_next_sync();
    let error = file.sync_data().await.expect_err("injected");
    assert!(error.to_string().starts_with("cannot sync "), "{error}");
    file.sync_data().await.expect("sync");

    storage.fail_next_sync_dir();
    let error = storage.sync_dir(root.path()).await.expect_err("injected");
    assert!(
        error.to_string().starts_with("cannot sync the directory "),
        "{error}"
    );
    storage.sync_dir(root.path()).await.expect("sync dir");
    assert_eq!(storage.read(&path, 100).await.expect("read"), b"kept");

    storage.corrupt_next_read(&path);
    assert_eq!(storage.read(&path, 100).await.expect("read"), b"kePt");
    assert_eq!(storage.read(&path, 100).await.expect("read"), b"kept");
}

#[cfg(feature = "sim")]
mod sim {
    //! What a crash keeps in turmoil's file system, through the trait.

    use std::cell::RefCell;
    use std::path::Path;
    use std::rc::Rc;

    use super::*;

    /// Runs `before` in a host, crashes it, and hands `after` what the
    /// restarted host reads.
    fn across_a_crash(
        before: impl AsyncFnOnce(&SimStorage) + Clone + 'static,
        after: impl AsyncFnOnce(&SimStorage) + Clone + 'static,
    ) {
        let mut sim = turmoil::Builder::new().build();
        let lives = Rc::new(RefCell::new(0));
        let host_lives = Rc::clone(&lives);
        sim.host("disk", move || {
            let (before, after, lives) = (before.clone(), after.clone(), Rc::clone(&host_lives));
            async move {
                let storage = SimStorage::new();
                let life = *lives.borrow();
                *lives.borrow_mut() += 1;
                if life == 0 {
                    before(&storage).await;
                } else {
                    after(&storage).await;
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        sim.step().expect("first life runs");
        sim.crash("disk");
        sim.bounce("disk");
        sim.step().expect("second life runs");
        assert_eq!(*lives.borrow(), 2);
    }

    async fn write_file(storage: &SimStorage, path: &Path, sync_dir: bool) {
        storage
            .create_dir_all(Path::new("/data"))
            .await
            .expect("mkdir");
        let mut file = storage.create_new(path).await.expect("create");
        file.append(Bytes::from_static(b"synced"))
            .await
            .expect("append");
        file.sync_data().await.expect("sync");
        file.append(Bytes::from_static(b" pending"))
            .await
            .expect("append");
        if sync_dir {
            storage
                .sync_dir(Path::new("/data"))
                .await
                .expect("sync dir");
        }
    }

    #[test]
    fn a_file_whose_directory_was_synced_keeps_its_synced_data() {
        across_a_crash(
            async |storage| write_file(storage, Path::new("/data/kept"), true).await,
            async |storage| {
                let bytes = storage.read(Path::new("/data/kept"), 100).await;
                assert_eq!(bytes.expect("the file survives"), b"synced");
            },
        );
    }

    #[test]
    fn a_file_whose_directory_was_not_synced_disappears() {
        across_a_crash(
            async |storage| write_file(storage, Path::new("/data/lost"), false).await,
            async |storage| {
                let names = storage.list_dir(Path::new("/data")).await.expect("list");
                assert!(names.is_empty(), "{names:?}");
            },
        );
    }

    #[test]
    fn a_truncation_is_durable_after_sync_data() {
        across_a_crash(
            async |storage| {
                write_file(storage, Path::new("/data/cut"), true).await;
                let mut file = storage
                    .open_append(Path::new("/data/cut"))
                    .await
                    .expect("open");
                assert_eq!(file.size(), 14);
                file.truncate(3).await.expect("truncate");
                file.sync_data().await.expect("sync");
            },
            async |storage| {
                let bytes = storage.read(Path::new("/data/cut"), 100).await;
                assert_eq!(bytes.expect("the file survives"), b"syn");
            },
        );
    }

    #[test]
    fn the_lock_table_refuses_a_second_holder_and_a_crash_frees_it() {
        let mut sim = turmoil::Builder::new().build();
        let storage = SimStorage::new();
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let host_outcomes = Rc::clone(&outcomes);
        sim.host("disk", move || {
            let (storage, outcomes) = (storage.clone(), Rc::clone(&host_outcomes));
            async move {
                storage.create_dir_all(Path::new("/data")).await?;
                let held = storage.lock(Path::new("/data")).await;
                let second = storage.clone().lock(Path::new("/data")).await;
                let refused = matches!(second, Err(StorageError::Locked { .. }));
                outcomes.borrow_mut().push((held.is_ok(), refused));
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        sim.step().expect("first life runs");
        sim.crash("disk");
        sim.bounce("disk");
        sim.step().expect("second life runs");
        assert_eq!(*outcomes.borrow(), [(true, true), (true, true)]);
    }
}
