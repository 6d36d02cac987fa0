//! Starting `loadgen` inside a namespace: the child joins the namespace before exec, is killed
//! by the kernel if we die (PR_SET_PDEATHSIG), and bounds its own run time.

use std::{
    io::{BufRead as _, BufReader},
    os::fd::OwnedFd,
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};

use crate::lab::netns::Netns;

/// `loadgen`, next to the running binary (both are built into the same target directory).
pub fn loadgen_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running binary")?;
    let path = exe.with_file_name("loadgen");
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build -p palisade-tests --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// A running loadgen; killed and reaped on drop.
pub struct Loadgen {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Loadgen {
    pub fn spawn(netns: &Netns, args: &[String]) -> anyhow::Result<Self> {
        let binary = loadgen_binary()?;
        let fd: OwnedFd = netns
            .file()
            .try_clone()
            .context("duplicating the namespace fd")?
            .into();
        let mut command = Command::new(&binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: runs in the forked child before exec; only system calls on a descriptor
        // opened before the fork: no allocation, no locks.
        unsafe {
            command.pre_exec(move || {
                setns(&fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} in {}", binary.display(), netns.name()))?;
        let stdout = child.stdout.take().context("loadgen has no stdout")?;
        Ok(Self {
            child,
            stdout: BufReader::new(stdout),
        })
    }

    /// The next JSON line the process prints (it prints a bounded number, then exits).
    pub fn next_line(&mut self) -> anyhow::Result<serde_json::Value> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading loadgen output")?;
        if n == 0 {
            let status = self.child.wait().context("waiting for loadgen")?;
            bail!("loadgen ended ({status}) without printing a result");
        }
        serde_json::from_str(line.trim()).with_context(|| format!("loadgen printed {line:?}"))
    }

    /// Waits for the final line and the exit.
    pub fn finish(mut self) -> anyhow::Result<serde_json::Value> {
        let value = self.next_line()?;
        let status = self.child.wait().context("waiting for loadgen")?;
        if !status.success() {
            bail!("loadgen failed: {status}");
        }
        Ok(value)
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `cmd` (whose stdin gets `input`) inside `netns` and fails with its stderr.
pub fn run_in(netns: &Netns, program: &str, args: &[&str], input: &str) -> anyhow::Result<()> {
    let fd: OwnedFd = netns
        .file()
        .try_clone()
        .context("duplicating the namespace fd")?
        .into();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: as in `Loadgen::spawn`.
    unsafe {
        command.pre_exec(move || {
            setns(&fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program} in {}", netns.name()))?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("no stdin")?;
        stdin
            .write_all(input.as_bytes())
            .with_context(|| format!("writing to {program}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` in {} failed ({}): {}",
            args.join(" "),
            netns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
