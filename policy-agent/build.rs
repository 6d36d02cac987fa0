//! Builds `policy-ebpf` for `bpfel-unknown-none` with aya-build (nightly + rust-src +
//! bpf-linker) and leaves the object in OUT_DIR, where `dataplane::loader` embeds it.
//! `AYA_BUILD_SKIP=1` skips it (lint-only passes); the agent then embeds an empty object and
//! refuses to start.
use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // aya-build prints its own warning; leave an empty object so include_bytes! resolves.
        fs::write(out_dir.join("policy-ebpf"), []).context("writing placeholder object")?;
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "policy-ebpf")
        .ok_or_else(|| anyhow!("policy-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::Nightly,
    )
}
