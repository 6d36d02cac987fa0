//! `policy-agent explain` run on a datastore directory: whether it succeeded, and its output.

use std::process::Command;

use tempfile::TempDir;

pub(super) fn explain(dir: &TempDir, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_policy-agent"))
        .arg("explain")
        .arg("--datastore")
        .arg(dir.path())
        .args(args)
        .output()
        .expect("running policy-agent explain");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}
