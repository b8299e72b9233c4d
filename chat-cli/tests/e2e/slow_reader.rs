//! A client that stops reading is disconnected when its queue is full; the
//! room keeps delivering to everyone else, and the server's memory stays
//! bounded.

use crate::harness::{Client, RawPeer, Server, resident_kib};

/// Queue limit for this test: small, so the kernel's socket buffers (about
/// 4 MB on loopback) fill first and the queue right after.
const QUEUE_BYTES_MAX: &str = "65536";

/// Most messages the test sends before giving up on the disconnect.
const MESSAGES_MAX: usize = 5000;

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_room_goes_on() {
    // No message rate: Alice must outrun the stuck reader's queue.
    let mut server = Server::start(&["--queue-bytes-max", QUEUE_BYTES_MAX, "--message-rate", "0"]);
    let mut alice = Client::join(&server.addr, "Alice");
    let mut bob = Client::join(&server.addr, "Bob");
    // Joins, then never reads again.
    let stuck = RawPeer::join(&server.addr, "Stuck");
    bob.wait_for("Stuck has connected to the chatroom.");

    let filler = "x".repeat(4000);
    let mut sent = 0;
    while sent < MESSAGES_MAX && server.count_log("Dropped the connection of Stuck") == 0 {
        alice.type_line(&format!("{sent} {filler}"));
        sent += 1;
        if sent % 10 == 0 {
            // Bob reads at the pace of the room (bursts stay under his own
            // queue limit) and must be receiving all along.
            bob.wait_for(&format!("Alice: {} {filler}", sent - 1));
        }
    }
    let dropped = server.wait_for_log("Dropped the connection of Stuck");
    assert!(dropped.contains("outbound queue full"), "{dropped}");
    assert!(sent < MESSAGES_MAX, "the stuck client was never dropped");

    alice.type_line("after the drop");
    bob.wait_for("Alice: after the drop");
    for index in 0..sent {
        assert_eq!(
            bob.count(&format!("Alice: {index} {filler}")),
            1,
            "message {index}"
        );
    }
    let resident_mib = resident_kib(server.pid()) / 1024;
    assert!(
        resident_mib < 64,
        "server resident memory {resident_mib} MiB"
    );
    drop(stuck);
}
