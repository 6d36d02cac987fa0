//! Running the suite's parts and reading what they print: JSON lines on stdout (decision
//! bench, netbench) and the compile bench's report on stderr.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::process::cargo;

/// Every JSON line a part printed, in order, then the compile bench's report
/// (`"kind": "compile_report"`) and the run's description (`"kind": "run"`).
#[derive(Debug, Default)]
pub struct Results {
    pub lines: Vec<Value>,
}

impl Results {
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("{}: {l:?}", path.display())))
            .collect::<Result<_>>()?;
        Ok(Self { lines })
    }

    /// A compiler bench's report (`compile` or `calico`): its stderr and stdout lines.
    pub fn compile_report(&self, bench: &str) -> Option<(Vec<String>, Vec<String>)> {
        // Reports from before the Calico bench was run name no bench: the compile bench's.
        let v = self
            .of_kind("compile_report")
            .find(|v| v["bench"].as_str().unwrap_or("compile") == bench)?;
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some((strings("stderr"), strings("stdout")))
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |v| v["kind"] == kind)
    }
}

/// Runs `cmd`, streaming its stderr to ours, and returns the JSON lines of its stdout. Killed
/// after `limit` (every part bounds itself; this is the backstop).
pub fn json_lines(mut cmd: Command, what: &str, limit: Duration) -> Result<Vec<Value>> {
    eprintln!("==> {what}: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let reader = thread::spawn(move || -> Vec<String> {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting")? {
            break status;
        }
        if started.elapsed() > limit {
            terminate_tree(child.id());
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let lines = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the output reader of {what} panicked"))?;
    if !status.success() {
        bail!("{what} failed with {status}");
    }
    let values: Vec<Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("{what} printed {l:?}")))
        .collect::<Result<_>>()?;
    if values.is_empty() {
        bail!("{what} printed no results (not root?)");
    }
    Ok(values)
}

/// SIGTERM to `pid` and every descendant (cargo does not pass signals on to the bench it
/// runs), so each cleans up what it made (labs, pins) through its own handler; SIGKILL to
/// whatever is left after a grace period.
fn terminate_tree(pid: u32) {
    let mut tree = vec![pid];
    // Breadth-first over /proc's parent links; bounded by the number of processes.
    let mut i = 0;
    while i < tree.len() && tree.len() < 10_000 {
        let parent = tree[i];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(child) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                // Field 4 (after the parenthesised command name) is the parent pid.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(parent) && !tree.contains(&child) {
                    tree.push(child);
                }
            }
        }
        i += 1;
    }
    let signal = |sig: &str| {
        for pid in tree.iter().rev() {
            let _ = Command::new("kill")
                .args([sig, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    };
    signal("-TERM");
    thread::sleep(Duration::from_secs(5));
    signal("-KILL");
}

/// `cargo bench -p policy-agent --bench decision`; for `--quick`, the same program built
/// by `cargo test` (debug, as CI has already built the crate: a smoke run checks that it
/// runs, not how fast).
pub fn decision(root: &Path, quick: bool) -> Result<Vec<Value>> {
    decision_with(root, quick, &[])
}

/// The same bench with ClusterNetworkPolicies instead of NetworkPolicies (`--shape cluster`),
/// up to 1,000 of them (the API's priorities run 0 to 1,000).
pub fn decision_cluster(root: &Path, quick: bool) -> Result<Vec<Value>> {
    let sizes = if quick { "10,100" } else { "10,100,1000" };
    decision_with(root, quick, &["--shape", "cluster", "--sizes", sizes])
}

fn decision_with(root: &Path, quick: bool, args: &[&str]) -> Result<Vec<Value>> {
    agent_bench(root, quick, "decision", args, "kernel decision cost", 600)
}

/// `cargo bench -p policy-agent --bench flow_records`: the flow records' memory under a flood
/// of 1,000,000 distinct flows (100,000 for `--quick`, built by `cargo test`).
pub fn flow_records(root: &Path, quick: bool) -> Result<Vec<Value>> {
    agent_bench(
        root,
        quick,
        "flow_records",
        &[],
        "flow records under a flood",
        300,
    )
}

/// `cargo bench -p policy-agent --bench step_costs`: what each step of the decision costs
/// alone (one map lookup, update or helper), and the steps of the conntrack hit's path.
pub fn step_costs(root: &Path, quick: bool) -> Result<Vec<Value>> {
    agent_bench(root, quick, "step_costs", &[], "the decision's steps", 300)
}

/// The JSON lines of `cargo bench -p policy-agent --bench NAME -- ARGS`, within `limit_s`
/// seconds; for `--quick`, of the same program built by `cargo test` (debug, as CI has
/// already built the crate) with `--quick`, within two minutes.
fn agent_bench(
    root: &Path,
    quick: bool,
    name: &str,
    args: &[&str],
    what: &str,
    limit_s: u64,
) -> Result<Vec<Value>> {
    let mut cmd = cargo(root);
    let subcommand = if quick { "test" } else { "bench" };
    cmd.args([subcommand, "-p", "policy-agent", "--bench", name, "--"]);
    if quick {
        cmd.arg("--quick");
    }
    cmd.args(args);
    json_lines(
        cmd,
        what,
        Duration::from_secs(if quick { 120 } else { limit_s }),
    )
}

/// Where the binaries are: release for measuring, debug (what `cargo xtask test` builds) for
/// the smoke run.
pub fn profile_dir(quick: bool) -> &'static str {
    if quick {
        "target/debug"
    } else {
        "target/release"
    }
}

/// `target/{release,debug}/netbench PART`.
pub fn netbench(root: &Path, part: &str, quick: bool) -> Result<Vec<Value>> {
    let bin = root.join(profile_dir(quick));
    let mut cmd = Command::new(bin.join("netbench"));
    cmd.current_dir(root)
        .arg(part)
        .env("PALISADE_AGENT_BIN", bin.join("policy-agent"));
    if quick {
        cmd.arg("--quick");
    }
    json_lines(
        cmd,
        part,
        Duration::from_secs(if quick { 120 } else { 600 }),
    )
}

/// The compile bench's command line, as docs/benchmarks.md quotes it.
pub const COMPILE_BENCH: &str =
    "cargo bench -p policy-agent --bench compile -- --warm-up-time 1 --measurement-time 3";

/// The Calico scale bench's command line (root: `CALICO_BENCH_PROGRAM=1` also writes the full
/// compile into the real datapath, for each map's kernel memory).
pub const CALICO_BENCH: &str = "CALICO_BENCH_PROGRAM=1 cargo bench -p policy-agent --bench calico -- --warm-up-time 1 --measurement-time 3";

fn criterion_progress(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("Benchmarking ") || line.starts_with("Warning: Unable to complete")
}

/// A compiler bench's report (owned elsewhere), kept verbatim: its own lines on stderr (less
/// criterion's progress lines, "Benchmarking …" and sample-count warnings) and criterion's
/// estimates on stdout, as one `compile_report` line naming the bench (`compile`, or `calico`
/// with `program`: the map sizes and kernel memory of the real datapath too).
pub fn compile_report(root: &Path, bench: &str) -> Result<Value> {
    let (command, program) = match bench {
        "calico" => (CALICO_BENCH, true),
        _ => (COMPILE_BENCH, false),
    };
    eprintln!("==> compiler at scale: {command}");
    let mut cmd = cargo(root);
    cmd.args([
        "bench",
        "-p",
        "policy-agent",
        "--bench",
        bench,
        "--",
        "--warm-up-time",
        "1",
        "--measurement-time",
        "3",
    ]);
    if program {
        cmd.env("CALICO_BENCH_PROGRAM", "1");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running the {bench} bench"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the {bench} bench failed ({}):\n{stderr}", out.status);
    }
    let report: Vec<String> = stderr
        .lines()
        .skip_while(|l| !(l.trim_start().starts_with("Running") && l.contains(bench)))
        .skip(1)
        .filter(|l| !criterion_progress(l) && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if report.is_empty() {
        bail!("the {bench} bench printed no report on stderr");
    }
    let estimates: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    Ok(
        serde_json::json!({"kind": "compile_report", "bench": bench, "command": command,
        "stderr": report, "stdout": estimates}),
    )
}
