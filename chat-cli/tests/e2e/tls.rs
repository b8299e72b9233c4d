//! TLS end to end: certificates made here with rcgen, signed by test CAs,
//! served by the real binary; SIGHUP reloads them under connected clients.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chat_core::protocol::{self, ClientFrame, ErrorCode, ServerFrame};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::harness::{Client, RawPeer, Server, signal};

/// A certificate authority, its certificate written to a file.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    file: PathBuf,
}

impl TestCa {
    fn new(directory: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a fresh key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        let file = directory.join(format!("{name}.pem"));
        std::fs::write(&file, issuer.pem()).expect("write the CA certificate");
        Self { issuer, file }
    }

    fn path(&self) -> &str {
        self.file.to_str().expect("a UTF-8 temporary path")
    }

    /// Signs a certificate for `names`; writes it to `certificate` and its
    /// key to `key`, replacing what they held.
    fn sign_into(&self, names: &[&str], files: &PairFiles) {
        let key = KeyPair::generate().expect("a fresh key");
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let certificate = CertificateParams::new(names)
            .expect("valid names")
            .signed_by(&key, &self.issuer)
            .expect("signed");
        std::fs::write(&files.certificate, certificate.pem()).expect("write the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write the key");
    }
}

/// Where the server's certificate and key live.
struct PairFiles {
    certificate: PathBuf,
    key: PathBuf,
}

impl PairFiles {
    fn new(directory: &Path, name: &str) -> Self {
        Self {
            certificate: directory.join(format!("{name}.pem")),
            key: directory.join(format!("{name}.key")),
        }
    }

    /// `--tls-cert FILE --tls-key FILE`.
    fn server_args(&self) -> Vec<&str> {
        vec![
            "--tls-cert",
            self.certificate.to_str().expect("a UTF-8 temporary path"),
            "--tls-key",
            self.key.to_str().expect("a UTF-8 temporary path"),
        ]
    }
}

/// A test directory with one CA and a server pair it signed for `names`.
fn setup(names: &[&str]) -> (tempfile::TempDir, TestCa, PairFiles) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let ca = TestCa::new(directory.path(), "test-ca");
    let pair = PairFiles::new(directory.path(), "server");
    ca.sign_into(names, &pair);
    (directory, ca, pair)
}

/// Joins as `nick`, trusting `ca` only, checking the name `localhost`.
fn join_trusting(server: &Server, nick: &str, ca: &TestCa) -> Client {
    let args = ["--nick", nick, "--ca", ca.path(), "--tls-name", "localhost"];
    let mut client = Client::start(&server.addr, &args);
    client.wait_for("You are now connected to the chatroom.");
    client
}

/// Runs a client trusting `ca` that must fail to reach the server; returns
/// the line saying why.
fn refused_trusting(server: &Server, ca: &TestCa) -> String {
    let args = [
        "--nick",
        "Refused",
        "--ca",
        ca.path(),
        "--tls-name",
        "localhost",
    ];
    let (code, lines) = Client::start(&server.addr, &args).finish();
    assert_eq!(code, Some(3), "the unreachable exit code; shown: {lines:?}");
    lines
        .into_iter()
        .find(|line| line.starts_with("Cannot reach the server: "))
        .expect("a line saying why")
}

fn still_chatting(from: &mut Client, nick: &str, to: &mut Client, text: &str) {
    from.type_line(text);
    to.wait_for(&format!("{nick}: {text}"));
    from.wait_for(&format!("{nick}: {text}"));
}

#[test]
fn two_clients_chat_over_tls_trusting_the_system_roots() {
    // The certificate names the address itself, which the clients check.
    let (_directory, ca, pair) = setup(&["127.0.0.1"]);
    let server = Server::start(&pair.server_args());
    // SSL_CERT_FILE stands in for the system's roots.
    let roots = [("SSL_CERT_FILE", ca.path())];
    let join = |nick: &str| {
        let mut client = Client::start_with_env(&server.addr, &["--nick", nick, "--tls"], &roots);
        client.wait_for("You are now connected to the chatroom.");
        client
    };
    let mut alice = join("Alice");
    let mut bob = join("Bob");
    alice.wait_for("Bob has connected to the chatroom.");
    still_chatting(&mut alice, "Alice", &mut bob, "Hello over TLS");
    still_chatting(&mut bob, "Bob", &mut alice, "Grüße, also encrypted");

    // Shutting down still reaches them through TLS, and they say so.
    let (status, _) = server.terminate();
    assert!(status.success());
    for client in [&mut alice, &mut bob] {
        client.wait_for("The server is shutting down.");
        client.wait_for_prefix(
            "Connection to the server lost (the server shut down); reconnecting...",
        );
    }
}

#[test]
fn a_private_ca_is_trusted_with_ca_and_the_name_can_be_overridden() {
    let (_directory, ca, pair) = setup(&["localhost"]);
    let server = Server::start(&pair.server_args());
    let mut alice = join_trusting(&server, "Alice", &ca);
    let mut bob = join_trusting(&server, "Bob", &ca);
    still_chatting(&mut alice, "Alice", &mut bob, "signed by our own CA");

    // Without --tls-name, the address 127.0.0.1 is checked, and the
    // certificate only names localhost.
    let args = ["--nick", "Carol", "--ca", ca.path()];
    let (code, lines) = Client::start(&server.addr, &args).finish();
    assert_eq!(code, Some(3), "shown: {lines:?}");
    let expected = format!(
        "Cannot reach the server: the certificate of {} is not trusted: it is not valid for \
         the name 127.0.0.1 (--tls-name NAME checks another name).",
        server.addr
    );
    assert!(lines.contains(&expected), "shown: {lines:?}");
}

#[test]
fn a_server_signed_by_another_ca_is_refused_clearly_with_exit_code_3() {
    let (directory, _ca, pair) = setup(&["localhost"]);
    let mut server = Server::start(&pair.server_args());
    let other = TestCa::new(directory.path(), "other-ca");
    let started = Instant::now();
    let reason = refused_trusting(&server, &other);
    assert_eq!(
        reason,
        format!(
            "Cannot reach the server: the certificate of {} is not trusted: it is not signed by \
             a trusted authority (a private CA can be given with --ca FILE).",
            server.addr
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after a timeout: {:?}",
        started.elapsed()
    );
    server.wait_for_log("TLS handshake with 127.0.0.1:");
}

#[test]
fn sighup_swaps_the_certificate_while_connected_clients_keep_chatting() {
    let (directory, old_ca, pair) = setup(&["localhost"]);
    let mut server = Server::start(&pair.server_args());
    let mut alice = join_trusting(&server, "Alice", &old_ca);

    let new_ca = TestCa::new(directory.path(), "new-ca");
    new_ca.sign_into(&["localhost"], &pair);
    signal(server.pid(), "HUP");
    server.wait_for_log("SIGHUP received: reloaded the TLS certificate");

    alice.type_line("still connected after the reload");
    alice.wait_for("Alice: still connected after the reload");
    // Only the new CA signed the new certificate: new handshakes get it.
    let mut bob = join_trusting(&server, "Bob", &new_ca);
    alice.wait_for("Bob has connected to the chatroom.");
    still_chatting(&mut alice, "Alice", &mut bob, "on the old session");
    still_chatting(&mut bob, "Bob", &mut alice, "on the new certificate");
    let reason = refused_trusting(&server, &old_ca);
    assert!(reason.contains("is not trusted"), "{reason}");
    assert_eq!(alice.count("Bob has left the chatroom."), 0);
}

#[test]
fn a_bad_new_pair_on_sighup_is_logged_and_the_old_one_kept() {
    let (directory, ca, pair) = setup(&["localhost"]);
    let mut server = Server::start(&pair.server_args());
    let mut alice = join_trusting(&server, "Alice", &ca);

    // A new certificate with the key of another one.
    let first = PairFiles::new(directory.path(), "first");
    let second = PairFiles::new(directory.path(), "second");
    ca.sign_into(&["localhost"], &first);
    ca.sign_into(&["localhost"], &second);
    std::fs::copy(&first.certificate, &pair.certificate).expect("replace the certificate");
    std::fs::copy(&second.key, &pair.key).expect("replace the key");
    signal(server.pid(), "HUP");
    let warning = server.wait_for_log("SIGHUP received: cannot reload the TLS certificate");
    assert!(
        warning.contains(&format!(
            "the private key in {} does not match the certificate in {}; keeping the previous one.",
            pair.key.display(),
            pair.certificate.display()
        )),
        "{warning}"
    );

    let mut bob = join_trusting(&server, "Bob", &ca);
    still_chatting(&mut alice, "Alice", &mut bob, "the old pair still serves");

    // A file that is no certificate at all.
    std::fs::write(&pair.certificate, "garbage\n").expect("spoil the certificate");
    signal(server.pid(), "HUP");
    server.wait_for_log_count("cannot reload the TLS certificate", 2);
    let expected = format!(
        "the TLS certificate file {} holds no PEM certificate",
        pair.certificate.display()
    );
    assert_eq!(server.count_log(&expected), 1);
    let mut carol = join_trusting(&server, "Carol", &ca);
    still_chatting(&mut carol, "Carol", &mut alice, "and still");
}

#[test]
fn a_plain_client_on_the_tls_port_gets_a_clear_error_line() {
    let (_directory, _ca, pair) = setup(&["localhost"]);
    let mut server = Server::start(&pair.server_args());
    let mut peer = RawPeer::connect(&server.addr);
    peer.send(&ClientFrame::Hello {
        version: protocol::PROTOCOL_VERSION,
        nick: "Plain".into(),
        resume: None,
    });
    assert_eq!(
        peer.read_to_close(),
        vec![ServerFrame::error(
            ErrorCode::BadFrame,
            "this server speaks TLS: connect with --tls"
        )]
    );
    server.wait_for_log("Refused a plain-TCP client from 127.0.0.1:");

    // The client of today shows it as it is.
    let (_, lines) = Client::start(&server.addr, &["--nick", "Plain"]).finish();
    assert!(
        lines.contains(
            &"The server reported an error: this server speaks TLS: connect with --tls.".into()
        ),
        "shown: {lines:?}"
    );
}

#[test]
fn a_tls_client_on_a_plain_port_fails_fast_and_says_why() {
    let (_directory, ca, _pair) = setup(&["localhost"]);
    let server = Server::start(&[]);
    let started = Instant::now();
    // A connect timeout longer than the harness waits: only the answer to
    // the handshake can end the client in time.
    let args = [
        "--nick",
        "Ada",
        "--ca",
        ca.path(),
        "--tls-name",
        "localhost",
        "--connect-timeout",
        "60s",
    ];
    let (code, lines) = Client::start(&server.addr, &args).finish();
    assert_eq!(code, Some(3), "shown: {lines:?}");
    let expected = format!(
        "Cannot reach the server: the server at {} did not answer the TLS handshake: is it a \
         TLS server? try without --tls.",
        server.addr
    );
    assert!(lines.contains(&expected), "shown: {lines:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn sighup_without_tls_leaves_the_server_running_and_its_clients_connected() {
    let mut server = Server::start(&[]);
    let mut alice = Client::join(&server.addr, "Alice");
    signal(server.pid(), "HUP");
    server.wait_for_log("SIGHUP received: nothing to reload without TLS; still serving.");
    let mut bob = Client::join(&server.addr, "Bob");
    still_chatting(&mut alice, "Alice", &mut bob, "after the hangup");
    assert_eq!(alice.count("The server is shutting down."), 0);
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn a_missing_or_mismatched_pair_stops_the_server_at_start_naming_the_file() {
    let (directory, ca, pair) = setup(&["localhost"]);
    let missing = directory.path().join("missing.key");
    let certificate = pair.certificate.to_str().expect("a UTF-8 temporary path");
    let missing_key = missing.to_str().expect("a UTF-8 temporary path");
    let (status, messages) =
        Server::fail_to_start(&["--tls-cert", certificate, "--tls-key", missing_key]);
    assert!(!status.success());
    let expected = format!("cannot read the TLS private key file {missing_key}: ");
    assert!(
        messages
            .iter()
            .any(|message| message.starts_with(&expected)),
        "{messages:?}"
    );

    let other = PairFiles::new(directory.path(), "other");
    ca.sign_into(&["localhost"], &other);
    let other_key = other.key.to_str().expect("a UTF-8 temporary path");
    let (status, messages) =
        Server::fail_to_start(&["--tls-cert", certificate, "--tls-key", other_key]);
    assert!(!status.success());
    let expected =
        format!("the private key in {other_key} does not match the certificate in {certificate}");
    assert!(messages.contains(&expected), "{messages:?}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(["server", "--tls-cert", certificate])
        .output()
        .expect("run chat-cli server");
    assert_eq!(output.status.code(), Some(2), "a command-line error");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--tls-key <FILE>"), "{error}");
}

#[test]
fn help_lists_the_tls_options() {
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
        "--tls-cert <FILE>",
        "--tls-key <FILE>",
        "SIGHUP",
        "CHAT_TLS_CERT",
    ] {
        assert!(
            server.contains(expected),
            "server --help lacks {expected:?}:\n{server}"
        );
    }
    let client = help("client");
    for expected in ["--tls", "--ca <FILE>", "--tls-name <NAME>", "CHAT_TLS_CA"] {
        assert!(
            client.contains(expected),
            "client --help lacks {expected:?}:\n{client}"
        );
    }
}
