//! Flows that keep asking whether they pass while something changes under them: fresh TCP
//! connections, UDP from fresh source ports, and packets on long-lived flows (one UDP socket,
//! one TCP connection). Every attempt is a [`Sample`]: when it started, when its answer was
//! known, and whether its payload came back unchanged.
//!
//! Each flow runs on its own thread inside its source pod's namespace, with a single-threaded
//! tokio runtime, so its sockets are made in that namespace.

use std::{
    net::SocketAddr,
    os::fd::OwnedFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use nix::sched::{CloneFlags, setns};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    task::JoinSet,
    time::{MissedTickBehavior, timeout},
};

use crate::lab::netns::Netns;

/// A long-lived TCP connection is replaced after this many messages: the lab's echo servers
/// serve a connection for 64 KiB and 120 s.
const KEPT_TCP_MESSAGES: u64 = 2_000;
const KEPT_TCP_AGE: Duration = Duration::from_secs(60);

/// What a flow's attempts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// A new TCP connection per attempt: connect, send, read the echo, close.
    NewTcp,
    /// A datagram from a new socket (a new source port) per attempt.
    NewUdp,
    /// Datagrams from one socket, one source port, for the whole run: an established flow.
    KeptUdp,
    /// Messages over one TCP connection (re-opened when it breaks or grows old).
    KeptTcp,
}

/// One flow to probe.
#[derive(Debug)]
pub struct Flow {
    /// For reports: `client -> server:8000/TCP new` and such.
    pub name: String,
    pub kind: FlowKind,
    pub destination: SocketAddr,
}

/// One attempt: between `start` and `end` (the echo, the failure, or the timeout) its
/// packets met the datapath; `passed` when the payload came back.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub start: Instant,
    pub end: Instant,
    pub passed: bool,
}

/// How often and how long.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Between attempts of one flow.
    pub every: Duration,
    /// An attempt whose echo has not come back by then failed.
    pub verdict_within: Duration,
    /// The flows stop on their own after this long, whatever the caller does.
    pub limit: Duration,
}

type FlowThread = thread::JoinHandle<anyhow::Result<Vec<Sample>>>;

/// Running flows; stopped by [`Prober::finish`] or on drop.
pub struct Prober {
    stop: Arc<AtomicBool>,
    threads: Vec<FlowThread>,
}

impl Prober {
    /// Starts every flow, each from its source namespace.
    pub fn start(flows: Vec<(Flow, &Netns)>, pace: Pace) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut prober = Self {
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        for (flow, source) in flows {
            let fd: OwnedFd = source
                .file()
                .try_clone()
                .context("duplicating the namespace fd")?
                .into();
            let stop = Arc::clone(&stop);
            let thread = thread::Builder::new()
                .name(format!("probe {}", flow.name))
                .spawn(move || -> anyhow::Result<Vec<Sample>> {
                    setns(&fd, CloneFlags::CLONE_NEWNET).context("entering the source pod")?;
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("a prober runtime")?;
                    runtime.block_on(run(&flow, pace, &stop))
                })
                .context("starting a prober thread")?;
            prober.threads.push(thread);
        }
        Ok(prober)
    }

    /// Stops the flows and returns each one's samples, in the order they were given.
    pub fn finish(mut self) -> anyhow::Result<Vec<Vec<Sample>>> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a prober thread panicked"))?
            })
            .collect()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            // Dropped on an error path: the samples are not wanted any more.
            drop(thread.join());
        }
    }
}

async fn run(flow: &Flow, pace: Pace, stop: &AtomicBool) -> anyhow::Result<Vec<Sample>> {
    let deadline = Instant::now() + pace.limit;
    let mut ticker = tokio::time::interval(pace.every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    let mut tasks: JoinSet<Sample> = JoinSet::new();
    let mut kept = Kept::default();
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        ticker.tick().await;
        seq += 1;
        match flow.kind {
            // New flows overlap: a denied one waits out its timeout while the next starts.
            FlowKind::NewTcp | FlowKind::NewUdp => {
                let (kind, to, within) = (flow.kind, flow.destination, pace.verdict_within);
                tasks.spawn(async move { attempt_new(kind, to, seq, within).await });
            }
            // One established flow: its attempts take turns.
            FlowKind::KeptUdp | FlowKind::KeptTcp => {
                samples.push(kept.attempt(flow, seq, pace.verdict_within).await);
            }
        }
        while let Some(done) = tasks.try_join_next() {
            samples.push(done.context("a probe task")?);
        }
    }
    while let Some(done) = tasks.join_next().await {
        samples.push(done.context("a probe task")?);
    }
    samples.sort_by_key(|s| s.start);
    Ok(samples)
}

/// Times one exchange: passed when it completed within `within`.
async fn timed(
    within: Duration,
    exchange: impl std::future::Future<Output = std::io::Result<()>>,
) -> Sample {
    let start = Instant::now();
    let passed = matches!(timeout(within, exchange).await, Ok(Ok(())));
    Sample {
        start,
        end: Instant::now(),
        passed,
    }
}

async fn attempt_new(kind: FlowKind, to: SocketAddr, seq: u64, within: Duration) -> Sample {
    let payload = seq.to_le_bytes();
    timed(within, async move {
        match kind {
            FlowKind::NewTcp => {
                let mut stream = TcpStream::connect(to).await?;
                echo_tcp(&mut stream, &payload).await
            }
            _ => {
                let socket = UdpSocket::bind(unspecified(to)).await?;
                socket.connect(to).await?;
                echo_udp(&socket, &payload).await
            }
        }
    })
    .await
}

/// The established flow's socket or connection, opened by its first attempt.
#[derive(Default)]
struct Kept {
    udp: Option<UdpSocket>,
    tcp: Option<(TcpStream, Instant, u64)>,
}

impl Kept {
    async fn attempt(&mut self, flow: &Flow, seq: u64, within: Duration) -> Sample {
        let payload = seq.to_le_bytes();
        let to = flow.destination;
        let mut broken = false;
        let sample = match flow.kind {
            FlowKind::KeptUdp => {
                timed(within, async {
                    if self.udp.is_none() {
                        let socket = UdpSocket::bind(unspecified(to)).await?;
                        socket.connect(to).await?;
                        self.udp = Some(socket);
                    }
                    match &self.udp {
                        Some(socket) => echo_udp(socket, &payload).await,
                        None => Err(std::io::ErrorKind::NotConnected.into()),
                    }
                })
                .await
            }
            _ => {
                let renew = self.tcp.as_ref().is_none_or(|(_, opened, sent)| {
                    *sent >= KEPT_TCP_MESSAGES || opened.elapsed() >= KEPT_TCP_AGE
                });
                if renew {
                    self.tcp = None;
                }
                let sample = timed(within, async {
                    if self.tcp.is_none() {
                        self.tcp = Some((TcpStream::connect(to).await?, Instant::now(), 0));
                    }
                    match &mut self.tcp {
                        Some((stream, _, sent)) => {
                            *sent += 1;
                            echo_tcp(stream, &payload).await
                        }
                        None => Err(std::io::ErrorKind::NotConnected.into()),
                    }
                })
                .await;
                // A message that did not come back leaves the stream out of step: the
                // next attempt opens a new connection.
                broken = !sample.passed;
                sample
            }
        };
        if broken {
            self.tcp = None;
        }
        sample
    }
}

async fn echo_tcp(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    stream.write_all(payload).await?;
    let mut echoed = vec![0u8; payload.len()];
    stream.read_exact(&mut echoed).await?;
    same(payload, &echoed)
}

/// Sends `payload` and waits for it to come back, skipping late echoes of earlier attempts.
async fn echo_udp(socket: &UdpSocket, payload: &[u8]) -> std::io::Result<()> {
    socket.send(payload).await?;
    let mut buf = [0u8; 64];
    loop {
        let n = socket.recv(&mut buf).await?;
        if buf.get(..n) == Some(payload) {
            return Ok(());
        }
    }
}

fn same(sent: &[u8], echoed: &[u8]) -> std::io::Result<()> {
    if sent == echoed {
        Ok(())
    } else {
        Err(std::io::Error::other("the echo differs from what was sent"))
    }
}

fn unspecified(to: SocketAddr) -> SocketAddr {
    if to.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        ([0, 0, 0, 0], 0).into()
    }
}
