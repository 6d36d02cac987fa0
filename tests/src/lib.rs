//! Palisade's test support: the local lab (see [`lab`]) and helpers for privileged tests.

use nix::unistd::geteuid;

pub mod bench;
pub mod calico_reference;
pub mod cnp_conformance;
pub mod conformance;
pub mod crafted;
pub mod faults;
pub mod generate;
pub mod generate_calico;
pub mod kernel;
pub mod lab;
pub mod leftovers;
pub mod reference;
pub mod scratch;

/// Whether a privileged test can run. As root: yes. Otherwise, under CI (`CI=true`) the test
/// fails, because a skipped privileged test there would hide a broken setup; elsewhere it
/// prints a loud warning and the test should return early.
pub fn require_root(test_name: &str) -> bool {
    if geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test_name}: privileged tests must run as root under CI (CI=true)");
    }
    eprintln!(
        "\n*** SKIPPED (not root): {test_name} needs root (network namespaces, bpffs, BPF); run it \
         as root to exercise it ***\n"
    );
    false
}

/// The workspace root: the nearest directory above the current directory whose Cargo.toml
/// declares a `[workspace]`, else the one this crate was built in.
pub fn workspace_root() -> std::path::PathBuf {
    let built_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let Ok(cwd) = std::env::current_dir() else {
        return built_in;
    };
    cwd.ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(std::path::Path::to_path_buf)
        .unwrap_or(built_in)
}
