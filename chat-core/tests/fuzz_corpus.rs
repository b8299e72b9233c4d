//! Replays every input of the fuzz targets' corpora and every saved crash
//! (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`) through the same
//! code the targets run (`fuzz_inputs`, which `fuzz/` includes by path), so
//! that a plain `cargo test` — no nightly, no cargo-fuzz — keeps every
//! crash ever found fixed and every seed passing.
//!
//! It also keeps the seed corpus honest: the files are the seeds defined in
//! `fuzz_inputs::seeds` (`FUZZ_SEEDS_WRITE=1` rewrites them after a change
//! of an input layout), and each rooms seed reaches what it is named for.

mod fuzz_inputs;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use chat_core::protocol::ErrorCode;
use fuzz_inputs::rooms::{Outcome, rooms_inputs};
use fuzz_inputs::seeds::{rooms_scripts, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of a corpus or artifacts folder, without hidden ones such as
/// `.gitkeep`, sorted.
fn inputs_in(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.is_file())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_saved_crash_replays_without_a_panic() {
    let mut failures = Vec::new();
    for (target, run) in fuzz_inputs::TARGETS {
        let corpus = inputs_in(&fuzz_dir().join("corpus").join(target));
        assert!(!corpus.is_empty(), "{target} has a seed corpus");
        let artifacts = inputs_in(&fuzz_dir().join("artifacts").join(target));
        for path in corpus.iter().chain(&artifacts) {
            let data = std::fs::read(path).expect("a readable input");
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "these inputs panic (each panic is printed above): {failures:#?}"
    );
}

#[test]
fn the_seed_corpus_holds_the_seeds_defined_in_fuzz_inputs() {
    let write = std::env::var_os("FUZZ_SEEDS_WRITE").is_some();
    let mut stale = Vec::new();
    for seed in seeds() {
        let folder = fuzz_dir().join("corpus").join(seed.target);
        let path = folder.join(format!("seed-{}", seed.name));
        if write {
            std::fs::create_dir_all(&folder).expect("the corpus folder can be made");
            std::fs::write(&path, &seed.bytes).expect("the seed can be written");
        } else if std::fs::read(&path).ok().as_ref() != Some(&seed.bytes) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "seed files differ from their definitions; rewrite them with \
         `FUZZ_SEEDS_WRITE=1 cargo test -p chat-core --test fuzz_corpus`: {stale:#?}"
    );
}

fn outcome(name: &str) -> Outcome {
    let (_, script) = rooms_scripts()
        .into_iter()
        .find(|(script_name, _)| *script_name == name)
        .unwrap_or_else(|| panic!("a rooms seed named {name}"));
    rooms_inputs(&script.bytes())
}

fn errors(outcome: &Outcome, code: ErrorCode) -> usize {
    outcome.errors.get(&code).copied().unwrap_or(0)
}

#[test]
fn each_rooms_seed_reaches_what_it_is_named_for() {
    let session = outcome("hello_join_send");
    assert_eq!((session.welcomes, session.messages), (2, 2), "{session:?}");
    let refusal = outcome("pipelined_refusal");
    assert_eq!(
        refusal.welcomes, 0,
        "frames after a fatal refusal do nothing"
    );
    assert_eq!(errors(&refusal, ErrorCode::ProtocolViolation), 1);
    assert_eq!(errors(&refusal, ErrorCode::UnsupportedVersion), 1);
    let resume = outcome("resume_after_a_drop");
    assert_eq!(
        (resume.resumes, resume.messages),
        (1, 2),
        "a retry is not sent twice"
    );
    assert!(resume.restored);
    let guessed = outcome("guessed_resume");
    assert_eq!(
        errors(&guessed, ErrorCode::SessionUnknown),
        1,
        "a guess is refused"
    );
    assert_eq!(
        (guessed.welcomes, guessed.resumes),
        (2, 1),
        "the real token resumes"
    );
    let limits = outcome("limits");
    assert_eq!(
        errors(&limits, ErrorCode::TooManyConnections),
        1,
        "{limits:?}"
    );
    assert_eq!(errors(&limits, ErrorCode::RoomLimit), 1, "{limits:?}");
    assert!(errors(&limits, ErrorCode::RateLimited) >= 1, "{limits:?}");
    let full = outcome("room_full");
    assert_eq!(errors(&full, ErrorCode::RoomFull), 1, "{full:?}");
    assert!(full.restored);
    let names = outcome("names_and_private_messages");
    assert_eq!(errors(&names, ErrorCode::NickTaken), 2, "{names:?}");
    assert_eq!(errors(&names, ErrorCode::NickInvalid), 1, "{names:?}");
    assert_eq!(errors(&names, ErrorCode::NoSuchNick), 1, "{names:?}");
    assert_eq!(
        errors(&names, ErrorCode::IdConflict),
        3,
        "an id refused stays used"
    );
    assert!(names.private_messages >= 1, "{names:?}");
    let timeouts = outcome("timeouts_held_actions");
    assert_eq!(
        errors(&timeouts, ErrorCode::HandshakeTimeout),
        1,
        "{timeouts:?}"
    );
    assert!(timeouts.restored);
    let snapshot = outcome("snapshot");
    assert!(snapshot.records.iter().any(|record| record.snapshot));
    assert!(snapshot.restored);
    let bad = outcome("bad_frames_and_shutdown");
    assert!(errors(&bad, ErrorCode::BadFrame) >= 1, "{bad:?}");
}

#[test]
fn the_restore_seeds_restore_unless_damaged() {
    for seed in seeds()
        .iter()
        .filter(|seed| seed.target == "restore_records")
    {
        let restored = fuzz_inputs::restore::restore_lines(&seed.bytes);
        match seed.name {
            "first_record_lost" => {
                let error = restored.expect_err("a log missing a record is refused");
                assert!(error.to_string().contains("record 1"), "{error}");
            }
            name => {
                let rooms = restored.unwrap_or_else(|error| panic!("{name} restores: {error}"));
                assert!(rooms.member_count() > 0, "{name} restores its members");
            }
        }
    }
}
