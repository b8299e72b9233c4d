//! Unit tests of the client driver: [`finish`], and the loop itself, run
//! over a network in memory against a scripted server ([`memory`]) on
//! tokio's paused clock, where simulated time moves on whenever every task
//! waits.

mod memory;

use std::time::Duration;

use tokio::sync::oneshot;

use super::*;
use crate::protocol::{ClientFrame, TEXT_BYTES_MAX};
use crate::session::{EndReason, Tally};
use memory::{ServerEnd, memory_network};

/// Runs `finish` over lines still waiting in the input channel; what it
/// showed and the outcome.
fn finish_with(waiting: &[&str], tally: Tally) -> (Vec<String>, Outcome) {
    let (sender, mut input) = mpsc::channel(waiting.len().max(1));
    for line in waiting {
        sender
            .try_send((*line).to_owned())
            .expect("room in the channel");
    }
    let mut shown = Vec::new();
    let outcome = Outcome {
        reason: EndReason::Left,
        tally,
    };
    let outcome = finish(outcome, &mut input, &mut |ui| {
        if let Ui::Show(line) = ui {
            shown.push(line.to_string());
        }
    });
    (shown, outcome)
}

#[test]
fn lines_typed_but_never_read_are_reported_and_counted_as_unconfirmed() {
    let before = Tally {
        delivered: 2,
        unconfirmed: 1,
        refused: 0,
    };
    let (shown, outcome) = finish_with(&["one", "", "two", ".exit", "/quit"], before);
    assert_eq!(
        shown,
        ["2 typed lines were not sent: the session had ended."]
    );
    assert_eq!(outcome.tally.unconfirmed, 3, "1 before, and the two lines");
    assert_eq!(outcome.tally.delivered, 2);
    assert_eq!(outcome.reason, EndReason::Left);
}

#[test]
fn nothing_waiting_shows_nothing_and_changes_nothing() {
    let (shown, outcome) = finish_with(&["", ".exit"], Tally::default());
    assert!(shown.is_empty(), "{shown:?}");
    assert_eq!(outcome.tally, Tally::default());
}

const SERVER: &str = "server:7000";

fn seconds(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

/// Completes when `signal` is sent (or dropped): a leave future as a
/// signal handler gives one. An `async` block, so that polling it again
/// after it completed panics.
async fn signalled(signal: oneshot::Receiver<()>) {
    signal.await.ok();
}

/// Records the lines the client shows.
fn record_shown(shown: &mut Vec<String>, ui: Ui<'_>) {
    if let Ui::Show(line) = ui {
        shown.push(line.to_string());
    }
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_leave_sends_quit_and_ends_the_session() {
    let start = Instant::now();
    let (network, mut accepted) = memory_network();
    // The input stays open, and the user types nothing.
    let (_user, input) = mpsc::channel(1);
    let (signal, leave) = oneshot::channel();
    let mut shown = Vec::new();
    let config = ClientConfig::new(SERVER, "ann");
    let client = run(network, config, input, signalled(leave), |ui| {
        record_shown(&mut shown, ui);
    });
    let server = async {
        let mut end = ServerEnd::accept(&mut accepted).await;
        end.welcome("ann").await;
        tokio::time::sleep(seconds(1.0)).await;
        signal.send(()).expect("the client is running");
        end.goodbye().await;
        let quit_at = start.elapsed();
        (quit_at, end.closed().await)
    };
    let (outcome, (quit_at, (frames_after_bye, closed_at))) = tokio::join!(client, server);
    assert_eq!(quit_at, seconds(1.0), "the quit follows the signal at once");
    assert_eq!(outcome.reason, EndReason::Left);
    assert_eq!(outcome.tally, Tally::default());
    assert_eq!(
        shown.last().map(String::as_str),
        Some("Disconnecting from server...")
    );
    assert!(frames_after_bye.is_empty(), "{frames_after_bye:?}");
    assert_eq!(
        closed_at - start,
        seconds(1.0),
        "the client closes its connection once it ends"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leave_waits_for_the_acks_of_what_was_sent() {
    let start = Instant::now();
    let (network, mut accepted) = memory_network();
    let (user, input) = mpsc::channel(1);
    user.try_send("hello".to_owned())
        .expect("room for one line");
    let (signal, leave) = oneshot::channel();
    let mut shown = Vec::new();
    let config = ClientConfig::new(SERVER, "ann");
    let client = run(network, config, input, signalled(leave), |ui| {
        record_shown(&mut shown, ui);
    });
    let server = async {
        let mut end = ServerEnd::accept(&mut accepted).await;
        end.welcome("ann").await;
        let id = end.expect_message("hello").await;
        tokio::time::sleep(seconds(1.0)).await;
        signal.send(()).expect("the client is running");
        // The ack comes 1.5 s after the signal: within the grace period.
        tokio::time::sleep(seconds(1.5)).await;
        end.accept_message(id, 2, "ann", "hello").await;
        end.goodbye().await;
        start.elapsed()
    };
    let (outcome, quit_at) = tokio::join!(client, server);
    assert_eq!(
        quit_at,
        seconds(2.5),
        "the quit follows the last ack at once"
    );
    assert_eq!(outcome.reason, EndReason::Left);
    let all_delivered = Tally {
        delivered: 1,
        unconfirmed: 0,
        refused: 0,
    };
    assert_eq!(outcome.tally, all_delivered);
    assert_eq!(
        shown[shown.len() - 2..],
        ["ann: hello", "Disconnecting from server..."]
    );
    drop(user);
}

#[tokio::test(start_paused = true)]
async fn a_leave_gives_up_on_missing_acks_after_the_grace_period() {
    let start = Instant::now();
    let (network, mut accepted) = memory_network();
    let (user, input) = mpsc::channel(1);
    user.try_send("hello".to_owned())
        .expect("room for one line");
    let (signal, leave) = oneshot::channel();
    let config = ClientConfig::new(SERVER, "ann");
    let client = run(network, config, input, signalled(leave), |_| {});
    let server = async {
        let mut end = ServerEnd::accept(&mut accepted).await;
        end.welcome("ann").await;
        end.expect_message("hello").await;
        tokio::time::sleep(seconds(1.0)).await;
        signal.send(()).expect("the client is running");
        // No ack ever comes.
        end.closed().await
    };
    let (outcome, (frames, closed_at)) = tokio::join!(client, server);
    assert_eq!(closed_at - start, seconds(1.0) + LEAVE_GRACE);
    assert!(
        matches!(&frames[..], [ClientFrame::Quit]),
        "the quit reaches the server before the close, so the nickname is free at once: {frames:?}"
    );
    assert_eq!(outcome.reason, EndReason::Left);
    assert_eq!(outcome.tally.unconfirmed, 1);
    drop(user);
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_client_drops_is_closed_while_it_reconnects() {
    let start = Instant::now();
    let (network, mut accepted) = memory_network();
    let (_user, input) = mpsc::channel(1);
    let config = ClientConfig::new(SERVER, "ann");
    let client = run(network, config, input, std::future::pending(), |_| {});
    let server = async {
        let mut first = ServerEnd::accept(&mut accepted).await;
        first.welcome("ann").await;
        first.send_bytes(b"not a frame\n").await;
        let (frames, closed_at) = first.closed().await;
        assert!(frames.is_empty(), "{frames:?}");
        let mut second = ServerEnd::accept(&mut accepted).await;
        let hello = second.expect_frame().await;
        (closed_at, hello)
    };
    tokio::select! {
        biased;
        (closed_at, hello) = server => {
            assert_eq!(closed_at - start, Duration::ZERO, "closed at once, not when the server gives up");
            assert!(
                matches!(&hello, ClientFrame::Hello { resume: Some(resume), .. } if resume.token == memory::TOKEN),
                "{hello:?}"
            );
        }
        outcome = client => panic!("the client ended instead of reconnecting: {outcome:?}"),
    }
}

/// How long the scripted user takes to type a line after the prompt.
const TYPING: Duration = Duration::from_millis(500);

/// Types `lines`, each [`TYPING`] after a [`Ui::Ready`] reported on
/// `readies`, then closes the input (Ctrl-D) the same time after the next.
async fn type_when_ready(
    lines: &[&str],
    mut readies: mpsc::UnboundedReceiver<()>,
    user: mpsc::Sender<String>,
) {
    for line in lines {
        readies
            .recv()
            .await
            .expect("the client runs while the user types");
        tokio::time::sleep(TYPING).await;
        user.send((*line).to_owned())
            .await
            .expect("the client reads input");
    }
    readies
        .recv()
        .await
        .expect("the client runs while the user types");
    tokio::time::sleep(TYPING).await;
}

#[tokio::test(start_paused = true)]
async fn ready_comes_once_per_line_and_only_when_the_session_takes_one() {
    let start = Instant::now();
    let (network, mut accepted) = memory_network();
    let mut config = ClientConfig::new(SERVER, "ann");
    config.session.unacked_max = 1;
    let (user, input) = mpsc::channel(1);
    let (ready, readies) = mpsc::unbounded_channel();
    let mut ready_times = Vec::new();
    let client = run(network, config, input, std::future::pending(), |ui| {
        if let Ui::Ready(_) = ui {
            ready_times.push(start.elapsed());
            ready.send(()).expect("the user is there");
        }
    });
    let typist = type_when_ready(&["one", "two"], readies, user);
    let server = async {
        let mut end = ServerEnd::accept(&mut accepted).await;
        end.welcome("ann").await;
        let one = end.expect_message("one").await;
        tokio::time::sleep(seconds(1.0)).await;
        end.accept_message(one, 2, "ann", "one").await;
        let two = end.expect_message("two").await;
        tokio::time::sleep(seconds(1.0)).await;
        end.accept_message(two, 3, "ann", "two").await;
        end.goodbye().await;
        start.elapsed()
    };
    let (outcome, (), quit_at) = tokio::join!(client, typist, server);
    // At the start, then once each message is acknowledged (the session
    // takes one unacknowledged message at a time), and never again while
    // the user is typing.
    assert_eq!(ready_times, [seconds(0.0), seconds(1.5), seconds(3.0)]);
    assert_eq!(quit_at, seconds(3.5), "the input closed");
    assert_eq!(outcome.reason, EndReason::Left);
    assert_eq!(outcome.tally.delivered, 2);
}

#[tokio::test(start_paused = true)]
async fn the_queue_to_a_server_that_does_not_read_holds_the_largest_outbox() {
    let (network, mut accepted) = memory_network();
    let config = ClientConfig::new(SERVER, "ann");
    let unacked_max = config.session.unacked_max;
    // The longest text, made of the character that grows most when escaped.
    let text = "\"".repeat(TEXT_BYTES_MAX);
    let (user, input) = mpsc::channel(1);
    let (typed, all_typed) = oneshot::channel();
    let typist = async {
        for _ in 0..unacked_max {
            user.send(text.clone())
                .await
                .expect("the client reads input");
        }
        typed.send(()).expect("the server waits");
    };
    let client = run(network, config, input, std::future::pending(), |_| {});
    let server = async {
        let mut end = ServerEnd::accept(&mut accepted).await;
        end.welcome("ann").await;
        // Nothing is read until every line is typed: the messages wait in
        // the client's queue (all but what the stream holds).
        all_typed.await.expect("the user types");
        for _ in 0..unacked_max {
            end.expect_message(&text).await;
        }
    };
    tokio::select! {
        biased;
        ((), ()) = async { tokio::join!(typist, server) } => {}
        outcome = client => panic!("the client ended: {outcome:?}"),
    }
    assert!(accepted.try_recv().is_err(), "the client never reconnected");
}
