//! TLS for `chat-cli server` and `chat-cli client`: the options, the
//! network built from them, and reloading the server's certificate on
//! SIGHUP.
//!
//! TLS itself lives in chat-net, below the `Network` seam; this module only
//! turns options into chat-net's configurations, so that the chat's code is
//! the same with and without TLS (and compiled once).

use std::path::PathBuf;

use chat_core::protocol::{self, ErrorCode, ServerFrame};
use chat_net::{NetError, TlsClientConfig, TlsServerConfig, TokioNetwork};
use clap::Args;
use clap::builder::BoolishValueParser;

/// What a plain-TCP client that reached a TLS port is told, as an error
/// frame the existing client shows.
const PLAINTEXT_REFUSAL: &str = "this server speaks TLS: connect with --tls";

/// TLS options of `chat-cli server`.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct ServerTlsArgs {
    /// Speak TLS, with this certificate chain (PEM, the server's certificate
    /// first). Needs --tls-key. Both files are read again on SIGHUP
    /// (`kill -HUP PID`): new connections get the new pair, open ones keep
    /// theirs; a bad new pair is logged and the old one kept. A client's
    /// handshake must end within --heartbeat-timeout.
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The server's TLS configuration and the files it came from.
pub struct ServerTls {
    config: TlsServerConfig,
    certificate: PathBuf,
    key: PathBuf,
}

impl ServerTlsArgs {
    /// Reads the certificate and key, if given.
    pub fn load(&self) -> Result<Option<ServerTls>, NetError> {
        let (Some(certificate), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            // clap's `requires` makes it both or neither.
            return Ok(None);
        };
        let refusal = protocol::encode(&ServerFrame::error(ErrorCode::BadFrame, PLAINTEXT_REFUSAL));
        let config =
            TlsServerConfig::from_pem_files(certificate, key)?.with_plaintext_refusal(&refusal);
        tracing::info!(
            "Speaking TLS with the certificate in {} (reloaded on SIGHUP).",
            certificate.display()
        );
        Ok(Some(ServerTls {
            config,
            certificate: certificate.clone(),
            key: key.clone(),
        }))
    }
}

/// The network a server listens on: with TLS when configured.
pub fn server_network(tls: Option<&ServerTls>) -> TokioNetwork {
    match tls {
        Some(tls) => TokioNetwork::default().with_tls_server(tls.config.clone()),
        None => TokioNetwork::default(),
    }
}

/// Watches for SIGHUP from now on, so that it no longer ends the process
/// (its default), and reloads the certificate on each; without TLS there is
/// nothing to reload, which is logged. The task runs until aborted.
#[cfg(unix)]
pub fn reload_on_hangup(tls: Option<ServerTls>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!("Cannot watch for SIGHUP ({error}); nothing can be reloaded.");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            reload(tls.as_ref());
        }
    }))
}

/// Other systems have no SIGHUP.
#[cfg(not(unix))]
pub fn reload_on_hangup(_tls: Option<ServerTls>) -> Option<tokio::task::JoinHandle<()>> {
    None
}

/// Reads the pair again. The files are small, so this runs on the runtime
/// thread; a failure keeps the pair in use.
#[cfg_attr(not(unix), allow(dead_code))]
fn reload(tls: Option<&ServerTls>) {
    let Some(tls) = tls else {
        tracing::info!("SIGHUP received: nothing to reload without TLS; still serving.");
        return;
    };
    match tls.config.reload_from_pem_files(&tls.certificate, &tls.key) {
        Ok(()) => tracing::info!(
            "SIGHUP received: reloaded the TLS certificate from {}; new connections use it, \
             open ones keep theirs.",
            tls.certificate.display()
        ),
        Err(error) => tracing::warn!(
            "SIGHUP received: cannot reload the TLS certificate: {error}; keeping the previous one."
        ),
    }
}

/// TLS options of `chat-cli client`.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct ClientTlsArgs {
    /// Connect with TLS, trusting the system's root certificates
    /// (SSL_CERT_FILE or SSL_CERT_DIR point elsewhere).
    #[arg(long, env = "CHAT_TLS", value_parser = BoolishValueParser::new())]
    tls: bool,

    /// Trust only this CA certificate (PEM), for a server whose certificate
    /// a private CA signed. Implies --tls.
    #[arg(long, env = "CHAT_TLS_CA", value_name = "FILE")]
    ca: Option<PathBuf>,

    /// Check the server's certificate for NAME instead of the host part of
    /// --server (for example `localhost` when connecting to 127.0.0.1).
    /// Implies --tls.
    #[arg(long, env = "CHAT_TLS_NAME", value_name = "NAME")]
    tls_name: Option<String>,
}

impl ClientTlsArgs {
    /// The network the client connects over: with TLS when asked for.
    pub fn network(&self) -> Result<TokioNetwork, NetError> {
        if !self.tls && self.ca.is_none() && self.tls_name.is_none() {
            return Ok(TokioNetwork::default());
        }
        let config = match &self.ca {
            Some(ca) => TlsClientConfig::with_root_pem_file(ca)?,
            None => TlsClientConfig::with_system_roots()?,
        };
        let config = match &self.tls_name {
            Some(name) => config.with_server_name(name)?,
            None => config,
        };
        Ok(TokioNetwork::default().with_tls_client(config))
    }
}
