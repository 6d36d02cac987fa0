//! SIGKILL for the lab's agent, and the seeded randomness that picks when.
//!
//! The lab keeps its agent's `Child` to itself; the agent is found instead by what only it
//! runs with: a child of this process whose command line names the lab's pin directory after
//! `--bpffs`. It stays a zombie (so its pid cannot be reused) until the lab reaps it.

use std::{fs, path::Path};

use anyhow::Context as _;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// The pid of the agent pinning under `pin_dir`, a child of this process.
pub fn agent_pid(pin_dir: &Path) -> anyhow::Result<Pid> {
    let me = std::process::id().to_string();
    let wanted = pin_dir.to_string_lossy();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        // A process that exits meanwhile has no files any more: not ours to look at.
        let (Ok(stat), Ok(cmdline)) = (
            fs::read_to_string(entry.path().join("stat")),
            fs::read(entry.path().join("cmdline")),
        ) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid != Some(me.as_str()) {
            continue;
        }
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let pins_there = args
            .windows(2)
            .any(|w| w[0] == b"--bpffs" && w[1] == wanted.as_bytes());
        if pins_there {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(Pid::from_raw(*pid)),
        [] => anyhow::bail!("no agent of this process pins under {wanted}"),
        many => anyhow::bail!("several agents pin under {wanted}: {many:?}"),
    }
}

/// SIGKILL: no chance to clean up, as in an OOM kill or a node losing power mid-write.
pub fn sigkill(pid: Pid) -> anyhow::Result<()> {
    kill(pid, Signal::SIGKILL).with_context(|| format!("SIGKILL to the agent {pid}"))
}

/// SplitMix64: a small seeded generator, so that a failing run can be repeated with its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A seed from `var` when set (decimal), else from the clock; printed by the caller.
    pub fn seed_from_env(var: &str) -> anyhow::Result<u64> {
        match std::env::var(var) {
            Ok(text) => text
                .parse()
                .with_context(|| format!("{var}={text}: not a decimal u64")),
            Err(_) => Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)),
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0; the modulo bias is negligible for small bounds).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}
