//! What building and running Palisade needs beyond Rust, and installing it where we can.
//!
//! On Debian/Ubuntu as root, missing pieces are installed (and each step is printed). Anywhere
//! else the command stops with the exact list of what is missing and how to get it, rather
//! than failing later in a build script with a less helpful message.

use std::{fs, path::Path, process::Command};

use anyhow::{Result, bail};

use crate::process::{self, output, succeeds};

/// The LLVM that bpf-linker is built against: Debian's, because no prebuilt can be
/// downloaded here and rustc 1.95/1.97 use LLVM 22.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// bpf-linker release known to build against LLVM 22 with these toolchains.
const BPF_LINKER_VERSION: &str = "0.13.0";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Compiling (and linting) the eBPF object.
    Build,
    /// Also loading it: bpftool, bpffs, root.
    Everything,
}

struct Missing {
    what: &'static str,
    how: String,
    install: Option<Box<dyn Fn() -> Result<()>>>,
}

pub fn ensure(needs: Needs) -> Result<()> {
    let missing = find_missing(needs);
    if missing.is_empty() {
        return Ok(());
    }
    let can_install = is_root() && Path::new("/usr/bin/apt-get").exists();
    if !can_install || missing.iter().any(|m| m.install.is_none()) {
        let mut message = String::from("missing prerequisites:\n");
        for m in &missing {
            message.push_str(&format!("  - {}: {}\n", m.what, m.how));
        }
        if !can_install {
            message.push_str(
                "(automatic installation needs root on Debian/Ubuntu with apt-get; run the commands above, then try again)\n",
            );
        }
        bail!(message);
    }
    let mut apt_updated = false;
    for m in missing {
        eprintln!("==> installing {} ({})", m.what, m.how);
        if m.how.contains("apt-get") && !apt_updated {
            apt_get(&["update", "-q"])?;
            apt_updated = true;
        }
        if let Some(install) = m.install {
            install()?;
        }
    }
    Ok(())
}

/// What `cargo xtask bench` needs besides [`Needs::Everything`]: the two enforcers it compares
/// Palisade with, and a font for the plots' text (plotters gets it as a file, no fontconfig).
/// The bench names the font file it loads, so this module knows machines, not plots.
pub fn ensure_bench(font: &Path) -> Result<()> {
    let packages: Vec<&str> = [
        ("iptables", Path::new("/usr/sbin/iptables-restore")),
        ("nftables", Path::new("/usr/sbin/nft")),
        ("fonts-dejavu-core", font),
    ]
    .into_iter()
    .filter(|(_, path)| !path.exists())
    .map(|(package, _)| package)
    .collect();
    if packages.is_empty() {
        return Ok(());
    }
    if !(is_root() && Path::new("/usr/bin/apt-get").exists()) {
        bail!(
            "missing for the benchmarks: {} (apt-get install -y {})",
            packages.join(", "),
            packages.join(" ")
        );
    }
    eprintln!("==> installing {} (benchmarks)", packages.join(", "));
    apt_get(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q"];
    args.extend(&packages);
    apt_get(&args)
}

fn find_missing(needs: Needs) -> Vec<Missing> {
    let mut missing = Vec::new();
    let nightly = succeeds("rustup", &["run", "nightly", "rustc", "--version"]);
    if !nightly {
        missing.push(Missing {
            what: "the nightly Rust toolchain (eBPF needs -Z build-std)",
            how: "rustup toolchain install nightly --profile minimal --component rust-src,clippy"
                .into(),
            install: Some(Box::new(|| {
                rustup(&[
                    "toolchain",
                    "install",
                    "nightly",
                    "--profile",
                    "minimal",
                    "--component",
                    "rust-src,clippy",
                ])
            })),
        });
    } else {
        let installed = output(
            "rustup",
            &["component", "list", "--toolchain", "nightly", "--installed"],
        )
        .unwrap_or_default();
        for component in ["rust-src", "clippy"] {
            if !installed.lines().any(|l| l.starts_with(component)) {
                missing.push(Missing {
                    what: component_name(component),
                    how: format!("rustup component add {component} --toolchain nightly"),
                    install: Some(Box::new(move || {
                        rustup(&["component", "add", component, "--toolchain", "nightly"])
                    })),
                });
            }
        }
    }
    if !succeeds("bpf-linker", &["--version"]) {
        if !Path::new(LLVM_PREFIX).join("bin/llvm-config").exists() {
            missing.push(Missing {
                what: "LLVM 22 development files (for bpf-linker)",
                how: "apt-get install -y llvm-22-dev".into(),
                install: Some(Box::new(|| {
                    apt_get(&["install", "-y", "-q", "llvm-22-dev"])
                })),
            });
        }
        missing.push(Missing {
            what: "bpf-linker",
            how: format!(
                "LLVM_PREFIX={LLVM_PREFIX} LLVM_SYS_221_PREFIX={LLVM_PREFIX} cargo install bpf-linker --version {BPF_LINKER_VERSION} --locked --no-default-features --features llvm-22"
            ),
            install: Some(Box::new(install_bpf_linker)),
        });
    }
    if needs == Needs::Everything {
        if !succeeds("bpftool", &["version"]) {
            missing.push(Missing {
                what: "bpftool (inspecting pinned maps)",
                how: "apt-get install -y bpftool".into(),
                install: Some(Box::new(|| apt_get(&["install", "-y", "-q", "bpftool"]))),
            });
        }
        // The lab writes kube-proxy's rules for Services (iptables or nftables mode) in its
        // node namespaces; the web view's test opens the page in a real browser.
        for (package, path, what) in [
            (
                "iptables",
                "/usr/sbin/iptables-restore",
                "iptables (the lab's kube-proxy rules, iptables mode)",
            ),
            (
                "nftables",
                "/usr/sbin/nft",
                "nftables (the lab's kube-proxy rules, nftables mode)",
            ),
            (
                "chromium",
                "/usr/bin/chromium",
                "chromium (the web view's test, headless)",
            ),
        ] {
            if !Path::new(path).exists() {
                missing.push(Missing {
                    what,
                    how: format!("apt-get install -y {package}"),
                    install: Some(Box::new(move || apt_get(&["install", "-y", "-q", package]))),
                });
            }
        }
        if !bpffs_mounted() {
            missing.push(Missing {
                what: "bpffs at /sys/fs/bpf (for pinned maps)",
                how: "mount -t bpf bpf /sys/fs/bpf".into(),
                install: Some(Box::new(|| {
                    let mut mount = Command::new("mount");
                    mount.args(["-t", "bpf", "bpf", "/sys/fs/bpf"]);
                    process::run(mount)
                })),
            });
        }
        if !is_root() {
            missing.push(Missing {
                what: "root (loading BPF programs and creating network namespaces)",
                how: "run as root, e.g. `sudo -E cargo xtask ...`".into(),
                install: None,
            });
        }
    }
    missing
}

fn component_name(component: &str) -> &'static str {
    match component {
        "rust-src" => "rust-src for nightly (eBPF builds core from source)",
        _ => "clippy for nightly (linting the eBPF crate)",
    }
}

fn rustup(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args(args);
    process::run(cmd)
}

fn apt_get(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    process::run(cmd)
}

fn install_bpf_linker() -> Result<()> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--locked",
        "--no-default-features",
        "--features",
        "llvm-22",
    ])
    .env("LLVM_PREFIX", LLVM_PREFIX)
    .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX);
    process::run(cmd)
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn bpffs_mounted() -> bool {
    fs::read_to_string("/proc/mounts").is_ok_and(|mounts| {
        mounts.lines().any(|l| {
            let mut fields = l.split_whitespace();
            let (_, mountpoint, fstype) = (fields.next(), fields.next(), fields.next());
            mountpoint == Some("/sys/fs/bpf") && fstype == Some("bpf")
        })
    })
}
