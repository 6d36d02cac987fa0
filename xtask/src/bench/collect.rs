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

/// Every JSON line a part printed, in order.
#[derive(Debug, Default)]
pub struct Results {
    pub lines: Vec<Value>,
    /// The compile bench's report, verbatim (None when it was not run).
    pub compile_report: Option<Vec<String>>,
}

impl Results {
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

/// `cargo bench -p policy-agent --bench decision`.
pub fn decision(root: &Path, quick: bool) -> Result<Vec<Value>> {
    let mut cmd = cargo(root);
    cmd.args(["bench", "-p", "policy-agent", "--bench", "decision", "--"]);
    if quick {
        cmd.arg("--quick");
    }
    json_lines(
        cmd,
        "kernel decision cost",
        Duration::from_secs(if quick { 120 } else { 600 }),
    )
}

/// `target/release/netbench PART`.
pub fn netbench(root: &Path, part: &str, quick: bool) -> Result<Vec<Value>> {
    let mut cmd = Command::new(root.join("target/release/netbench"));
    cmd.current_dir(root).arg(part).env(
        "PALISADE_AGENT_BIN",
        root.join("target/release/policy-agent"),
    );
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

/// Runs the compile bench (owned elsewhere) and keeps its report: the stderr lines it prints
/// after cargo starts it, verbatim.
pub fn compile_report(root: &Path) -> Result<Vec<String>> {
    eprintln!("==> compiler at scale: {COMPILE_BENCH}");
    let mut cmd = cargo(root);
    cmd.args([
        "bench",
        "-p",
        "policy-agent",
        "--bench",
        "compile",
        "--",
        "--warm-up-time",
        "1",
        "--measurement-time",
        "3",
    ]);
    let out = cmd.output().context("running the compile bench")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the compile bench failed ({}):\n{stderr}", out.status);
    }
    let report: Vec<String> = stderr
        .lines()
        .skip_while(|l| !(l.trim_start().starts_with("Running") && l.contains("compile")))
        .skip(1)
        .map(str::to_owned)
        .collect();
    if report.is_empty() {
        bail!("the compile bench printed no report on stderr");
    }
    Ok(report)
}
