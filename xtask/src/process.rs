//! Running commands with their command line echoed, and failing with it in the error.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

pub fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_owned)
        .context("xtask has no parent directory")
}

/// `cargo` as invoked us (the toolchain the user chose), in the workspace root.
pub fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

pub fn run(mut cmd: Command) -> Result<()> {
    let line = describe(&cmd);
    eprintln!("==> {line}");
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

/// Runs the command and exits with its status (for `run`, whose exit status is the verdict).
pub fn run_exit_status(mut cmd: Command) -> Result<()> {
    let line = describe(&cmd);
    eprintln!("==> {line}");
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    std::process::exit(status.code().unwrap_or(1))
}

/// Whether the command runs and exits 0 (output discarded).
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Standard output of a command that must succeed.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
