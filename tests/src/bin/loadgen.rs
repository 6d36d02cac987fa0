//! Bounded load generator for `cargo xtask bench`, run inside a lab pod's namespace
//! (`ip netns exec`). Every mode stops after `--seconds` at most and prints one JSON line.
//!
//! - `tcp-server --port P`: accepts, reads a request, writes the same bytes back, closes.
//! - `tcp --to ADDR`: short request/response connections, each on a new source port, as fast
//!   as `--threads` threads can; counts completed ones.
//! - `udp-sink --port P`: counts datagrams; stops `--idle-ms` after the last one.
//! - `udp --to ADDR`: sends small datagrams as fast as it can.
//! - `udp-echo --port P`: returns every datagram to its sender (the control-plane prober's peer).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

/// Payload of a TCP request and of a UDP datagram: small, as the bench asks.
const PAYLOAD: &[u8; 32] = b"palisade-bench-request-32-bytes!";
/// A connection attempt that takes longer than this counts as failed (a drop, not a reject).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Hard ceiling on any mode's run time, whatever `--seconds` says.
const MAX_SECONDS: f64 = 120.0;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// How long to run (servers: the most they stay up).
    #[arg(long, global = true, default_value_t = 1.0)]
    seconds: f64,
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
}

#[derive(Subcommand)]
enum Mode {
    TcpServer {
        #[arg(long)]
        port: u16,
    },
    Tcp {
        #[arg(long)]
        to: SocketAddr,
    },
    UdpSink {
        #[arg(long)]
        port: u16,
        /// Stop this long after the last datagram once some arrived.
        #[arg(long, default_value_t = 300)]
        idle_ms: u64,
    },
    Udp {
        #[arg(long)]
        to: SocketAddr,
    },
    UdpEcho {
        #[arg(long)]
        port: u16,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let limit = Duration::from_secs_f64(cli.seconds.clamp(0.01, MAX_SECONDS));
    let threads = cli.threads.clamp(1, 64);
    match cli.mode {
        Mode::TcpServer { port } => tcp_server(port, limit, threads),
        Mode::Tcp { to } => tcp_client(to, limit, threads),
        Mode::UdpSink { port, idle_ms } => udp_sink(port, limit, Duration::from_millis(idle_ms)),
        Mode::Udp { to } => udp_client(to, limit, threads),
        Mode::UdpEcho { port } => udp_echo(port, limit),
    }
}

fn tcp_server(port: u16, limit: Duration, threads: usize) -> Result<()> {
    let listener =
        TcpListener::bind(("0.0.0.0", port)).with_context(|| format!("binding TCP {port}"))?;
    // Non-blocking accept, so every thread sees the deadline.
    listener
        .set_nonblocking(true)
        .context("non-blocking listener")?;
    let deadline = Instant::now() + limit;
    let served = AtomicU64::new(0);
    println!("{}", serde_json::json!({"ready": true}));
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while Instant::now() < deadline {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            if serve_one(&mut stream).is_ok() {
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_micros(200));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(1)),
                    }
                }
            });
        }
    });
    println!(
        "{}",
        serde_json::json!({"mode": "tcp-server", "served": served.load(Ordering::Relaxed)})
    );
    Ok(())
}

fn serve_one(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    let mut buf = [0u8; PAYLOAD.len()];
    stream.read_exact(&mut buf)?;
    stream.write_all(&buf)
}

fn tcp_client(to: SocketAddr, limit: Duration, threads: usize) -> Result<()> {
    let deadline = Instant::now() + limit;
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let started = Instant::now();
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while Instant::now() < deadline {
                    if one_connection(to).is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({"mode": "tcp", "ok": ok, "failed": failed.load(Ordering::Relaxed),
            "seconds": seconds, "rate": count_f64(ok) / seconds})
    );
    Ok(())
}

fn one_connection(to: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    stream.write_all(PAYLOAD)?;
    let mut buf = [0u8; PAYLOAD.len()];
    stream.read_exact(&mut buf)?;
    // Close with a reset: no TIME_WAIT, so a run of tens of thousands of connections never
    // runs out of source ports, and each one is a new flow for every enforcer.
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    Ok(())
}

fn udp_sink(port: u16, limit: Duration, idle: Duration) -> Result<()> {
    let socket =
        UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("binding UDP {port}"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .context("read timeout")?;
    // A large receive buffer: count what the enforcer lets through, not what one socket holds.
    socket2::SockRef::from(&socket)
        .set_recv_buffer_size(8 << 20)
        .context("receive buffer")?;
    println!("{}", serde_json::json!({"ready": true}));
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    let mut count = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(_) => {
                last = Instant::now();
                first.get_or_insert(last);
                count += 1;
            }
            Err(_) if first.is_some() && last.elapsed() >= idle => break,
            Err(_) => {}
        }
    }
    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let rate = if seconds > 0.0 {
        count_f64(count) / seconds
    } else {
        0.0
    };
    println!(
        "{}",
        serde_json::json!({"mode": "udp-sink", "received": count, "seconds": seconds, "rate": rate})
    );
    Ok(())
}

fn udp_echo(port: u16, limit: Duration) -> Result<()> {
    let socket =
        UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("binding UDP {port}"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .context("read timeout")?;
    println!("{}", serde_json::json!({"ready": true}));
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    let mut echoed = 0u64;
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf)
            && socket.send_to(&buf[..n], from).is_ok()
        {
            echoed += 1;
        }
    }
    println!(
        "{}",
        serde_json::json!({"mode": "udp-echo", "echoed": echoed})
    );
    Ok(())
}

fn udp_client(to: SocketAddr, limit: Duration, threads: usize) -> Result<()> {
    let deadline = Instant::now() + limit;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    thread::scope(|s| -> Result<()> {
        for _ in 0..threads {
            let socket = UdpSocket::bind(("0.0.0.0", 0)).context("binding a UDP client")?;
            socket.connect(to).context("connecting the UDP client")?;
            let sent = Arc::clone(&sent);
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    // Bursts between clock reads; a full send buffer just retries.
                    for _ in 0..64 {
                        if socket.send(PAYLOAD).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({"mode": "udp", "sent": sent, "seconds": seconds, "rate": count_f64(sent) / seconds})
    );
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
fn count_f64(n: u64) -> f64 {
    n as f64
}
