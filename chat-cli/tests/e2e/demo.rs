//! The original classroom program's demo, replayed on the real binaries.

use crate::harness::{Client, Server, assert_transcript};

#[test]
fn the_original_conversation_between_joshua_and_john() {
    let mut server = Server::start(&[]);

    // Both pick their nickname at the prompt, as in the original.
    let mut joshua = Client::start(&server.addr, &[]);
    joshua.type_line("Joshua");
    joshua.wait_for("You are now connected to the chatroom.");
    server.wait_for_log("The nickname of this client is Joshua.");

    let mut john = Client::start(&server.addr, &[]);
    john.type_line("John");
    john.wait_for("You are now connected to the chatroom.");
    joshua.wait_for("John has connected to the chatroom.");

    john.type_line("Hello there");
    joshua.wait_for("John: Hello there");
    john.wait_for("John: Hello there");

    joshua.type_line("What's up?");
    john.wait_for("Joshua: What's up?");

    john.type_line("Nothing much");
    joshua.wait_for("John: Nothing much");

    john.type_line(".exit");
    let (john_code, john_lines) = john.finish();
    joshua.wait_for("John has left the chatroom.");
    server.wait_for_log("John has left the server.");

    joshua.close_input();
    let (joshua_code, joshua_lines) = joshua.finish();
    server.wait_for_log("Joshua has left the server.");
    let (server_status, server_lines) = server.terminate();

    assert_eq!(john_code, Some(0), "John leaves cleanly");
    assert_eq!(
        joshua_code,
        Some(0),
        "Joshua leaves cleanly at the end of input"
    );
    assert!(server_status.success(), "the server exits 0 on SIGTERM");
    let transcript = format!(
        "--- Joshua's terminal (exit code 0)\n{}\n\n--- John's terminal (exit code 0)\n{}\n\n--- server console\n{}\n",
        joshua_lines.join("\n"),
        john_lines.join("\n"),
        server_lines.join("\n"),
    );
    assert_transcript("e2e_original_demo", &transcript);
}

#[test]
fn a_taken_nickname_is_refused_and_the_first_holder_is_unaffected() {
    let server = Server::start(&[]);
    let mut alice = Client::join(&server.addr, "Alice");

    let impostor = Client::start(&server.addr, &["--nick", "Alice"]);
    let (code, lines) = impostor.finish();
    assert_eq!(
        code,
        Some(4),
        "refused nickname exit code; output: {lines:?}"
    );
    assert_eq!(
        lines,
        vec!["The server refused to let you in: the nickname Alice is already taken."]
    );

    alice.type_line("still here");
    alice.wait_for("Alice: still here");
    assert_eq!(alice.count("Alice has connected to the chatroom."), 1);
    assert_eq!(alice.count("Alice has left the chatroom."), 0);
}

#[test]
fn bad_nicknames_and_unreachable_servers_give_one_clear_line() {
    let server = Server::start(&[]);
    for (nick, expected) in [
        ("", "Invalid nickname: nickname is empty."),
        (
            &"x".repeat(33),
            "Invalid nickname: nickname is too long (33 characters; the limit is 32).",
        ),
        (
            "bad\u{7}nick",
            "Invalid nickname: nickname contains an invisible or control character (U+0007).",
        ),
    ] {
        let client = Client::start(&server.addr, &["--nick", nick]);
        let (code, lines) = client.finish();
        assert_eq!(
            (code, lines),
            (Some(2), vec![expected.to_owned()]),
            "nickname {nick:?}"
        );
    }

    // A port nobody listens on: bind one, then free it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = free.local_addr().expect("local address").to_string();
    drop(free);
    let client = Client::start(&addr, &["--nick", "Nobody"]);
    let (code, lines) = client.finish();
    assert_eq!(code, Some(3), "unreachable exit code; output: {lines:?}");
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].starts_with("Cannot reach the server: cannot connect to "),
        "{lines:?}"
    );
}

#[test]
fn an_overlong_message_is_not_sent_and_said_so_but_is_not_a_loss() {
    let server = Server::start(&[]);
    let mut bob = Client::join(&server.addr, "Bob");
    bob.type_line(&"é".repeat(3000));
    bob.wait_for("Not sent: message is too long (6000 bytes; the limit is 4096).");
    bob.type_bytes(b"caf\xe9 in Latin-1\n");
    bob.wait_for("Not sent: the line is not valid UTF-8.");
    bob.type_line("short enough");
    bob.wait_for("Bob: short enough");
    bob.close_input();
    let (code, lines) = bob.finish();
    // Refused here, before it went anywhere: reported, and not "lost in
    // transit" (exit code 5 is for that).
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines.contains(&"2 messages typed: 1 delivered, 1 refused.".to_owned()),
        "{lines:?}"
    );
}

#[test]
fn end_of_piped_input_leaves_after_everything_is_delivered() {
    let server = Server::start(&[]);
    let mut watcher = Client::join(&server.addr, "Watcher");
    let mut bot = Client::start(&server.addr, &["--nick", "bot"]);
    for index in 0..200 {
        bot.type_line(&format!("line {index}"));
    }
    bot.close_input();
    let (code, lines) = bot.finish();
    assert_eq!(code, Some(0), "{lines:?}");
    watcher.wait_for("bot has left the chatroom.");
    for index in 0..200 {
        assert_eq!(
            watcher.count(&format!("bot: line {index}")),
            1,
            "line {index} exactly once"
        );
    }
}

#[test]
fn help_documents_every_option_its_environment_variable_and_the_fixed_limits() {
    let help = |command: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_chat-cli"))
            .args([command, "--help"])
            .output()
            .expect("run chat-cli --help");
        assert!(output.status.success());
        String::from_utf8(output.stdout).expect("UTF-8 help")
    };
    let server = help("server");
    for expected in [
        "--listen",
        "CHAT_LISTEN",
        "--queue-bytes-max",
        "--heartbeat-interval",
        "--heartbeat-timeout",
        "--session-grace",
        "--history-max",
        "--threads",
        "Fixed limits",
        "16384 bytes",
    ] {
        assert!(
            server.contains(expected),
            "server --help lacks {expected:?}:\n{server}"
        );
    }
    let client = help("client");
    for expected in [
        "--server",
        "CHAT_SERVER",
        "--nick",
        "--room",
        "--reconnect-give-up",
        "Exit codes",
        "256 at most",
    ] {
        assert!(
            client.contains(expected),
            "client --help lacks {expected:?}:\n{client}"
        );
    }
}
