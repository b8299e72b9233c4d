//! Starting and stopping the servers under test, and reading their CPU time
//! and memory from /proc.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chat_net::{Listener, Network, TokioNetwork};
use tokio::time::Instant;

use super::tls::TlsFiles;
use super::wire::Route;

/// How often [`Server::settled_resident_bytes`] reads the server's memory.
const SETTLE_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Readings of resident memory this close (in bytes) count as settled.
const SETTLE_TOLERANCE_BYTES: u64 = 64 * 1024;

/// Longest wait for the server's memory to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which protocol a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Ours (newline-delimited JSON).
    Chat,
    /// IRC (NICK, USER, JOIN, PRIVMSG, PING/PONG).
    Irc,
}

/// A running server under test.
pub struct Server {
    /// What it speaks.
    pub dialect: Dialect,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// How clients reach it: plain TCP, or TLS trusting its certificate.
    network: TokioNetwork,
    child: Child,
    _workdir: Option<TempDir>,
}

/// A folder removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How a load generator's member reaches it.
    pub fn route(&self) -> Route {
        Route {
            network: self.network.clone(),
            addr: self.addr.clone(),
            dialect: self.dialect,
        }
    }

    /// Resident memory once it stopped changing (three readings in a row
    /// within [`SETTLE_TOLERANCE_BYTES`]), or after [`SETTLE_TIMEOUT`]:
    /// what connections hold, after the allocator gave back what was freed.
    pub async fn settled_resident_bytes(&self) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        let mut previous = self.resident_bytes()?;
        let mut steady = 0;
        while steady < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(SETTLE_POLL_INTERVAL).await;
            let now = self.resident_bytes()?;
            steady = if now.abs_diff(previous) <= SETTLE_TOLERANCE_BYTES {
                steady + 1
            } else {
                0
            };
            previous = now;
        }
        Ok(previous)
    }

    /// Resident memory, in bytes.
    pub fn resident_bytes(&self) -> Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kib * 1024)
    }

    /// User plus system CPU time so far.
    pub fn cpu_time(&self) -> Result<Duration> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("malformed /proc stat")?
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields
            .get(11)
            .and_then(|utime| utime.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|stime| stime.parse::<u64>().ok())
                .unwrap_or(0);
        let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100)
            .max(1);
        Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
    }

    /// Stops the server by its process id and waits for it.
    pub fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            // Polling an exit status: there is no event to wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Kills the server with SIGKILL (no shutdown at all: a crash) and
    /// waits for it.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill().context("kill the server")?;
        self.child.wait().context("wait for the killed server")?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on loopback, through chat-net (bound, read, released).
async fn free_port() -> Result<u16> {
    let listener = TokioNetwork::default().bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

/// How often [`wait_listening`] tries to connect.
const LISTEN_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Longest wait for a server to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until something accepts connections on `addr` (polling, with a
/// bound), failing early if the server exits.
async fn wait_listening(addr: &str, child: &mut Child, name: &str) -> Result<()> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    let network = TokioNetwork::default();
    while Instant::now() < deadline {
        if network.connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited with {status} before listening on {addr}");
        }
        tokio::time::sleep(LISTEN_POLL_INTERVAL).await;
    }
    bail!("{name} did not listen on {addr} within {LISTEN_TIMEOUT:?}")
}

/// Where our server keeps its data.
#[derive(Clone, Debug)]
pub enum Keeping {
    /// In a fresh data directory of its own, removed when it stops.
    FreshDirectory,
    /// In this data directory, which outlives the server (recovery runs).
    Directory(PathBuf),
    /// In memory only (`--in-memory`).
    InMemory,
}

/// How to start our server.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Where it keeps its data.
    pub keeping: Keeping,
    /// Its certificate, to speak TLS.
    pub tls: Option<Arc<TlsFiles>>,
    /// Options added after the bench's own.
    pub extra: Vec<String>,
}

impl Launch {
    /// Our server with its defaults: durable, in a fresh directory.
    pub fn durable() -> Self {
        Self {
            keeping: Keeping::FreshDirectory,
            tls: None,
            extra: Vec::new(),
        }
    }

    /// Our server in memory only.
    pub fn in_memory() -> Self {
        Self {
            keeping: Keeping::InMemory,
            ..Self::durable()
        }
    }
}

/// Starts `chat-cli server` (this very binary) on a free port as `launch`
/// says; with its defaults otherwise, but for the two limits a load
/// generator on one address must lift.
pub fn start_ours(launch: &Launch) -> Result<Server> {
    let exe = std::env::current_exe().context("find chat-cli")?;
    let workdir = match launch.keeping {
        Keeping::FreshDirectory => Some(workdir("ours")?),
        Keeping::Directory(_) | Keeping::InMemory => None,
    };
    let mut command = Command::new(exe);
    // The generator's talkers send as fast as the server takes them, from
    // one address: our defaults would throttle them (a message rate per
    // connection) and refuse most of them (connections per address).
    command
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(["--message-rate", "0"])
        .args(["--connections-per-address-max", "100000"]);
    match (&launch.keeping, &workdir) {
        (Keeping::FreshDirectory, Some(dir)) => {
            command.arg("--data-dir").arg(dir.0.join("chat-data"));
        }
        (Keeping::Directory(dir), _) => {
            command.arg("--data-dir").arg(dir);
        }
        _ => {
            command.arg("--in-memory");
        }
    }
    if let Some(tls) = &launch.tls {
        command.arg("--tls-cert").arg(&tls.certificate);
        command.arg("--tls-key").arg(&tls.key);
    }
    command.args(&launch.extra);
    let (child, addr) = spawn_ours(command)?;
    let network = match &launch.tls {
        Some(tls) => TokioNetwork::default().with_tls_client(tls.client.clone()),
        None => TokioNetwork::default(),
    };
    Ok(Server {
        dialect: Dialect::Chat,
        addr,
        network,
        child,
        _workdir: workdir,
    })
}

/// Spawns our server and reads its log until it says where it listens.
/// (Blocking reads, before the run begins: nothing else is running.)
fn spawn_ours(mut command: Command) -> Result<(Child, String)> {
    let mut child = command
        .env("RUST_LOG", "warn,chat_core=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start chat-cli server")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .context("the server exited before listening")??;
        if let Some((_, rest)) = line.split_once("Listening on ") {
            break rest.trim_end_matches('.').to_owned();
        }
    };
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((child, addr))
}

/// Fills a peer config template from `../shared/peers`.
fn render_config(template: &Path, port: u16, dir: &Path) -> Result<String> {
    let text =
        fs::read_to_string(template).with_context(|| format!("read {}", template.display()))?;
    Ok(text
        .replace("PORT", &port.to_string())
        .replace("RUNDIR", &dir.display().to_string())
        .replace("CONFDIR", &dir.display().to_string()))
}

/// A fresh folder for `name` in the system's temporary folder.
pub fn workdir(name: &str) -> Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("chat-bench-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("conf.d"))?;
    fs::write(dir.join("motd.txt"), "peer benchmark\n")?;
    Ok(TempDir(dir))
}

/// Starts an IRC peer in the foreground: its config rendered from the
/// shared template into a fresh folder, then `program` with `arguments`
/// (given the config's path).
async fn start_peer(
    program: &str,
    peers: &Path,
    arguments: impl Fn(&Path) -> Vec<String>,
) -> Result<Server> {
    let port = free_port().await?;
    let dir = workdir(program)?;
    let config = dir.0.join(format!("{program}.conf"));
    fs::write(
        &config,
        render_config(&peers.join(format!("{program}.conf")), port, &dir.0)?,
    )?;
    let mut child = Command::new(program)
        .args(arguments(&config))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {program} (apt-get install {program})"))?;
    let addr = format!("127.0.0.1:{port}");
    wait_listening(&addr, &mut child, program).await?;
    Ok(Server {
        dialect: Dialect::Irc,
        addr,
        network: TokioNetwork::default(),
        child,
        _workdir: Some(dir),
    })
}

/// Starts ngIRCd with the shared config.
pub async fn start_ngircd(peers: &Path) -> Result<Server> {
    start_peer("ngircd", peers, |config| {
        vec![
            "-n".into(),
            "-p".into(),
            "-f".into(),
            config.display().to_string(),
        ]
    })
    .await
}

/// Starts InspIRCd with the shared config.
pub async fn start_inspircd(peers: &Path) -> Result<Server> {
    start_peer("inspircd", peers, |config| {
        vec![
            "--nofork".into(),
            "--runasroot".into(),
            format!("--config={}", config.display()),
        ]
    })
    .await
}
