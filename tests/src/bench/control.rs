//! Control plane: how long a manifest change takes to reach the packets (p50/p99 over many
//! changes, with 1,000 pods and 200 policies loaded), and the agent's full sync time and
//! memory at 1,000 and 10,000 pods.
//!
//! Latency is observed from the client pod: a prober sends a numbered UDP datagram every
//! `PROBE_EVERY` to an echo server in the server pod, and a change's latency is the send time
//! of the first datagram that saw the new verdict minus the time the change was written (so
//! it includes the agent's inotify debounce, compile and map update, and is resolved to one
//! probe interval).

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::OwnedFd,
    path::Path,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};
use serde_json::{Value, json};

use super::{Budget, emit, procs::Loadgen, traffic::Testbed};
use crate::lab::{
    agent::{self, AgentPaths},
    cleanup::{self, Resources},
    datastore::Datastore,
    netns::{self, Netns},
    scenario::{Object, Step},
};

const ECHO_PORT: u16 = 9000;
const PROBE_EVERY: Duration = Duration::from_micros(500);
/// A change not seen by the packets within this long is a failure, not a slow sample.
const CHANGE_DEADLINE: Duration = Duration::from_secs(5);
/// Datagrams sent this recently may still be in flight: not judged yet.
const IN_FLIGHT: Duration = Duration::from_millis(30);
/// Consecutive lost datagrams that show a deny took effect.
const DENY_RUN: usize = 10;
const POLICIES: usize = 200;

/// `count` pods (`local` of them on `bench-node`) and `POLICIES` policies among them.
pub fn bulk_manifests(count: usize, local: usize) -> String {
    let mut docs = Vec::with_capacity(count + POLICIES);
    for i in 0..count {
        let ip = format!("10.100.{}.{}", i / 250, i % 250 + 1);
        let node = if i < local { "bench-node" } else { "elsewhere" };
        docs.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("bulk-{i}"), "namespace": "default",
                "labels": {"app": "bulk", "group": format!("g{}", i % 50)}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "none"}]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}], "phase": "Running"},
        }));
    }
    for j in 0..POLICIES {
        docs.push(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": format!("bulk-{j}"), "namespace": "default"},
            "spec": {
                "podSelector": {"matchLabels": {"group": format!("g{}", j % 50)}},
                "ingress": [{
                    "from": [{"podSelector": {"matchLabels": {"group": format!("g{}", (j + 1) % 50)}}}],
                    "ports": [{"protocol": "TCP", "port": 5000 + j}]
                }]
            }
        }));
    }
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn object(value: Value) -> anyhow::Result<Object> {
    Object::from_manifest(value).context("building a manifest")
}

fn step(value: Value) -> anyhow::Result<Step> {
    serde_json::from_value(value).context("building a lab step")
}

/// One sent datagram: when, and whether its echo came back.
#[derive(Clone, Copy)]
struct Sent {
    at: Instant,
    echoed: bool,
}

/// A prober thread in the client's namespace; stops on drop.
struct Prober {
    log: Arc<Mutex<Vec<Sent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<anyhow::Result<()>>>,
}

impl Prober {
    fn start(client: &Netns, to: SocketAddr, limit: Duration) -> anyhow::Result<Self> {
        let fd: OwnedFd = client
            .file()
            .try_clone()
            .context("duplicating the namespace fd")?
            .into();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name("prober".into())
            .spawn(move || -> anyhow::Result<()> {
                setns(&fd, CloneFlags::CLONE_NEWNET).context("entering the client namespace")?;
                let socket = UdpSocket::bind("0.0.0.0:0").context("binding the prober")?;
                socket.connect(to).context("connecting the prober")?;
                socket
                    .set_nonblocking(true)
                    .context("non-blocking prober")?;
                let deadline = Instant::now() + limit;
                let mut buf = [0u8; 64];
                while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                    {
                        let mut log = log2.lock().unwrap_or_else(PoisonError::into_inner);
                        let seq = log.len() as u64;
                        // A send error (no route yet) is just a datagram that sees no echo.
                        let _ = socket.send(&seq.to_le_bytes());
                        log.push(Sent {
                            at: Instant::now(),
                            echoed: false,
                        });
                        while let Ok(n) = socket.recv(&mut buf) {
                            if let Some(bytes) = buf.get(..8).filter(|_| n >= 8) {
                                let mut b = [0u8; 8];
                                b.copy_from_slice(bytes);
                                let seq =
                                    usize::try_from(u64::from_le_bytes(b)).unwrap_or(usize::MAX);
                                if let Some(s) = log.get_mut(seq) {
                                    s.echoed = true;
                                }
                            }
                        }
                    }
                    thread::sleep(PROBE_EVERY);
                }
                Ok(())
            })
            .context("starting the prober thread")?;
        Ok(Self {
            log,
            stop,
            thread: Some(thread),
        })
    }

    /// Waits until the datagrams sent after `since` show `allowed`; returns the latency.
    fn wait_for(&self, since: Instant, allowed: bool) -> anyhow::Result<Duration> {
        let deadline = since + CHANGE_DEADLINE;
        loop {
            let now = Instant::now();
            {
                let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
                let judged: Vec<Sent> = log
                    .iter()
                    .copied()
                    .filter(|s| s.at >= since && s.at + IN_FLIGHT <= now)
                    .collect();
                let found = if allowed {
                    judged.iter().find(|s| s.echoed).map(|s| s.at)
                } else {
                    // The first datagram of a tail of at least DENY_RUN lost ones.
                    let tail = judged.iter().rev().take_while(|s| !s.echoed).count();
                    (tail >= DENY_RUN).then(|| judged[judged.len() - tail].at)
                };
                if let Some(at) = found {
                    return Ok(at.duration_since(since));
                }
            }
            if now >= deadline {
                bail!(
                    "the packets did not see the change (allowed={allowed}) within {CHANGE_DEADLINE:?}"
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Policy change to first packet with the new verdict, `budget.changes` times.
pub fn latency(budget: &Budget) -> anyhow::Result<()> {
    let deny = object(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "server-default-deny", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"]}
    }))?;
    let mut bed = Testbed::start(vec![deny], true).context("starting the control-plane lab")?;
    let bulk = step(json!({"name": "bulk", "writeFiles": [
        {"name": "bulk.yaml", "content": bulk_manifests(1_000, 1_000)}]}))?;
    bed.lab
        .run_step(1, &bulk)
        .context("loading 1,000 pods and 200 policies")?;
    let allow = step(json!({"name": "allow", "apply": [{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-client", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "server"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                "ports": [{"protocol": "UDP", "port": ECHO_PORT}]}]}}]}))?;
    let revoke = step(json!({"name": "revoke", "delete": [
        {"kind": "NetworkPolicy", "namespace": "default", "name": "allow-client"}]}))?;

    // Generous bounds: both end on their own even if we never stop them.
    let limit = Duration::from_secs(30 + 3 * u64::try_from(budget.changes).unwrap_or(1000));
    let mut echo = Loadgen::spawn(
        &bed.server,
        &[
            "udp-echo".into(),
            "--port".into(),
            ECHO_PORT.to_string(),
            "--seconds".into(),
            limit.as_secs().to_string(),
        ],
    )?;
    echo.next_line().context("waiting for the echo server")?;
    let prober = Prober::start(
        &bed.client,
        SocketAddr::from((bed.server_ip, ECHO_PORT)),
        limit,
    )?;
    for change in 0..budget.changes {
        let allowed = change % 2 == 0;
        let since = Instant::now();
        let report = bed
            .lab
            .run_step(change + 2, if allowed { &allow } else { &revoke })
            .with_context(|| format!("change {change}"))?;
        let took = match prober.wait_for(since, allowed) {
            Ok(took) => took,
            Err(e) => {
                // What the agent did about it is the first thing to look at.
                eprintln!("{}", bed.lab.agent_log_tail().join("\n"));
                return Err(e.context(format!("change {change}")));
            }
        };
        emit(
            &json!({"kind": "latency", "change": change, "to": if allowed {"allow"} else {"deny"},
            "ms": took.as_secs_f64() * 1e3, "agent_programmed_ms": report.programmed_ms}),
        );
    }
    drop(prober);
    drop(echo);
    Ok(())
}

/// Full sync time and memory of an agent given `pods` pods (100 on its node) and 200 policies.
pub fn agent_footprint(pods: usize) -> anyhow::Result<()> {
    let binary = agent::agent_binary()?;
    if agent::ensure_bpffs()? {
        eprintln!("bench: mounted a bpffs at {}", agent::BPFFS);
    }
    let id = cleanup::allocate_id(|id| netns::exists(&format!("pal-{id}-agent")))
        .context("no free bench id")?;
    let resources = Resources::new(&id);
    let ns_name = format!("pal-{id}-agent");
    resources.netns(&ns_name, || netns::add(&ns_name))?;
    let node = Netns::open(&ns_name)?;
    let dir = std::env::temp_dir().join(format!("palisade-bench-{id}"));
    resources.lab_dir(&dir)?;
    let store = dir.join("datastore");
    std::fs::create_dir(&store).with_context(|| format!("creating {}", store.display()))?;
    let text = bulk_manifests(pods, 100);
    std::fs::write(store.join("cluster.yaml"), text).context("writing the manifests")?;
    let pin_dir = Path::new(agent::BPFFS).join(format!("palisade-bench-{id}"));
    resources.pin_dir(&pin_dir)?;
    let paths = AgentPaths {
        binary,
        datastore: store.clone(),
        pin_dir,
        status_file: dir.join("status.json"),
        log_file: dir.join("agent.log"),
        extra_args: Vec::new(),
    };
    let pid = resources.agent(|| spawn_with_node_name(&paths, &node))?;
    let digest = Datastore::new(store).digest()?;
    let (status, took) = agent::wait_programmed(&paths, &resources, &digest, &[])
        .with_context(|| format!("waiting for the agent to program {pods} pods"))?;
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the agent's /proc status")?;
    let kb = |field: &str| -> Option<u64> {
        proc_status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    emit(&json!({"kind": "agent", "pods": pods, "policies": POLICIES,
        "rss_kb": kb("VmRSS:"), "hwm_kb": kb("VmHWM:"), "sync_ms": status.sync_millis,
        "ready_ms": took.as_secs_f64() * 1e3, "identities": status.identities, "rules": status.rules,
        "endpoints": status.endpoints}));
    resources.clean_up();
    Ok(())
}

/// `agent::spawn`, plus `--node-name bench-node` so that only that node's pods are endpoints.
fn spawn_with_node_name(paths: &AgentPaths, node: &Netns) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt as _;
    let log = std::fs::File::create(&paths.log_file)
        .with_context(|| format!("creating {}", paths.log_file.display()))?;
    let log_err = log.try_clone().context("duplicating the log file")?;
    let fd: OwnedFd = node
        .file()
        .try_clone()
        .context("duplicating the namespace fd")?
        .into();
    let mut command = std::process::Command::new(&paths.binary);
    command
        .arg("run")
        .arg("--datastore")
        .arg(&paths.datastore)
        .arg("--bpffs")
        .arg(&paths.pin_dir)
        .arg("--interface-pattern")
        .arg("plh*")
        .arg("--status-file")
        .arg(&paths.status_file)
        .arg("--node-name")
        .arg("bench-node")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: runs in the forked child before exec; system calls only, no allocation.
    unsafe {
        command.pre_exec(move || {
            setns(&fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", paths.binary.display()))
}
