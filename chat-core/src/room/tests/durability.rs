//! Persistence: actions wait for their records, and a server rebuilt from
//! its records (or a snapshot) is the server it was.

use super::*;

fn persistent(config: RoomConfig) -> Harness {
    Harness::from_rooms(Rooms::new(config, "incarnation-1".into(), seed(7), true))
}

fn restore(log: &[Record], config: RoomConfig, now: Duration) -> Result<Rooms, RestoreError> {
    let snapshot = log.iter().rposition(|record| record.snapshot);
    let start = snapshot.map_or(0, |index| index + 1);
    Rooms::restore(
        config,
        "incarnation-1".into(),
        seed(8),
        snapshot.map(|index| &log[index].bytes[..]),
        log[start..].iter().map(|record| &record.bytes[..]),
        now,
    )
}

#[test]
fn nothing_is_acked_or_broadcast_before_its_record_is_durable() {
    let mut harness = persistent(RoomConfig::default());
    harness.hold = true;
    harness.open(A, ms(0));
    let welcomed = harness.frame(A, hello("Ann"), ms(1));
    assert!(
        received(&welcomed, A).is_empty(),
        "the welcome waits for the new member's record"
    );
    harness.write_records();
    let welcomed = harness.drain();
    assert!(matches!(
        received(&welcomed, A)[..],
        [ServerFrame::Welcome { .. }]
    ));
    harness.frame(A, join(LOBBY), ms(2));
    let held = harness.frame(A, say(LOBBY, 1, "durable"), ms(3));
    assert!(held.is_empty());
    assert!(harness.rooms.held_actions() > 0);
    harness.write_records();
    let released = harness.drain();
    assert_eq!(received(&released, A).last(), Some(&ack(LOBBY, 1, 2)));
}

#[test]
fn a_restored_server_resumes_sessions_and_numbering_and_still_deduplicates() {
    let mut harness = persistent(RoomConfig::default());
    harness.member(A, "Ann", ms(0));
    harness.frame(A, say(LOBBY, 1, "before the crash"), ms(1));
    let token = harness.tokens[&A].clone();
    let restored =
        restore(&harness.log, RoomConfig::default(), secs(100)).expect("the log restores");
    let mut after = Harness::from_rooms(restored);
    after.tokens.insert(A, token);
    after.open(B, secs(100));
    let resume = after.resume(A, "Ann", &[(LOBBY, 1)]);
    let frames = received(&after.frame(B, resume, secs(100)), B);
    assert!(
        matches!(
            frames[0],
            ServerFrame::Welcome {
                resumed: true,
                replayed: 1,
                ..
            }
        ),
        "{frames:?}"
    );
    assert_eq!(frames[1], message(LOBBY, 2, "Ann", "before the crash"));
    let retry = after.frame(B, say(LOBBY, 1, "before the crash"), secs(101));
    assert_eq!(
        received(&retry, B),
        [ack(LOBBY, 1, 2)],
        "the dedup window survived"
    );
    let next = after.frame(B, say(LOBBY, 2, "after"), secs(102));
    assert_eq!(
        received(&next, B).last(),
        Some(&ack(LOBBY, 2, 3)),
        "numbering continues"
    );
}

#[test]
fn restored_members_get_a_fresh_grace_period() {
    let config = RoomConfig::default();
    let mut harness = persistent(config.clone());
    harness.member(A, "Ann", ms(0));
    let mut after =
        Harness::from_rooms(restore(&harness.log, config.clone(), secs(1000)).expect("restores"));
    assert!(broadcasts(&after.tick(secs(1000) + config.session_grace - secs(1))).is_empty());
    let expired = after.tick(secs(1000) + config.session_grace);
    assert_eq!(
        broadcasts(&expired).len(),
        1,
        "Ann leaves after the grace from the restart"
    );
}

#[test]
fn a_snapshot_replaces_the_records_before_it() {
    let config = RoomConfig {
        snapshot_after_bytes: 2_000,
        ..RoomConfig::default()
    };
    let mut harness = persistent(config.clone());
    harness.member(A, "Ann", ms(0));
    for id in 1..=40 {
        harness.frame(A, say(LOBBY, id, "filling the log"), ms(1));
    }
    assert!(
        harness.log.iter().any(|record| record.snapshot),
        "a snapshot was taken"
    );
    let restored = restore(&harness.log, config, secs(5)).expect("restores from the snapshot");
    restored.check_invariants();
    assert_eq!(restored.member_count(), 1);
}

#[test]
fn a_record_that_does_not_fit_is_a_clear_error() {
    let bad = br#"{"changes":[{"change":"room_joined","room":9,"member":9,"seq":1}]}"#;
    let error = Rooms::restore(
        RoomConfig::default(),
        "i".into(),
        seed(1),
        None,
        [&bad[..]],
        ms(0),
    )
    .expect_err("an unknown room");
    assert!(error.to_string().contains("log record 1"), "{error}");
    let garbage = b"not json";
    let error = Rooms::restore(
        RoomConfig::default(),
        "i".into(),
        seed(1),
        None,
        [&garbage[..]],
        ms(0),
    )
    .expect_err("garbage");
    assert!(error.to_string().contains("cannot be applied"), "{error}");
    let error = Rooms::restore(
        RoomConfig::default(),
        "i".into(),
        seed(1),
        Some(b"{"),
        [],
        ms(0),
    )
    .expect_err("a torn snapshot");
    assert!(error.to_string().contains("snapshot"), "{error}");
}

#[test]
fn tokens_are_kept_only_as_hashes() {
    let mut harness = persistent(RoomConfig::default());
    harness.member(A, "Ann", ms(0));
    let token = harness.tokens[&A].clone();
    assert!(
        harness
            .log
            .iter()
            .all(|record| !String::from_utf8_lossy(&record.bytes).contains(&token))
    );
}

#[test]
fn a_restart_with_lower_limits_keeps_what_fits_and_admits_nothing_more() {
    let roomy = RoomConfig {
        snapshot_after_bytes: 0, // a snapshot after every input
        ..RoomConfig::default()
    };
    let mut harness = persistent(roomy.clone());
    harness.member(A, "Ann", ms(0));
    harness.member(B, "Bob", ms(1));
    for (number, room) in ["one", "two", "three"].into_iter().enumerate() {
        harness.frame(A, join(room), ms(2 + number as u64));
    }
    for id in 1..=10 {
        harness.frame(A, say(LOBBY, id, &format!("message {id}")), ms(10 + id));
    }
    assert!(harness.log.iter().any(|record| record.snapshot));
    let tight = RoomConfig {
        rooms_max: 2,
        sessions_max: 1,
        room_members_max: 1,
        history_max: 3,
        acks_remembered_max: 2,
        ..roomy
    };
    let restored = restore(&harness.log, tight, secs(100)).expect("lower limits restore");
    let histories = restored.room_histories();
    let (_, _, last_seq, lobby) = histories
        .iter()
        .find(|(_, name, _, _)| name == LOBBY)
        .expect("the lobby");
    assert_eq!(lobby.len(), 3, "history trimmed to the new limit");
    assert_eq!(*last_seq, 12, "numbering kept: two joins and ten messages");
    assert_eq!(histories.len(), 4, "every room kept");
    assert_eq!(restored.member_nicks().len(), 2, "every session kept");
    let mut after = Harness::from_rooms(restored);
    after.open(C, secs(100));
    let refused = received(&after.frame(C, hello("Cid"), secs(100)), C);
    assert!(
        matches!(
            refused[..],
            [ServerFrame::Error {
                code: ErrorCode::TooManyConnections,
                ..
            }]
        ),
        "no new session past the lowered limit: {refused:?}"
    );
}

/// A snapshot of Ann and Bob in the lobby after Ann said hello, as JSON.
fn snapshot_of_two_members() -> serde_json::Value {
    let config = RoomConfig {
        snapshot_after_bytes: 0,
        ..RoomConfig::default()
    };
    let mut harness = persistent(config);
    harness.member(A, "Ann", ms(0));
    harness.member(B, "Bob", ms(1));
    harness.frame(A, say(LOBBY, 1, "hello"), ms(2));
    let snapshot = harness.log.iter().rev().find(|record| record.snapshot);
    serde_json::from_slice(&snapshot.expect("a snapshot").bytes).expect("a snapshot is JSON")
}

/// A snapshot whose checksum is right but whose content does not hold
/// together (written by a bug, or by hand) is refused with a clear error,
/// never restored into a state that panics later, and never a panic itself.
#[test]
fn a_snapshot_that_does_not_hold_together_is_refused_with_a_clear_error() {
    use serde_json::json;
    type Damage = fn(&mut serde_json::Value);
    let damages: [(&str, Damage); 10] = [
        ("two members with one nickname", |s| {
            s["members"]["2"]["nick"] = json!("ann")
        }),
        ("two members with one token", |s| {
            s["members"]["2"]["token"] = s["members"]["1"]["token"].clone();
        }),
        ("a member in a room that does not exist", |s| {
            s["members"]["1"]["rooms"] = json!({"9": 1});
        }),
        ("a room listing a member that does not exist", |s| {
            s["rooms"]["1"]["members"] = json!([1, 2, 7]);
        }),
        ("a room listing a member not in it", |s| {
            s["members"]["1"]["rooms"] = json!({})
        }),
        ("a gap in a room's history", |s| {
            s["rooms"]["1"]["stream"]["history"]
                .as_array_mut()
                .expect("history")
                .remove(1);
        }),
        ("history past the last event", |s| {
            s["rooms"]["1"]["stream"]["last_seq"] = json!(2)
        }),
        ("remembered ids out of order", |s| {
            s["members"]["1"]["ids"]["recent"][0]["id"] = json!(5);
        }),
        ("a member id not yet given out", |s| {
            s["next_member"] = json!(2)
        }),
        ("two rooms with one name", |s| {
            let mut copy = s["rooms"]["1"].clone();
            copy["members"] = json!([]);
            s["rooms"]["2"] = copy;
            s["next_room"] = json!(3);
        }),
    ];
    let restore_snapshot = |snapshot: &serde_json::Value| {
        let bytes = serde_json::to_vec(snapshot).expect("JSON");
        let config = RoomConfig::default();
        Rooms::restore(
            config,
            "incarnation-1".into(),
            seed(8),
            Some(&bytes),
            [],
            secs(10),
        )
    };
    let whole = snapshot_of_two_members();
    assert!(
        restore_snapshot(&whole).is_ok(),
        "the intact snapshot restores"
    );
    for (damage, apply) in damages {
        let mut snapshot = whole.clone();
        apply(&mut snapshot);
        match restore_snapshot(&snapshot) {
            Err(RestoreError::Snapshot(reason)) => {
                assert!(!reason.is_empty(), "{damage}: the error says why")
            }
            other => panic!("{damage}: restored {:?}", other.map(|_| "a server")),
        }
    }
}
