//! A private certificate authority and a server certificate made at run
//! time (rcgen), so that `chat-cli bench --tls-scenarios` can measure our
//! server over TLS without any file from outside: the server gets the pair,
//! the generator trusts only the CA, through chat-net's
//! `TokioNetwork::with_tls_client`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chat_net::TlsClientConfig;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// The name in the server's certificate, which the generator checks.
const SERVER_NAME: &str = "localhost";

/// The server's certificate and key files, and the generator's trust.
#[derive(Debug)]
pub struct TlsFiles {
    /// The server's certificate (PEM), signed by the private CA.
    pub certificate: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// Trusts the private CA only, and checks the name [`SERVER_NAME`].
    pub client: TlsClientConfig,
}

impl TlsFiles {
    /// Makes a CA and a server certificate for `localhost` and 127.0.0.1 in
    /// `directory` (which must exist).
    pub fn generate(directory: &Path) -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "chat bench CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let names = vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()];
        let certificate = CertificateParams::new(names)?.signed_by(&key, &ca)?;
        let files = |name: &str| directory.join(name);
        fs::write(files("ca.pem"), ca.pem()).context("write the CA certificate")?;
        fs::write(files("server.pem"), certificate.pem()).context("write the certificate")?;
        fs::write(files("server.key"), key.serialize_pem()).context("write the key")?;
        let client =
            TlsClientConfig::with_root_pem_file(&files("ca.pem"))?.with_server_name(SERVER_NAME)?;
        Ok(Self {
            certificate: files("server.pem"),
            key: files("server.key"),
            client,
        })
    }
}
