//! Interface churn: veth pairs with host routes appearing and going in a lab's node
//! namespace, as a CNI adds and removes pods, and what the agent's pinned links say after.
//!
//! Each interface routes the address of one of the datastore's "ghost" pods, so the agent
//! takes it for that pod's interface and attaches all three hooks. Every `newcomer_every`-th
//! one is a whole pod: its peer end in a namespace of its own with the ghost's address, which
//! sends datagrams from the moment its route exists to each destination and counts the echoes
//! (see [`Newcomer`]); a [`Tally`] counts one-way what lands where no echo would come back.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::programs::{SchedClassifier, TcAttachType};

use crate::lab::{
    cleanup::Resources,
    netns::{self, Netns},
};

/// Interfaces alive at once: each is deleted this many creations later.
const ALIVE: usize = 4;
/// How long a newcomer sends (one datagram to each destination every `NEWCOMER_PACE`).
const NEWCOMER_SENDS: Duration = Duration::from_millis(250);
const NEWCOMER_PACE: Duration = Duration::from_millis(2);
/// How long a newcomer goes on sending, past [`NEWCOMER_SENDS`], while its control flow has
/// had no echo. Until the agent has handled the new interface (its rescan waits behind a policy
/// sync on a loaded machine) the newcomer's packets are dropped as spoofed, which is right;
/// the control proves that the wiring works once the agent has caught up, and the time it
/// took is reported.
const CONTROL_WAIT: Duration = Duration::from_secs(5);

/// What to churn.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The node namespace's name.
    pub node: String,
    /// For naming the newcomers' namespaces after the lab.
    pub lab_id: String,
    pub count: usize,
    /// The ghost pods' addresses, used in turn (at least [`ALIVE`] of them).
    pub ghosts: Vec<Ipv4Addr>,
    pub newcomer_every: usize,
    /// Where newcomers send: the destinations must echo and deny the ghosts.
    pub destinations: Vec<SocketAddr>,
    /// The destination (an index into `destinations`) that allows the ghosts: a newcomer
    /// sends until it echoes, for at most [`CONTROL_WAIT`] more.
    pub control: usize,
    /// The churn stops here whatever the count.
    pub limit: Duration,
}

/// What a newcomer saw: datagrams sent and echoes received, per destination.
#[derive(Debug, Clone, Default)]
pub struct Newcomer {
    pub interface: String,
    pub sent: Vec<usize>,
    pub echoed: Vec<usize>,
    /// From the first send to the control's first echo (None: it never echoed).
    pub first_control_echo: Option<Duration>,
}

/// What the churn did.
#[derive(Debug, Default)]
pub struct Churned {
    pub created: usize,
    pub deleted: usize,
    pub newcomers: Vec<Newcomer>,
}

/// Runs the churn (on the calling thread): creates and deletes `plan.count` interfaces.
/// Newcomer namespaces are recorded in `resources` before they are made.
pub fn churn(plan: &Plan, resources: &Resources) -> anyhow::Result<Churned> {
    anyhow::ensure!(
        plan.ghosts.len() >= ALIVE,
        "fewer ghosts than interfaces alive"
    );
    let deadline = Instant::now() + plan.limit;
    let mut churned = Churned::default();
    let mut alive: std::collections::VecDeque<(String, Option<String>)> = Default::default();
    for i in 0..plan.count {
        if Instant::now() >= deadline {
            break;
        }
        let ghost = plan.ghosts[i % plan.ghosts.len()];
        let host = format!("plf{i}");
        let newcomer = plan.newcomer_every > 0 && i % plan.newcomer_every == 0;
        let pod_netns = if newcomer {
            let name = format!("pal-{}-fx{i}", plan.lab_id);
            resources.netns(&name, || netns::add(&name))?;
            let seen = newcomer_round(plan, &host, &name, ghost)
                .with_context(|| format!("newcomer {host}"))?;
            churned.newcomers.push(seen);
            Some(name)
        } else {
            let peer = format!("plg{i}");
            netns::ip_in(
                &plan.node,
                &["link", "add", &host, "type", "veth", "peer", "name", &peer],
            )?;
            netns::ip_in(&plan.node, &["link", "set", &host, "up"])?;
            netns::ip_in(&plan.node, &["link", "set", &peer, "up"])?;
            netns::ip_in(
                &plan.node,
                &["route", "add", &format!("{ghost}/32"), "dev", &host],
            )?;
            None
        };
        churned.created += 1;
        alive.push_back((host, pod_netns));
        if alive.len() >= ALIVE
            && let Some((gone, pod)) = alive.pop_front()
        {
            remove(plan, &gone, pod.as_deref())?;
            churned.deleted += 1;
        }
    }
    while let Some((gone, pod)) = alive.pop_front() {
        remove(plan, &gone, pod.as_deref())?;
        churned.deleted += 1;
    }
    Ok(churned)
}

/// Deleting one end of a veth deletes both (and its routes).
fn remove(plan: &Plan, host: &str, pod: Option<&str>) -> anyhow::Result<()> {
    netns::ip_in(&plan.node, &["link", "del", host])?;
    if let Some(pod) = pod {
        netns::delete(pod)?;
    }
    Ok(())
}

/// A pod as a CNI wires one (the lab's own wiring): a veth with its peer in `pod` holding the
/// ghost's address, proxy ARP on the host end, then the host route; then it sends.
fn newcomer_round(plan: &Plan, host: &str, pod: &str, ghost: Ipv4Addr) -> anyhow::Result<Newcomer> {
    netns::ip_in(
        &plan.node,
        &[
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pod,
        ],
    )?;
    netns::ip_in(pod, &["link", "set", "lo", "up"])?;
    netns::ip_in(pod, &["link", "set", "eth0", "up"])?;
    netns::ip_in(pod, &["addr", "add", &format!("{ghost}/32"), "dev", "eth0"])?;
    netns::ip_in(pod, &["route", "add", "default", "dev", "eth0"])?;
    netns::ip_in(&plan.node, &["link", "set", host, "up"])?;
    let node = Netns::open(&plan.node)?;
    node.sysctls(&[
        (format!("net.ipv4.conf.{host}.proxy_arp"), "1"),
        (format!("net.ipv4.neigh.{host}.proxy_delay"), "0"),
    ])?;
    netns::ip_in(
        &plan.node,
        &["route", "add", &format!("{ghost}/32"), "dev", host],
    )?;
    let (destinations, control) = (plan.destinations.clone(), plan.control);
    let counted = Netns::open(pod)?.run(move || send_and_count(&destinations, control))??;
    Ok(Newcomer {
        interface: host.to_owned(),
        ..counted
    })
}

/// Sends datagrams to every destination for [`NEWCOMER_SENDS`], and on while the control
/// destination has not echoed (up to [`CONTROL_WAIT`] more), and counts the echoes (a short
/// tail after the last send lets late ones in).
fn send_and_count(destinations: &[SocketAddr], control: usize) -> anyhow::Result<Newcomer> {
    anyhow::ensure!(control < destinations.len(), "no control destination");
    let sockets = destinations
        .iter()
        .map(|to| {
            let socket = UdpSocket::bind("0.0.0.0:0").context("binding a newcomer socket")?;
            socket.connect(to).context("connecting a newcomer socket")?;
            socket.set_nonblocking(true).context("non-blocking")?;
            Ok(socket)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut counted = Newcomer {
        sent: vec![0; sockets.len()],
        echoed: vec![0; sockets.len()],
        ..Newcomer::default()
    };
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let (mut end, give_up) = (
        start + NEWCOMER_SENDS,
        start + NEWCOMER_SENDS + CONTROL_WAIT,
    );
    let tail = Duration::from_millis(100);
    while Instant::now() < end + tail {
        let sending = Instant::now() < end;
        for (i, socket) in sockets.iter().enumerate() {
            if sending {
                // A send error (no neighbour yet) is a datagram that does not come back.
                if socket.send(b"newcomer").is_ok() {
                    counted.sent[i] += 1;
                }
            }
            while let Ok(n) = socket.recv(&mut buf) {
                if buf.get(..n) == Some(b"newcomer".as_slice()) {
                    counted.echoed[i] += 1;
                    if i == control && counted.first_control_echo.is_none() {
                        counted.first_control_echo = Some(start.elapsed());
                    }
                }
            }
        }
        // Not wired yet: go on sending, bounded.
        if !sending && counted.echoed[control] == 0 && end < give_up {
            end = (end + NEWCOMER_PACE).min(give_up);
        }
        std::thread::sleep(NEWCOMER_PACE);
    }
    Ok(counted)
}

/// The link pins under `pin_dir/links`, `<ifindex>-<hook>`, by ifindex.
pub fn link_pins(pin_dir: &Path) -> anyhow::Result<BTreeMap<u32, Vec<String>>> {
    let dir = pin_dir.join("links");
    let mut pins: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry
            .context("reading the links directory")?
            .file_name()
            .to_string_lossy()
            .into_owned();
        let (index, hook) = name
            .split_once('-')
            .with_context(|| format!("link pin {name}: not <ifindex>-<hook>"))?;
        let index: u32 = index
            .parse()
            .with_context(|| format!("link pin {name}: not <ifindex>-<hook>"))?;
        pins.entry(index).or_default().push(hook.to_owned());
    }
    Ok(pins)
}

/// The interfaces of `node`, by ifindex.
pub fn live_interfaces(node: &Netns) -> anyhow::Result<BTreeMap<u32, String>> {
    node.run(|| -> anyhow::Result<BTreeMap<u32, String>> {
        Ok(nix::net::if_::if_nameindex()
            .context("listing the node's interfaces")?
            .iter()
            .map(|i| (i.index(), i.name().to_string_lossy().into_owned()))
            .collect())
    })?
}

/// What pins and interfaces disagree on: pins of interfaces that are gone (leaked links),
/// and interfaces other than loopback without their post-translation pin.
pub fn mismatches(
    pins: &BTreeMap<u32, Vec<String>>,
    live: &BTreeMap<u32, String>,
) -> (Vec<String>, Vec<String>) {
    let leaked = pins
        .iter()
        .filter(|(index, _)| !live.contains_key(index))
        .map(|(index, hooks)| format!("ifindex {index}: {}", hooks.join(",")))
        .collect();
    let unpinned = live
        .iter()
        .filter(|(_, name)| name.as_str() != "lo")
        .filter(|(index, _)| {
            !pins
                .get(index)
                .is_some_and(|hooks| hooks.iter().any(|h| h == "after-nat"))
        })
        .map(|(index, name)| format!("{name} ({index})"))
        .collect();
    (leaked, unpinned)
}

/// Palisade programs on each hook of `interfaces` (in `node`): (interface, hook, count).
pub fn programs_per_hook(
    node: &Netns,
    interfaces: &[String],
) -> anyhow::Result<Vec<(String, &'static str, usize)>> {
    let interfaces = interfaces.to_vec();
    node.run(
        move || -> anyhow::Result<Vec<(String, &'static str, usize)>> {
            let mut counts = Vec::new();
            for interface in &interfaces {
                for (hook, attach) in [
                    ("ingress", TcAttachType::Ingress),
                    ("egress", TcAttachType::Egress),
                ] {
                    let (_, programs) = SchedClassifier::query_tcx(interface, attach)
                        .with_context(|| format!("querying {interface} {hook}"))?;
                    let ours = programs
                        .iter()
                        .filter(|p| p.name_as_str().is_some_and(|n| n.starts_with("palisade")))
                        .count();
                    counts.push((interface.clone(), hook, ours));
                }
            }
            Ok(counts)
        },
    )?
}

/// Counts the datagrams that arrive at a UDP port in a pod from some sources: one-way, where
/// they land, so a datagram the sender's own egress policy should have stopped is seen even
/// if its answer would be dropped on the way back.
pub struct Tally {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<(usize, usize)>>>,
}

impl Tally {
    pub fn start(pod: &Netns, port: u16, sources: Vec<Ipv4Addr>) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering;
        let socket = pod
            .run(move || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))?
            .with_context(|| format!("binding UDP {port} in {}", pod.name()))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .context("a read timeout")?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tally".into())
            .spawn(move || -> anyhow::Result<(usize, usize)> {
                let (mut count, mut others) = (0, 0);
                let mut buf = [0u8; 64];
                while !stopped.load(Ordering::Relaxed) {
                    match socket.recv_from(&mut buf) {
                        Ok((_, SocketAddr::V4(from))) if sources.contains(from.ip()) => count += 1,
                        Ok(_) => others += 1,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => return Err(e).context("receiving"),
                    }
                }
                Ok((count, others))
            })
            .context("starting the tally thread")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops counting; how many arrived from the sources, and from anyone else (the control
    /// that the tally hears at all).
    pub fn finish(mut self) -> anyhow::Result<(usize, usize)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .context("finished twice")?
            .join()
            .map_err(|_| anyhow::anyhow!("the tally thread panicked"))?
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Dropped on an error path: the count is not wanted any more.
            drop(thread.join());
        }
    }
}

/// Sends `count` datagrams from `source` to `to` (the tally's control).
pub fn send_from(source: &Netns, to: SocketAddr, count: usize) -> anyhow::Result<()> {
    source.run(move || -> anyhow::Result<()> {
        let socket = UdpSocket::bind("0.0.0.0:0").context("binding")?;
        for _ in 0..count {
            socket.send_to(b"control", to).context("sending")?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })?
}
