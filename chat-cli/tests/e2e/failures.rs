//! Real processes failing: a client killed, a client frozen, the server
//! restarted. Short timeouts, so that the bounds are seconds.

use std::time::{Duration, Instant};

use crate::harness::{Client, Server};

const SERVER_TIMEOUTS: [&str; 6] = [
    "--heartbeat-interval",
    "200ms",
    "--heartbeat-timeout",
    "1s",
    "--session-grace",
    "2s",
];
const CLIENT_TIMEOUTS: [&str; 4] = ["--heartbeat-interval", "200ms", "--heartbeat-timeout", "1s"];

/// Heartbeat timeout + grace period + a tick, plus slack for a loaded machine.
const DEPARTURE_BOUND: Duration = Duration::from_millis(1000 + 2000 + 250 + 2000);

fn join(server: &Server, nick: &str) -> Client {
    let mut args = vec!["--nick", nick];
    args.extend(CLIENT_TIMEOUTS);
    let mut client = Client::start(&server.addr, &args);
    client.wait_for("You are now connected to the chatroom.");
    client
}

#[test]
fn a_killed_client_is_announced_as_left_once_within_the_bound() {
    let server = Server::start(&SERVER_TIMEOUTS);
    let mut alice = join(&server, "Alice");
    let mut bob = join(&server, "Bob");
    let carol = join(&server, "Carol");
    bob.wait_for("Carol has connected to the chatroom.");

    carol.signal("KILL");
    let killed = Instant::now();
    alice.wait_for("Carol has left the chatroom.");
    assert!(
        killed.elapsed() <= DEPARTURE_BOUND,
        "announced after {:?}",
        killed.elapsed()
    );
    bob.wait_for("Carol has left the chatroom.");

    alice.type_line("still here");
    bob.wait_for("Alice: still here");
    alice.wait_for("Alice: still here");
    assert_eq!(alice.count("Carol has left the chatroom."), 1);
    assert_eq!(bob.count("Carol has left the chatroom."), 1);
}

#[test]
fn a_frozen_client_is_announced_as_left_and_rejoins_when_it_wakes() {
    let server = Server::start(&SERVER_TIMEOUTS);
    let mut alice = join(&server, "Alice");
    let mut dave = join(&server, "Dave");
    alice.wait_for("Dave has connected to the chatroom.");

    // Its socket stays open: only heartbeats can tell.
    dave.signal("STOP");
    let stopped = Instant::now();
    alice.wait_for("Dave has left the chatroom.");
    assert!(
        stopped.elapsed() <= DEPARTURE_BOUND,
        "announced after {:?}",
        stopped.elapsed()
    );

    dave.signal("CONT");
    dave.wait_for_prefix("Connection to the server lost");
    dave.wait_for_prefix("The server no longer knows this session; joining the chatroom again");
    dave.wait_for_count("You are now connected to the chatroom.", 2);
    alice.wait_for_count("Dave has connected to the chatroom.", 2);
    dave.type_line("I am back");
    alice.wait_for("Dave: I am back");
    assert_eq!(alice.count("Dave has left the chatroom."), 1);
}

#[test]
fn clients_reconnect_by_themselves_when_the_server_restarts() {
    let server = Server::start(&SERVER_TIMEOUTS);
    let addr = server.addr.clone();
    let mut alice = join(&server, "Alice");
    let mut bob = join(&server, "Bob");
    alice.type_line("before the restart");
    bob.wait_for("Alice: before the restart");

    let (status, _) = server.terminate();
    assert!(status.success());
    for client in [&mut alice, &mut bob] {
        client.wait_for("The server is shutting down.");
        client.wait_for_prefix(
            "Connection to the server lost (the server shut down); reconnecting...",
        );
    }

    let _restarted = Server::start_on(&addr, &SERVER_TIMEOUTS);
    for client in [&mut alice, &mut bob] {
        client
            .wait_for_prefix("The server no longer knows this session; joining the chatroom again");
        client.wait_for_count("You are now connected to the chatroom.", 2);
    }
    alice.type_line("after the restart");
    bob.wait_for("Alice: after the restart");
}

#[test]
fn running_out_of_file_descriptors_backs_off_and_recovers() {
    let mut server = Server::start_with_file_limit(40, &[]);
    // More connections than descriptors: the kernel completes them, the
    // server cannot accept them all.
    let flood: Vec<std::net::TcpStream> = (0..60)
        .filter_map(|_| std::net::TcpStream::connect(&server.addr).ok())
        .collect();
    let warning = server.wait_for_log("accepting again in");
    assert!(warning.contains("Too many open files"), "{warning}");
    drop(flood);
    let mut alice = Client::join(&server.addr, "Alice");
    alice.type_line("still serving");
    alice.wait_for("Alice: still serving");
}
