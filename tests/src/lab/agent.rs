//! Finding, starting, waiting for and stopping the real `policy-agent` binary.
//!
//! Each agent runs inside its node's namespace (a lab has one agent per node). It is moved there by a `setns` between fork
//! and exec rather than with `ip netns exec`, which would remount /sys and hide /sys/fs/bpf (the
//! agent pins its maps there).

use std::{
    env,
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader},
    os::{fd::OwnedFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use nix::{
    fcntl::{Flock, FlockArg},
    mount::{MsFlags, mount},
    sched::{CloneFlags, setns},
    sys::{
        signal::{Signal, kill},
        statfs::{BPF_FS_MAGIC, statfs},
    },
    unistd::Pid,
};
use policy_agent::status::Status;

use super::cleanup::Resources;

/// Environment variable naming the agent binary.
pub const AGENT_BIN_ENV: &str = "PALISADE_AGENT_BIN";
/// Where bpffs lives.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Name prefix of the pods' host-side veths. The agent finds them by their host routes, as on
/// a routed CNI (no `--interface-pattern`).
pub const IFACE_PREFIX: &str = "plh";
/// Lines of the agent log shown when something goes wrong.
pub const LOG_TAIL_LINES: usize = 40;
/// How long to wait for the agent to program a step. The first step includes loading the
/// programs, which the kernel's verifier spends seconds of CPU on per program and agent: with
/// two labs of three nodes each on two cores (a test binary's parallel tests), that alone
/// can take most of 20 s.
pub const PROGRAM_DEADLINE: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The agent binary: `$PALISADE_AGENT_BIN`, else `debug/policy-agent` in the nearest directory
/// above this executable that has one (the cargo target directory).
pub fn agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = env::var_os(AGENT_BIN_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{AGENT_BIN_ENV}={} does not name a file; build the agent with `cargo build -p \
             policy-agent` (or `cargo xtask`) or fix the variable",
            path.display()
        );
    }
    let exe = env::current_exe().context("finding the current executable")?;
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join("debug").join("policy-agent");
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate);
    }
    bail!(
        "policy-agent binary not found; looked for ${AGENT_BIN_ENV} (unset) and at:\n  {}\nbuild it \
         with `cargo build -p policy-agent` (or `cargo xtask`), pass --agent PATH or set \
         {AGENT_BIN_ENV}",
        looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n  ")
    )
}

/// Makes sure `/sys/fs/bpf` is a bpffs, mounting one if not. Returns whether it mounted.
/// A lock file serialises the check across processes so two labs do not stack two mounts.
pub fn ensure_bpffs() -> anyhow::Result<bool> {
    let lock_path = Path::new("/run/palisade-lab.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let fs = statfs(BPFFS).with_context(|| format!("statfs {BPFFS}"))?;
    if fs.filesystem_type() == BPF_FS_MAGIC {
        return Ok(false);
    }
    mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("mounting bpffs on {BPFFS}"))?;
    Ok(true)
}

/// Where the agent reads, pins, reports and logs.
#[derive(Debug, Clone)]
pub struct AgentPaths {
    pub binary: PathBuf,
    pub datastore: PathBuf,
    pub pin_dir: PathBuf,
    pub status_file: PathBuf,
    pub log_file: PathBuf,
    /// The scenario's `agentArgs`.
    pub extra_args: Vec<String>,
}

/// Starts `policy-agent run` in the namespace `node` (an open `/run/netns/...` file), with its
/// stdout and stderr in the log file; with `node_name`, it enforces only on the pods scheduled
/// to that node (`--node-name`), else on every pod. RUST_LOG is passed through (`info` when
/// unset, so the log says something); NO_COLOR is set.
pub fn spawn(paths: &AgentPaths, node: &File, node_name: Option<&str>) -> anyhow::Result<Child> {
    let datastore_args = match super::datastore::publisher() {
        Some(publisher) => publisher.agent_args(node)?,
        None => vec!["--datastore".into(), paths.datastore.clone().into()],
    };
    let log = File::create(&paths.log_file)
        .with_context(|| format!("creating {}", paths.log_file.display()))?;
    let log_err = log.try_clone().context("duplicating the log file")?;
    let node: OwnedFd = node
        .try_clone()
        .context("duplicating the namespace fd")?
        .into();
    let mut command = Command::new(&paths.binary);
    command.arg("run").args(datastore_args);
    if let Some(name) = node_name {
        command.arg("--node-name").arg(name);
    }
    command
        .arg("--bpffs")
        .arg(&paths.pin_dir)
        .arg("--status-file")
        .arg(&paths.status_file)
        .args(&paths.extra_args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    if env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    // The log is a file: no colour escapes in it.
    command.env("NO_COLOR", "1");
    // SAFETY: the closure runs in the forked child before exec and only makes the setns
    // system call on a descriptor opened before the fork: no allocation, no locks.
    unsafe {
        command.pre_exec(move || {
            setns(&node, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", paths.binary.display()))
}

/// SIGTERM, then SIGKILL after a grace period; always reaps.
pub fn stop(mut child: Child) {
    let pid = Pid::from_raw(child.id().cast_signed());
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Err(e) = kill(pid, Signal::SIGTERM) {
        tracing::warn!(%pid, error = %e, "SIGTERM to the agent failed");
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => {
                tracing::debug!(%status, "agent stopped");
                return;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for the agent");
                break;
            }
        }
    }
    tracing::warn!(%pid, "agent still running {STOP_GRACE:?} after SIGTERM; killing it");
    if let Err(e) = child.kill() {
        tracing::warn!(error = %e, "SIGKILL to the agent failed");
    }
    if let Err(e) = child.wait() {
        tracing::warn!(error = %e, "reaping the agent");
    }
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let mut tail = std::collections::VecDeque::with_capacity(n + 1);
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        tail.push_back(line);
        if tail.len() > n {
            tail.pop_front();
        }
    }
    tail.into()
}

/// Formats a log tail for an error message.
pub fn describe_tail(path: &Path) -> String {
    let tail = log_tail(path, LOG_TAIL_LINES);
    if tail.is_empty() {
        return format!("agent log {} is empty", path.display());
    }
    format!(
        "last {} lines of the agent log ({}):\n{}",
        tail.len(),
        path.display(),
        tail.iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Polls the status file until the agent reports `digest` as programmed and lists every
/// interface in `interfaces` as attached (or as failing to attach). Fails when the agent exits or the deadline passes.
pub fn wait_programmed(
    paths: &AgentPaths,
    resources: &Resources,
    digest: &str,
    interfaces: &[String],
) -> anyhow::Result<(Status, Duration)> {
    let awaited = Awaited {
        node: "",
        paths,
        interfaces,
    };
    wait_all_programmed(&[awaited], resources, digest)?
        .pop()
        .context("no status for the agent")
}

/// One agent to wait for: its node (for messages), where it reports, and the interfaces it
/// must have attached to (its own pods').
#[derive(Debug, Clone, Copy)]
pub struct Awaited<'a> {
    pub node: &'a str,
    pub paths: &'a AgentPaths,
    pub interfaces: &'a [String],
}

/// Polls every agent's status file until each reports `digest` as programmed with its
/// interfaces attached; returns each one's status and how long it took, in `agents`' order.
/// Fails when any agent exits or the deadline passes.
pub fn wait_all_programmed(
    agents: &[Awaited<'_>],
    resources: &Resources,
    digest: &str,
) -> anyhow::Result<Vec<(Status, Duration)>> {
    let start = Instant::now();
    let deadline = start + PROGRAM_DEADLINE;
    let mut done: Vec<Option<(Status, Duration)>> = vec![None; agents.len()];
    let mut last_seen: Vec<Option<String>> = vec![None; agents.len()];
    loop {
        if let Some((node, status)) = resources.exited_agent().context("checking on the agents")? {
            let log = agents
                .iter()
                .find(|a| a.node == node)
                .or(agents.first())
                .map(|a| describe_tail(&a.paths.log_file))
                .unwrap_or_default();
            bail!(
                "the agent{} exited ({status}) before programming the step\n{log}",
                node_label(&node)
            );
        }
        for ((agent, slot), seen) in agents.iter().zip(&mut done).zip(&mut last_seen) {
            if slot.is_some() {
                continue;
            }
            match programmed(agent, digest) {
                Ok(status) => *slot = Some((status, start.elapsed())),
                Err(why) => *seen = why,
            }
        }
        if done.iter().all(Option::is_some) {
            return Ok(done.into_iter().flatten().collect());
        }
        if Instant::now() >= deadline {
            let late: Vec<String> = agents
                .iter()
                .zip(&done)
                .zip(last_seen)
                .filter(|((_, slot), _)| slot.is_none())
                .map(|((agent, _), seen)| {
                    format!(
                        "the agent{} did not program the step within {PROGRAM_DEADLINE:?}: {}\n{}",
                        node_label(agent.node),
                        seen.unwrap_or_else(|| format!(
                            "no status file at {}",
                            agent.paths.status_file.display()
                        )),
                        describe_tail(&agent.paths.log_file)
                    )
                })
                .collect();
            bail!("{}", late.join("\n"));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// ` of node NAME`, or nothing for a lone agent.
fn node_label(node: &str) -> String {
    if node.is_empty() {
        String::new()
    } else {
        format!(" of node {node}")
    }
}

/// The agent's status once it reports `digest` with its interfaces attached; otherwise what it
/// reports instead (`None`: no status file yet).
fn programmed(agent: &Awaited<'_>, digest: &str) -> Result<Status, Option<String>> {
    match Status::read(&agent.paths.status_file) {
        Ok(Some(status)) => {
            // Attached, or reported as failing to attach: either way the agent has dealt with
            // the interface (a test of attach failures reads the report).
            let attached = agent.interfaces.iter().all(|i| {
                status.interfaces.contains(i)
                    || status.attach_failures.iter().any(|f| &f.interface == i)
            });
            // Programmed, or settled by refusing it whole (the step's `expectErrors` says
            // whether that was expected: the refusal is among the agent's errors).
            let refused = status.refused.as_ref().is_some_and(|r| r.digest == digest);
            if (status.digest == digest || refused) && attached {
                return Ok(status);
            }
            Err(Some(format!(
                "status generation {} has digest {} (want {digest}) and interfaces {:?} (want {:?})",
                status.generation, status.digest, status.interfaces, agent.interfaces
            )))
        }
        Ok(None) => Err(None),
        // Written atomically, so a parse error is a real error, but it may be fixed by the
        // next write: report it only at the deadline.
        Err(e) => Err(Some(format!("{:#}", anyhow::Error::from(e)))),
    }
}
