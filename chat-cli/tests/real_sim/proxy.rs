//! The fault-injecting TCP proxy between one client host and the server:
//! real TCP on both sides, with the simulation's link faults done to the
//! bytes in between.
//!
//! Real TCP retransmits, so a fault here is what a network does to a real
//! connection rather than turmoil's lost segments:
//! - hold: nothing is forwarded either way (the proxy stops reading, so the
//!   kernels' buffers fill and the senders block); at the end everything
//!   flows again, late;
//! - cut (a partition): nothing is forwarded and every new connection is
//!   reset at once; at the end every connection is reset (its peers have
//!   given up on it long before);
//! - one-way cut: one direction stops; at the end every connection is reset;
//! - stop reading (the client's fault): the server-to-client direction
//!   stops, the client's own writes (its heartbeats) go on;
//! - delay (a latency spike): each piece waits up to the spike's latency
//!   before it is forwarded, in order;
//! - failure: each piece forwarded resets its connection with the given
//!   chance.
//!
//! A reset is a real one (SO_LINGER 0, then close: the peer reads
//! ECONNRESET), on both sides.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::SmallRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The longest wait for the server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Bytes read at once in each direction.
const CHUNK_BYTES: usize = 16 * 1024;

/// The faults currently on one link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkFaults {
    /// Nothing forwarded either way, then delivered.
    pub held: bool,
    /// Partitioned both ways: nothing forwarded, new connections reset.
    pub cut: bool,
    /// Nothing forwarded from the server to the client.
    pub cut_to_client: bool,
    /// Nothing forwarded from the client to the server.
    pub cut_to_server: bool,
    /// The client does not read: nothing forwarded to it.
    pub frozen: bool,
    /// Each piece waits up to this long.
    pub delay_max: Duration,
    /// Chance per thousand that forwarding a piece resets its connection.
    pub failure_per_mille: u32,
    /// Bumped to reset every open connection.
    pub resets: u64,
}

/// Which way bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

impl LinkFaults {
    fn paused(&self, direction: Direction) -> bool {
        self.held
            || self.cut
            || match direction {
                Direction::ToServer => self.cut_to_server,
                Direction::ToClient => self.cut_to_client || self.frozen,
            }
    }
}

/// What the proxy did, for the run's summary (and to show that the faults
/// reached real connections).
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Connections accepted from the client.
    pub connections: AtomicU64,
    /// Connections reset: refused during a cut or while the server was
    /// down, reset at a cut's end, or failed at random.
    pub resets: AtomicU64,
    /// Pieces forwarded after waiting for a hold, cut or stop to end.
    pub pieces_held: AtomicU64,
    /// Pieces forwarded late for a latency spike.
    pub pieces_delayed: AtomicU64,
}

/// One client host's link to the server.
pub struct Proxy {
    /// Where the client connects.
    pub addr: SocketAddr,
    /// The link's faults; the run's schedule changes them.
    pub faults: watch::Sender<LinkFaults>,
    /// What it did.
    pub counts: Arc<ProxyCounts>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to the
    /// server at `upstream` (`None` while it is down: connections are reset).
    pub async fn start(
        upstream: watch::Receiver<Option<SocketAddr>>,
        seed: u64,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (faults, _) = watch::channel(LinkFaults::default());
        let counts = Arc::new(ProxyCounts::default());
        let mut tasks = JoinSet::new();
        let link = Link {
            faults: faults.clone(),
            upstream,
            counts: counts.clone(),
        };
        tasks.spawn(accept_loop(listener, link, seed));
        Ok(Proxy {
            addr,
            faults,
            counts,
            tasks,
        })
    }

    /// Changes the link's faults.
    pub fn change(&self, change: impl FnOnce(&mut LinkFaults)) {
        self.faults.send_modify(change);
    }

    /// Stops forwarding: every connection is closed.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

/// What every connection of a link shares.
#[derive(Clone)]
struct Link {
    faults: watch::Sender<LinkFaults>,
    upstream: watch::Receiver<Option<SocketAddr>>,
    counts: Arc<ProxyCounts>,
}

async fn accept_loop(listener: TcpListener, link: Link, seed: u64) {
    let mut connections = JoinSet::new();
    let mut number = 0u64;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors, say: the connection waits in the
            // backlog meanwhile.
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        number += 1;
        link.counts.connections.fetch_add(1, Ordering::Relaxed);
        let rng = SmallRng::seed_from_u64(seed ^ number.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        connections.spawn(serve_connection(client, link.clone(), rng));
        // Forget the connections that ended.
        while connections.try_join_next().is_some() {}
    }
}

async fn serve_connection(mut client: TcpStream, link: Link, mut rng: SmallRng) {
    let at_start = link.faults.borrow().clone();
    let upstream = *link.upstream.borrow();
    let server = match (at_start.cut, upstream) {
        (false, Some(addr)) => tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .ok()
            .and_then(Result::ok),
        _ => None,
    };
    let Some(mut server) = server else {
        reset(&client, None, &link.counts);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let seeds = (rng.random(), rng.random());
    let ending = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let to_server = Pump::new(&link, Direction::ToServer, seeds.0);
        let to_client = Pump::new(&link, Direction::ToClient, seeds.1);
        let resets = link.faults.subscribe();
        forward(
            to_server.run(client_read, server_write),
            to_client.run(server_read, client_write),
            until_reset(resets, at_start.resets),
        )
        .await
    };
    if ending == Ending::Reset {
        reset(&client, Some(&server), &link.counts);
    }
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Both directions closed (or broke).
    Closed,
    /// The proxy resets it.
    Reset,
}

/// Runs both directions until both close, or until either (or the link's
/// schedule) asks for a reset.
async fn forward(
    to_server: impl Future<Output = Ending>,
    to_client: impl Future<Output = Ending>,
    reset: impl Future<Output = ()>,
) -> Ending {
    tokio::pin!(to_server, to_client, reset);
    let (mut server_done, mut client_done) = (false, false);
    loop {
        let ended = tokio::select! {
            biased;
            () = &mut reset => return Ending::Reset,
            ended = &mut to_server, if !server_done => {
                server_done = true;
                ended
            }
            ended = &mut to_client, if !client_done => {
                client_done = true;
                ended
            }
        };
        if ended == Ending::Reset {
            return Ending::Reset;
        }
        if server_done && client_done {
            return Ending::Closed;
        }
    }
}

/// Completes when the link's reset count moves past `seen`.
async fn until_reset(mut faults: watch::Receiver<LinkFaults>, seen: u64) {
    if faults
        .wait_for(|faults| faults.resets != seen)
        .await
        .is_err()
    {
        // The schedule is gone (the run ended): the proxy is being stopped.
        std::future::pending::<()>().await;
    }
}

fn reset(client: &TcpStream, server: Option<&TcpStream>, counts: &ProxyCounts) {
    counts.resets.fetch_add(1, Ordering::Relaxed);
    for stream in std::iter::once(client).chain(server) {
        // Closing with a zero linger sends a reset instead of a FIN.
        let _ = stream.set_zero_linger();
    }
}

/// One direction of one connection.
struct Pump {
    direction: Direction,
    faults: watch::Receiver<LinkFaults>,
    counts: Arc<ProxyCounts>,
    rng: SmallRng,
    /// When the last piece was due (pieces never overtake each other).
    last_due: Instant,
}

impl Pump {
    fn new(link: &Link, direction: Direction, seed: u64) -> Pump {
        Pump {
            direction,
            faults: link.faults.subscribe(),
            counts: link.counts.clone(),
            rng: SmallRng::seed_from_u64(seed),
            last_due: Instant::now(),
        }
    }

    async fn run(mut self, mut from: ReadHalf<'_>, mut to: WriteHalf<'_>) -> Ending {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            if !self.wait_until_flowing().await {
                return Ending::Closed;
            }
            let read = match from.read(&mut buffer).await {
                Ok(0) => {
                    // A half-close: pass it on, and let the other way go on.
                    let _ = to.shutdown().await;
                    return Ending::Closed;
                }
                Ok(read) => read,
                Err(_) => return Ending::Reset,
            };
            let faults = self.faults.borrow().clone();
            if faults.failure_per_mille > 0
                && self.rng.random_range(0..1000) < faults.failure_per_mille
            {
                return Ending::Reset;
            }
            self.delay(faults.delay_max).await;
            if !self.wait_until_flowing().await {
                return Ending::Closed;
            }
            if to.write_all(&buffer[..read]).await.is_err() {
                return Ending::Reset;
            }
        }
    }

    /// Waits while this direction is paused; false if the link is gone.
    async fn wait_until_flowing(&mut self) -> bool {
        let direction = self.direction;
        if !self.faults.borrow().paused(direction) {
            return true;
        }
        self.counts.pieces_held.fetch_add(1, Ordering::Relaxed);
        self.faults
            .wait_for(|faults| !faults.paused(direction))
            .await
            .is_ok()
    }

    async fn delay(&mut self, delay_max: Duration) {
        if delay_max.is_zero() {
            return;
        }
        let wait = self.rng.random_range(Duration::ZERO..=delay_max);
        let due = (Instant::now() + wait).max(self.last_due);
        self.last_due = due;
        self.counts.pieces_delayed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep_until(due).await;
    }
}
