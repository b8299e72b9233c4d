//! The client as a person at a terminal uses it: on a pseudo-terminal,
//! with its line editor, job control from a shell, colours, and the
//! terminal closed under it. What the screen shows is rendered by a
//! terminal emulator and snapshotted (see `pty`).

use std::time::{Duration, Instant};

use chat_core::session::{NICK_PROMPT, SessionConfig};

use crate::harness::{Client, Server, signal};
use crate::pty::{Terminal, assert_screens};

const CONNECTED: &str = "You are now connected to the chatroom.";

/// The README's screen of the original conversation, as Joshua sees it.
const ORIGINAL_SCREEN: &str = "\
Choose a nickname: Joshua
Joshua has connected to the chatroom.
You are now connected to the chatroom.
John has connected to the chatroom.
John: Hello there
What's up?
Joshua: What's up?
John: Nothing much
John has left the chatroom.";

/// A client on a terminal of its own, joined as `nick` (given with
/// `--nick`).
fn join(server: &Server, nick: &str) -> Terminal {
    let mut terminal = Terminal::client(nick, &server.addr, &["--nick", nick], &[]);
    terminal.wait_for_text(CONNECTED);
    terminal
}

/// Stops the server and waits until it is stopped (its parent, this test,
/// is told), so that nothing typed from then on can reach it.
fn stop(server: &Server) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.pid()).expect("a process id"));
    signal(server.pid(), "STOP");
    let (sender, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(waitpid(pid, Some(WaitPidFlag::WUNTRACED)));
    });
    match stopped.recv_timeout(crate::harness::WAIT) {
        Ok(Ok(WaitStatus::Stopped(..))) => {}
        other => panic!("the server did not stop: {other:?}"),
    }
}

/// Longer than the gap between two ticks at which a client knows it was
/// stopped.
fn longer_than_the_pause_threshold() -> Duration {
    SessionConfig::asking("").pause_threshold + Duration::from_millis(500)
}

#[test]
fn the_original_conversation_looks_as_it_did_with_no_prompt() {
    let server = Server::start(&[]);
    let mut joshua = Terminal::client("Joshua", &server.addr, &[], &[]);
    joshua.wait_for_cursor_row(NICK_PROMPT);
    joshua.type_line("Joshua");
    joshua.wait_for_text(CONNECTED);
    let mut john = Terminal::client("John", &server.addr, &[], &[]);
    john.wait_for_cursor_row(NICK_PROMPT);
    john.type_line("John");
    john.wait_for_text(CONNECTED);
    joshua.wait_for_text("John has connected to the chatroom.");

    john.type_line("Hello there");
    joshua.wait_for_text("John: Hello there");
    joshua.type_line("What's up?");
    joshua.wait_for_text("Joshua: What's up?");
    john.wait_for_text("Joshua: What's up?");
    john.type_line("Nothing much");
    joshua.wait_for_text("John: Nothing much");
    john.wait_for_text("John: Nothing much");
    john.type_line(".exit");
    assert_eq!(john.wait_exit(), Some(0), "John leaves cleanly");
    joshua.wait_for_text("John has left the chatroom.");

    assert_eq!(joshua.text(), ORIGINAL_SCREEN, "the README's screen");
    assert_eq!(joshua.cursor_row(), "", "no prompt in the one-room case");
    assert_screens(
        "terminal_original_conversation",
        &[("Joshua's terminal", &joshua), ("John's terminal", &john)],
    );
}

#[test]
fn a_half_typed_line_stays_below_a_line_that_arrives_and_history_recalls_lines() {
    let server = Server::start(&[]);
    let mut ann = join(&server, "Ann");
    let mut bob = join(&server, "Bob");
    ann.wait_for_text("Bob has connected to the chatroom.");

    ann.type_keys("half a thou");
    ann.wait_for_cursor_row("half a thou");
    bob.type_line("a line while Ann types");
    ann.wait_until("Bob's line above the half-typed one", |ann| {
        ann.row_above_cursor() == "Bob: a line while Ann types"
            && ann.cursor_row() == "half a thou"
            && ann.screen().cursor_position().1 == 11
    });
    assert_screens(
        "terminal_half_typed_line",
        &[("Ann's terminal, typing", &ann)],
    );

    ann.type_line("ght");
    ann.wait_for_text("Ann: half a thought");
    // Up brings back the line sent; Enter sends it again.
    let up = ann.arrow('A');
    ann.type_keys(&up);
    ann.wait_for_cursor_row("half a thought");
    ann.end_read_with("\r");
    bob.wait_until("Ann's line twice", |bob| {
        bob.text().matches("Ann: half a thought").count() == 2
    });
}

/// Lines typed faster than the client reads them, or pasted, all count:
/// the line editor's read-ahead is kept from one line to the next (it was
/// lost once, so only the first of a pasted block was handled). And the
/// answers come on the screen in the order the server sent them: the line
/// editor holds what comes during a read while it works through keys typed
/// ahead, and a line shown between two reads once overtook what it held.
#[test]
fn lines_typed_ahead_or_pasted_are_each_handled_in_order() {
    let server = Server::start(&[]);
    let mut ann = join(&server, "Ann");

    ann.end_read_with(&"/who\r/rooms\rhello\r".repeat(4));
    ann.wait_until("four hellos", |ann| {
        ann.text().matches("Ann: hello").count() == 4
    });
    let text = ann.text();
    let answers: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.starts_with("In lobby:") || line.starts_with("Rooms:") || line.starts_with("Ann:")
        })
        .collect();
    let round = ["In lobby: Ann.", "Rooms: lobby (1).", "Ann: hello"];
    assert_eq!(
        answers,
        round.repeat(4),
        "every line handled, in order:\n{text}"
    );
}

#[test]
fn a_private_message_reaches_its_recipient_only() {
    let server = Server::start(&[]);
    let mut ann = join(&server, "Ann");
    let mut bob = join(&server, "Bob");
    let mut cat = join(&server, "Cat");
    ann.wait_for_text("Cat has connected to the chatroom.");
    bob.wait_for_text("Cat has connected to the chatroom.");

    ann.type_line("/msg Bob just between us");
    bob.wait_for_text("*Ann* just between us");
    ann.wait_for_text("-> *Bob* just between us");
    // Cat's connection carries Ann's events in the order the server took
    // them: once the next line is there, the private one would have been.
    ann.type_line("now for everyone");
    cat.wait_for_text("Ann: now for everyone");
    bob.wait_for_text("Ann: now for everyone");
    ann.wait_for_text("Ann: now for everyone");
    assert!(!cat.text().contains("just between us"), "{}", cat.text());

    assert_screens(
        "terminal_private_message",
        &[
            ("Ann's terminal", &ann),
            ("Bob's terminal", &bob),
            ("Cat's terminal", &cat),
        ],
    );
}

#[test]
fn joining_a_room_names_it_in_the_prompt_and_so_does_switching_back() {
    let server = Server::start(&[]);
    let mut ann = join(&server, "Ann");
    let mut bob = join(&server, "Bob");
    ann.wait_for_text("Bob has connected to the chatroom.");

    ann.type_line("/join dev");
    ann.wait_for_text("You are now in dev; lines you type go there.");
    ann.wait_for_cursor_row("[dev] ");
    ann.type_line("hello dev");
    ann.wait_for_text("Ann: hello dev");
    bob.type_line("hello lobby");
    ann.wait_for_text("[lobby] Bob: hello lobby");

    ann.type_line("/join lobby");
    ann.wait_for_text("Lines you type go to lobby now.");
    ann.wait_for_cursor_row("[lobby] ");
    ann.type_line("back in the lobby");
    bob.wait_for_text("Ann: back in the lobby");
    ann.wait_until("the line, then the prompt again", |ann| {
        ann.row_above_cursor() == "Ann: back in the lobby" && ann.cursor_row() == "[lobby]"
    });
    assert!(!bob.text().contains("hello dev"), "{}", bob.text());

    assert_screens(
        "terminal_rooms",
        &[("Ann's terminal", &ann), ("Bob's terminal", &bob)],
    );
}

#[test]
fn ctrl_z_then_fg_gives_back_the_line_editor_and_the_client_says_it_was_paused() {
    let server = Server::start(&[]);
    let mut shell = Terminal::shell("the shell", &server.addr);
    shell.type_line("chat-cli client --nick Ann");
    shell.wait_for_text(CONNECTED);
    let mut bob = Client::join(&server.addr, "Bob");
    shell.wait_for_text("Bob has connected to the chatroom.");

    shell.type_keys("half");
    shell.wait_for_cursor_row("half");
    shell.end_read_with("\x1a");
    let stopped = Instant::now();
    shell.wait_for_text("Stopped");
    shell.wait_for_cursor_row("$ ");
    // The pause is what is tested, not a wait for something.
    std::thread::sleep(longer_than_the_pause_threshold().saturating_sub(stopped.elapsed()));

    shell.type_line("fg");
    shell.wait_until("the client back, with its half-typed line", |shell| {
        shell
            .row_above_cursor()
            .starts_with("This client was paused for ")
            && shell.cursor_row() == "half"
    });
    // Lines still arrive above the line being typed.
    bob.type_line("welcome back");
    shell.wait_until("Bob's line above the half-typed one", |shell| {
        shell.row_above_cursor() == "Bob: welcome back" && shell.cursor_row() == "half"
    });
    // Keys edit the line again: the terminal is back in the editor's mode.
    let left = shell.arrow('D');
    shell.type_keys(&format!("{left}{left}X"));
    shell.wait_for_cursor_row("haXlf");
    assert!(!shell.text().contains("^["), "{}", shell.text());
    shell.end_read_with("\r");
    bob.wait_for("Ann: haXlf");
    shell.wait_for_text("Ann: haXlf");
    let up = shell.arrow('A');
    shell.type_keys(&up);
    shell.wait_for_cursor_row("haXlf");

    assert_screens("terminal_ctrl_z_and_fg", &[("the shell", &shell)]);
}

#[test]
fn a_stop_from_outside_then_fg_gives_back_the_line_editor_too() {
    let server = Server::start(&[]);
    let mut shell = Terminal::shell("the shell", &server.addr);
    shell.type_line("chat-cli client --nick Ann");
    shell.wait_for_text(CONNECTED);
    let [client] = shell.children()[..] else {
        panic!("one job: {:?}", shell.children());
    };

    for (signal_name, typed, edited) in [("STOP", "stop", "stXop"), ("TSTP", "tstp", "tsXtp")] {
        shell.type_keys(typed);
        shell.wait_for_cursor_row(typed);
        signal(client, signal_name);
        shell.wait_for_cursor_row("$ ");
        shell.type_line("fg");
        // The line shows again at the next key, with the cursor where it was.
        let left = shell.arrow('D');
        shell.type_keys(&format!("{left}{left}X"));
        shell.wait_for_cursor_row(edited);
        shell.end_read_with("\r");
        shell.wait_for_text(&format!("Ann: {edited}"));
    }
    assert!(!shell.text().contains("^["), "{}", shell.text());
}

#[test]
fn a_client_stopped_past_the_heartbeat_timeouts_says_it_was_paused_and_resumes() {
    let timeouts = ["--heartbeat-interval", "200ms", "--heartbeat-timeout", "1s"];
    let mut server = Server::start(&timeouts);
    let mut args = vec!["--nick", "Ann"];
    args.extend(timeouts);
    let mut ann = Terminal::client("Ann", &server.addr, &args, &[]);
    ann.wait_for_text(CONNECTED);

    ann.signal("STOP");
    let stopped = Instant::now();
    server.wait_for_log("Dropped the connection of Ann: no heartbeat within the timeout.");
    // The pause is what is tested, not a wait for something.
    std::thread::sleep(longer_than_the_pause_threshold().saturating_sub(stopped.elapsed()));
    ann.signal("CONT");

    ann.wait_for_text("Reconnected; nothing was missed.");
    let text = ann.text();
    assert!(text.contains("This client was paused for "), "{text}");
    assert!(
        text.contains("Connection to the server lost (this client was paused); reconnecting..."),
        "{text}"
    );
    assert!(!text.contains("stopped answering"), "{text}");
    assert_screens("terminal_stopped_client", &[("Ann's terminal", &ann)]);
}

#[test]
fn ctrl_d_leaves_at_once_and_the_nickname_is_free() {
    let mut server = Server::start(&[]);
    let mut ann = join(&server, "Ann");
    ann.end_read_with("\x04");
    ann.wait_for_text("Disconnecting from server...");
    assert_eq!(ann.wait_exit(), Some(0));
    server.wait_for_log("Ann has left the server.");
    // At once: the session ended, no grace period (30 s, longer than any
    // wait here) to wait out.
    let _again = Client::join(&server.addr, "Ann");
    assert_screens("terminal_ctrl_d", &[("Ann's terminal", &ann)]);
}

#[test]
fn closing_the_terminal_leaves_and_the_nickname_is_free() {
    let mut server = Server::start(&[]);
    let mut ann = join(&server, "Ann");
    ann.type_keys("never sent");
    ann.wait_for_cursor_row("never sent");
    ann.hang_up();
    assert_eq!(ann.wait_exit(), Some(0), "a clean exit, not a panic");
    server.wait_for_log("Ann has left the server.");
    let _again = Client::join(&server.addr, "Ann");
}

#[test]
fn sigterm_leaves_and_the_nickname_is_free() {
    let mut server = Server::start(&[]);
    let mut ann = join(&server, "Ann");
    ann.signal("TERM");
    ann.wait_for_text("Disconnecting from server...");
    assert_eq!(ann.wait_exit(), Some(0));
    server.wait_for_log("Ann has left the server.");
    let _again = Client::join(&server.addr, "Ann");
}

#[test]
fn ctrl_c_at_the_nickname_question_leaves_without_joining() {
    let server = Server::start(&[]);
    let mut someone = Terminal::client("someone", &server.addr, &[], &[]);
    someone.wait_for_cursor_row(NICK_PROMPT);
    someone.end_read_with("\x03");
    assert_eq!(someone.wait_exit(), Some(0));
    assert_eq!(someone.text(), NICK_PROMPT.trim_end());
}

#[test]
fn a_refused_nickname_is_asked_again() {
    let server = Server::start(&[]);
    let _ann = join(&server, "Ann");
    let mut second = Terminal::client("the second user", &server.addr, &[], &[]);
    second.wait_for_cursor_row(NICK_PROMPT);
    second.type_line("Ann");
    second.wait_for_text("That nickname cannot be used: the nickname Ann is already taken.");
    second.wait_for_cursor_row(NICK_PROMPT);
    second.type_line("Bea");
    second.wait_for_text(CONNECTED);
    assert_screens(
        "terminal_refused_nickname",
        &[("the second user's terminal", &second)],
    );
}

#[test]
fn an_unreachable_server_is_reported_before_any_prompt() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = unused.local_addr().expect("its address").to_string();
    drop(unused);
    let mut someone = Terminal::client("someone", &addr, &[], &[]);
    assert_eq!(someone.wait_exit(), Some(3));
    let text = someone.text();
    assert!(text.starts_with("Cannot reach the server: "), "{text}");
    assert!(!text.contains(NICK_PROMPT.trim_end()), "{text}");
}

#[test]
fn nicknames_are_in_colour_on_a_terminal_unless_no_color_is_set() {
    let server = Server::start(&[]);
    let mut ann = Terminal::client("Ann", &server.addr, &["--nick", "Ann", "--timestamps"], &[]);
    ann.wait_for_text(CONNECTED);
    let mut bob = Terminal::client(
        "Bob",
        &server.addr,
        &["--nick", "Bob"],
        &[("NO_COLOR", "1")],
    );
    bob.wait_for_text(CONNECTED);
    ann.wait_for_text("Bob has connected to the chatroom.");
    ann.type_line("hi");
    ann.wait_for_text("Ann: hi");
    bob.wait_for_text("Ann: hi");

    let coloured = |terminal: &Terminal, shown: &str, nick_at: u16| {
        let row = terminal
            .text()
            .lines()
            .position(|row| row.ends_with(shown))
            .expect("the line is on the screen");
        let row = u16::try_from(row).expect("a screen row");
        let cell = terminal.screen().cell(row, nick_at).expect("a cell");
        cell.fgcolor() != vt100::Color::Default
    };
    // `[12:34] Ann: hi`: the nickname starts after the time.
    assert!(coloured(&ann, "Ann: hi", 8), "{}", ann.text());
    assert!(!coloured(&bob, "Ann: hi", 0), "NO_COLOR is honoured");
    assert_screens(
        "terminal_timestamps",
        &[("Ann's terminal, with --timestamps", &ann)],
    );
}

#[test]
fn messages_lost_in_transit_give_exit_code_5_and_a_summary() {
    let server = Server::start(&[]);
    let mut ann = join(&server, "Ann");
    ann.type_line("delivered");
    ann.wait_for_text("Ann: delivered");

    stop(&server);
    ann.type_line("lost in transit");
    ann.end_read_with("\x04");
    ann.wait_for_text("2 messages typed: 1 delivered, 1 not confirmed.");
    let code = ann.wait_exit();
    signal(server.pid(), "CONT");
    assert_eq!(code, Some(5));
    assert_screens("terminal_lost_in_transit", &[("Ann's terminal", &ann)]);
}
