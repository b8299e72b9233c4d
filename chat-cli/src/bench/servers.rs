//! Starting and stopping the servers under test, and reading their CPU time
//! and memory from /proc.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

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
    child: Child,
    _workdir: Option<TempDir>,
}

/// A folder removed on drop.
struct TempDir(PathBuf);

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
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on loopback (bound, read, released).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: &str, child: &mut Child, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited with {status} before listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{name} did not listen on {addr} within 20 s")
}

/// Starts `chat-cli server` (this very binary) with its defaults, on a free
/// port: keeping its data in a fresh directory of its own (the default is
/// durable), or in memory only.
pub fn start_ours(durable: bool) -> Result<Server> {
    let exe = std::env::current_exe().context("find chat-cli")?;
    let workdir = workdir(if durable { "ours" } else { "ours-memory" })?;
    let data_dir = workdir.0.join("chat-data");
    let keeping: Vec<&std::ffi::OsStr> = if durable {
        vec!["--data-dir".as_ref(), data_dir.as_os_str()]
    } else {
        vec!["--in-memory".as_ref()]
    };
    let mut child = Command::new(exe)
        // The generator's talkers send as fast as the server takes them,
        // from one address: our defaults would throttle them (a message
        // rate per connection) and refuse most of them (connections per
        // address). Everything else stays at its default.
        .args(["server", "--listen", "127.0.0.1:0"])
        .args([
            "--message-rate",
            "0",
            "--connections-per-address-max",
            "100000",
        ])
        .args(keeping)
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
    Ok(Server {
        dialect: Dialect::Chat,
        addr,
        child,
        _workdir: Some(workdir),
    })
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

fn workdir(name: &str) -> Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("chat-bench-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("conf.d"))?;
    fs::write(dir.join("motd.txt"), "peer benchmark\n")?;
    Ok(TempDir(dir))
}

/// Starts an IRC peer in the foreground: its config rendered from the
/// shared template into a fresh folder, then `program` with `arguments`
/// (given the config's path).
fn start_peer(
    program: &str,
    peers: &Path,
    arguments: impl Fn(&Path) -> Vec<String>,
) -> Result<Server> {
    let port = free_port()?;
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
    wait_listening(&addr, &mut child, program)?;
    Ok(Server {
        dialect: Dialect::Irc,
        addr,
        child,
        _workdir: Some(dir),
    })
}

/// Starts ngIRCd with the shared config.
pub fn start_ngircd(peers: &Path) -> Result<Server> {
    start_peer("ngircd", peers, |config| {
        vec![
            "-n".into(),
            "-p".into(),
            "-f".into(),
            config.display().to_string(),
        ]
    })
}

/// Starts InspIRCd with the shared config.
pub fn start_inspircd(peers: &Path) -> Result<Server> {
    start_peer("inspircd", peers, |config| {
        vec![
            "--nofork".into(),
            "--runasroot".into(),
            format!("--config={}", config.display()),
        ]
    })
}
