//! TLS over loopback: certificates made with rcgen, files in a temporary
//! directory, every wait bounded.

use std::path::PathBuf;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::*;
use crate::{Listener, Network, TokioNetwork};

/// The longest any wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// A certificate authority and the files of what it signed.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    directory: tempfile::TempDir,
}

/// A certificate file and its key file.
struct Pair {
    certificate: PathBuf,
    key: PathBuf,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a fresh key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
            directory: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Writes the CA's certificate; returns its path.
    fn certificate_file(&self) -> PathBuf {
        let path = self.directory.path().join("ca.pem");
        std::fs::write(&path, self.issuer.pem()).expect("write the CA certificate");
        path
    }

    /// Signs a certificate for `name`; writes it and its key as `file`.pem
    /// and `file`.key.
    fn sign(&self, name: &str, file: &str) -> Pair {
        let key = KeyPair::generate().expect("a fresh key");
        let certificate = CertificateParams::new(vec![name.to_owned()])
            .expect("a valid name")
            .signed_by(&key, &self.issuer)
            .expect("signed");
        let pair = Pair {
            certificate: self.directory.path().join(format!("{file}.pem")),
            key: self.directory.path().join(format!("{file}.key")),
        };
        std::fs::write(&pair.certificate, certificate.pem()).expect("write the certificate");
        std::fs::write(&pair.key, key.serialize_pem()).expect("write the key");
        pair
    }
}

async fn tls_listener(pair: &Pair) -> (crate::TokioListener, String) {
    let config = TlsServerConfig::from_pem_files(&pair.certificate, &pair.key)
        .expect("a valid pair")
        .with_plaintext_refusal(b"speak TLS\n");
    let listener = TokioNetwork::default()
        .with_tls_server(config)
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound").to_string();
    (listener, addr)
}

fn tls_client(ca: &TestCa) -> TokioNetwork {
    let config = TlsClientConfig::with_root_pem_file(&ca.certificate_file())
        .expect("the CA file")
        .with_server_name("localhost")
        .expect("a valid name");
    TokioNetwork::default().with_tls_client(config)
}

#[tokio::test]
async fn accept_does_not_wait_for_the_handshake_and_either_half_can_drive_it() {
    let ca = TestCa::new("test CA");
    let (mut listener, addr) = tls_listener(&ca.sign("localhost", "server")).await;
    let _silent = TcpStream::connect(&addr).await.expect("connect");
    timeout(WAIT, listener.accept())
        .await
        .expect("accept returns while the client says nothing")
        .expect("accepted");

    let connecting = tokio::spawn({
        let network = tls_client(&ca);
        async move { network.connect(&addr).await }
    });
    let accepted = listener.accept().await.expect("accepted");
    // Each half in its own task, the reader polled first: the writer takes
    // over the socket's wake-ups, and the reader must still be woken.
    let mut reader = accepted.reader;
    let reading = tokio::spawn(async move {
        let mut line = [0u8; 5];
        reader.read_exact(&mut line).await.map(|_| line)
    });
    let mut writer = accepted.writer;
    let writing = tokio::spawn(async move { writer.write_all(b"hi\n").await });
    let mut client = timeout(WAIT, connecting)
        .await
        .expect("the handshake ends")
        .expect("the task ran")
        .expect("the handshake succeeded");
    let mut greeting = [0u8; 3];
    timeout(WAIT, client.reader.read_exact(&mut greeting))
        .await
        .expect("the greeting arrives")
        .expect("read");
    assert_eq!(&greeting, b"hi\n");
    timeout(WAIT, writing)
        .await
        .expect("written")
        .expect("the task ran")
        .expect("write");
    client.writer.write_all(b"ping\n").await.expect("write");
    let line = timeout(WAIT, reading)
        .await
        .expect("the reader was woken")
        .expect("the task ran")
        .expect("read");
    assert_eq!(&line, b"ping\n");
}

#[tokio::test]
async fn a_plain_client_gets_the_refusal_and_the_server_reads_a_clean_end() {
    let ca = TestCa::new("test CA");
    let (mut listener, addr) = tls_listener(&ca.sign("localhost", "server")).await;
    let mut plain = TcpStream::connect(&addr).await.expect("connect");
    plain
        .write_all(b"{\"type\":\"heartbeat\"}\n")
        .await
        .expect("write");
    let mut accepted = listener.accept().await.expect("accepted");
    let serving = tokio::spawn(async move {
        let mut input = Vec::new();
        accepted.reader.read_to_end(&mut input).await.map(|_| input)
    });
    let mut refusal = Vec::new();
    timeout(WAIT, plain.read_to_end(&mut refusal))
        .await
        .expect("the server closes its side")
        .expect("read");
    assert_eq!(refusal, b"speak TLS\n");
    drop(plain);
    let input = timeout(WAIT, serving)
        .await
        .expect("the server side ends")
        .expect("the task ran")
        .expect("a clean end of stream");
    assert!(
        input.is_empty(),
        "the chat sees none of a plain client's bytes"
    );
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_not_trusted() {
    let ca = TestCa::new("test CA");
    let (mut listener, addr) = tls_listener(&ca.sign("localhost", "server")).await;
    let serving = tokio::spawn(async move {
        let mut accepted = listener.accept().await.expect("accepted");
        let _ = accepted.reader.read_u8().await;
    });
    let other = TestCa::new("another CA");
    let refused = timeout(WAIT, tls_client(&other).connect(&addr))
        .await
        .expect("refused in time")
        .err()
        .expect("refused");
    assert_eq!(
        refused.to_string(),
        format!(
            "the certificate of {addr} is not trusted: it is not signed by a trusted authority \
             (a private CA can be given with --ca FILE)"
        )
    );
    timeout(WAIT, serving)
        .await
        .expect("the server side ends")
        .expect("ran");
}

#[tokio::test]
async fn a_ca_certificate_served_as_the_servers_own_is_explained() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("a valid name");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("a fresh key");
    let certificate = params.self_signed(&key).expect("self-signed");
    let pair = Pair {
        certificate: directory.path().join("self.pem"),
        key: directory.path().join("self.key"),
    };
    std::fs::write(&pair.certificate, certificate.pem()).expect("write the certificate");
    std::fs::write(&pair.key, key.serialize_pem()).expect("write the key");
    let (mut listener, addr) = tls_listener(&pair).await;
    let serving = tokio::spawn(async move {
        let mut accepted = listener.accept().await.expect("accepted");
        let _ = accepted.reader.read_u8().await;
    });
    let client = TlsClientConfig::with_root_pem_file(&pair.certificate)
        .expect("the certificate as a root")
        .with_server_name("localhost")
        .expect("a valid name");
    let refused = timeout(
        WAIT,
        TokioNetwork::default()
            .with_tls_client(client)
            .connect(&addr),
    )
    .await
    .expect("refused in time")
    .err()
    .expect("refused");
    assert_eq!(
        refused.to_string(),
        format!(
            "the certificate of {addr} is not trusted: it is a CA certificate, not a server's \
             (a self-signed server certificate needs basicConstraints CA:FALSE)"
        )
    );
    timeout(WAIT, serving)
        .await
        .expect("the server side ends")
        .expect("ran");
}

#[tokio::test]
async fn a_plain_server_is_told_apart_from_a_tls_one() {
    let mut listener = TokioNetwork::default()
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound").to_string();
    let serving = tokio::spawn(async move {
        let mut accepted = listener.accept().await.expect("accepted");
        let _ = accepted.reader.read_u8().await;
        let _ = accepted.writer.write_all(b"{\"type\":\"error\"}\n").await;
    });
    let ca = TestCa::new("test CA");
    let refused = timeout(WAIT, tls_client(&ca).connect(&addr))
        .await
        .expect("refused in time")
        .err()
        .expect("refused");
    assert!(
        matches!(refused, NetError::TlsNotAnswered { .. }),
        "{refused}"
    );
    timeout(WAIT, serving)
        .await
        .expect("the server side ends")
        .expect("ran");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_naming_both_files() {
    let ca = TestCa::new("test CA");
    let first = ca.sign("localhost", "first");
    let second = ca.sign("localhost", "second");
    let error =
        TlsServerConfig::from_pem_files(&first.certificate, &second.key).expect_err("mismatched");
    assert_eq!(
        error.to_string(),
        format!(
            "the private key in {} does not match the certificate in {}",
            second.key.display(),
            first.certificate.display()
        )
    );
}

#[test]
fn a_failed_reload_keeps_the_pair_in_use() {
    let ca = TestCa::new("test CA");
    let first = ca.sign("localhost", "first");
    let config = TlsServerConfig::from_pem_files(&first.certificate, &first.key).expect("valid");
    let before = config.current();
    let missing = ca.directory.path().join("missing.pem");
    let error = config
        .reload_from_pem_files(&missing, &first.key)
        .expect_err("no such file");
    assert!(
        matches!(error, NetError::TlsFileUnreadable { .. }),
        "{error}"
    );
    assert!(
        Arc::ptr_eq(&before, &config.current()),
        "the old pair stays"
    );

    let second = ca.sign("localhost", "second");
    config
        .reload_from_pem_files(&second.certificate, &second.key)
        .expect("a valid new pair");
    assert!(
        !Arc::ptr_eq(&before, &config.current()),
        "the new pair is in use"
    );
}

#[test]
fn host_part_takes_the_host_of_each_address_form() {
    assert_eq!(host_part("localhost:9999"), "localhost");
    assert_eq!(host_part("127.0.0.1:9999"), "127.0.0.1");
    assert_eq!(host_part("[::1]:9999"), "::1");
    assert_eq!(host_part("example.org"), "example.org");
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let missing = Path::new("/nonexistent/chat-test/cert.pem");
    let error = TlsServerConfig::from_pem_files(missing, missing).expect_err("no such file");
    let message = error.to_string();
    assert!(
        message
            .starts_with("cannot read the TLS certificate file /nonexistent/chat-test/cert.pem: "),
        "{message}"
    );
}

#[test]
fn a_file_without_pem_sections_is_refused_by_name() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("not-pem.txt");
    std::fs::write(&path, "not a certificate\n").expect("write a temporary file");
    let error = TlsClientConfig::with_root_pem_file(&path).expect_err("no PEM");
    assert_eq!(
        error.to_string(),
        format!(
            "the TLS CA certificate file {} holds no PEM CA certificate \
             (a \"-----BEGIN ...\" section)",
            path.display()
        )
    );
}

#[test]
fn an_invalid_server_name_is_refused() {
    let error = server_name("not a name!").expect_err("invalid");
    assert!(matches!(error, NetError::TlsNameInvalid { .. }));
}
