//! The upstream Kubernetes NetworkPolicy e2e suite as lab scenarios.
//!
//! [`cases::all`] describes every ported `f.It(...)` of kubernetes/kubernetes
//! `test/e2e/network/netpol/network_policy.go` (at [`UPSTREAM_COMMIT`]) in Rust, call for call:
//! the policies as upstream's `GenNetworkPolicy*`/`SetSpec*` builders make them, the changes
//! between checks (`CreatePolicy`, `UpdatePolicy`, `cleanNetworkPolicies`, `AddPodLabels`,
//! `AddNamespaceLabel`), and each `ValidateOrFail` with its `Reachability` built by the same
//! operations (`ExpectPeer`, `ExpectAllIngress`, `ExpectAllEgress`, `Expect`). The expectations
//! come from upstream's code only.
//!
//! [`generate::scenario`] expands a case into a scenario: namespaces x, y, z and pods a, b, c
//! as upstream's model makes them (`model.go`, `kubemanager.go`), upstream's
//! `waitForHTTPServers` as a first step, then every probe of every matrix (81 ordered pairs
//! minus the 9 pairs of a pod with itself, which upstream ignores and which never cross a pod's
//! interface). `gen-conformance` writes them to `examples/conformance/`, and
//! `tests/conformance.rs` checks the committed files are exactly what this generates and runs
//! them all through the lab.
//!
//! The SCTP context's cases probe SCTP, which this kernel cannot open sockets for: they are
//! BPF-only ([`model::Case::bpf_only`]) and go to `examples/conformance-sctp/` instead, where
//! the lab test does not look. `tests/conformance_bpf.rs` runs both directories at the BPF
//! level: every probe as crafted frames through the real programs (`BPF_PROG_TEST_RUN`) on
//! maps programmed by the real agent code.
//!
//! Upstream's later revisions probe a per-case subset of the 9 pods (same construction, fewer
//! rows and columns) and build the `/4` of the ipBlock-except cases with `makeLargeCIDRForIP`
//! (the canonical `0.0.0.0/4`) instead of `<x/a's podIP>/4`; this port follows
//! [`UPSTREAM_COMMIT`], where every case uses all 9 pods.

pub mod cases;
pub mod generate;
pub mod model;
pub mod yaml;

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

/// The upstream revision the cases are translated from.
pub const UPSTREAM_COMMIT: &str = "9db638c0807a720aa050ebcef69c32e4d4cce280";
pub const UPSTREAM_DIR: &str = "test/e2e/network/netpol";
pub const UPSTREAM_FILE: &str = "network_policy.go";

/// Where the generated scenarios the lab runs live, relative to the workspace root.
pub const SCENARIO_DIR: &str = "examples/conformance";

/// Where the BPF-only scenarios (they probe SCTP) live, relative to the workspace root.
pub const SCTP_SCENARIO_DIR: &str = "examples/conformance-sctp";

/// Every directory scenarios are generated into.
pub const SCENARIO_DIRS: [&str; 2] = [SCENARIO_DIR, SCTP_SCENARIO_DIR];

/// An upstream case that is not ported, and why.
#[derive(Debug, Clone, Copy)]
pub struct LeftOut {
    pub context: &'static str,
    pub title: &'static str,
    pub reason: &'static str,
}

/// Every upstream `It` of `network_policy.go` that has no scenario: none at
/// [`UPSTREAM_COMMIT`] (the SCTP context's cases are BPF-only scenarios).
pub const LEFT_OUT: &[LeftOut] = &[];

/// One generated scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// [`SCENARIO_DIR`] or [`SCTP_SCENARIO_DIR`].
    pub dir: &'static str,
    pub name: String,
    pub contents: String,
}

/// Every scenario, in upstream's order (one per case of [`cases::all`]).
pub fn generate() -> anyhow::Result<Vec<Generated>> {
    let mut files: Vec<Generated> = Vec::new();
    for case in cases::all() {
        let name = case.file_name();
        if files.iter().any(|f| f.name == name) {
            anyhow::bail!("two cases would be written to {name}");
        }
        files.push(Generated {
            dir: case.scenario_dir(),
            contents: generate::scenario(&case)?,
            name,
        });
    }
    Ok(files)
}

/// The `*.yaml` files in `dir`, sorted.
pub fn scenario_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Writes every scenario into its directory under `root` (the workspace root; directories are
/// created if missing) and removes `*.yaml` files there that no case generates. Returns each
/// directory with the number of files written to it.
pub fn write_all(root: &Path) -> anyhow::Result<Vec<(PathBuf, usize)>> {
    let files = generate()?;
    let mut written = Vec::new();
    for dir_name in SCENARIO_DIRS {
        let dir = root.join(dir_name);
        let mine: Vec<&Generated> = files.iter().filter(|f| f.dir == dir_name).collect();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for stale in scenario_files(&dir)? {
            let keep = stale
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| mine.iter().any(|f| f.name == n));
            if !keep {
                fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
            }
        }
        for file in &mine {
            let path = dir.join(&file.name);
            fs::write(&path, &file.contents)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        written.push((dir, mine.len()));
    }
    Ok(written)
}

/// Differences between what [`generate`] makes and the files in the scenario directories under
/// `root` (the workspace root), one line each, named `<dir>/<file>` (empty when identical).
pub fn differences(root: &Path) -> anyhow::Result<Vec<String>> {
    let files = generate()?;
    let mut out = Vec::new();
    for dir_name in SCENARIO_DIRS {
        let dir = root.join(dir_name);
        let mine: Vec<&Generated> = files.iter().filter(|f| f.dir == dir_name).collect();
        for file in &mine {
            let name = &file.name;
            match fs::read_to_string(dir.join(name)) {
                Ok(committed) if committed == file.contents => {}
                Ok(committed) => {
                    let line = committed
                        .lines()
                        .zip(file.contents.lines())
                        .position(|(a, b)| a != b)
                        .unwrap_or_else(|| {
                            committed.lines().count().min(file.contents.lines().count())
                        });
                    out.push(format!(
                        "{dir_name}/{name}: differs from the generator (line {})",
                        line + 1
                    ));
                }
                Err(e) => out.push(format!("{dir_name}/{name}: {e}")),
            }
        }
        if !dir.is_dir() {
            continue;
        }
        for path in scenario_files(&dir)? {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !mine.iter().any(|f| f.name == name) {
                out.push(format!("{dir_name}/{name}: not generated by any case"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Scenario, scenario::MAX_PROBES_PER_STEP};

    #[test]
    fn every_scenario_parses_and_probes_every_pair() -> anyhow::Result<()> {
        let cases = cases::all();
        let files = generate()?;
        assert_eq!(files.len(), cases.len());
        for (case, file) in cases.iter().zip(&files) {
            let name = &file.name;
            let scenario = Scenario::from_yaml(&file.contents).with_context(|| name.clone())?;
            assert_eq!(scenario.pods()?.len(), 9, "{name}");
            assert_eq!(scenario.steps.len(), case.steps.len() + 1, "{name}");
            let probes: usize = scenario.steps.iter().map(|s| s.probes.len()).sum();
            assert_eq!(probes, generate::probe_count(case), "{name}");
            for (step, described) in scenario.steps.iter().skip(1).zip(&case.steps) {
                assert_eq!(step.probes.len(), 72 * described.checks.len(), "{name}");
                assert!(step.probes.len() <= MAX_PROBES_PER_STEP);
                assert!(step.probes.iter().all(|p| p.from != p.to));
            }
        }
        Ok(())
    }

    #[test]
    fn manifests_read_back_as_generated() -> anyhow::Result<()> {
        for case in cases::all() {
            let text = generate::scenario(&case)?;
            let parsed: serde_json::Value = serde_yaml::from_str(&text)?;
            for (s, step) in case.steps.iter().enumerate() {
                for change in &step.changes {
                    if let model::Change::Create { namespace, policy }
                    | model::Change::Update { namespace, policy } = change
                    {
                        let applied = parsed
                            .pointer(&format!("/steps/{}/apply", s + 1))
                            .and_then(|a| a.as_array())
                            .context("apply list")?;
                        let expected = policy.manifest(namespace).to_json();
                        assert!(applied.contains(&expected), "{}", case.title);
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn titles_and_files_are_unique_and_cover_upstream() -> anyhow::Result<()> {
        let files = generate()?;
        // 42 cases in the TCP context, 3 in the UDP one and 3 in the SCTP one; none left out.
        assert_eq!(files.len(), 48);
        assert!(LEFT_OUT.is_empty());
        let in_dir = |dir: &str| files.iter().filter(|f| f.dir == dir).count();
        assert_eq!(in_dir(SCENARIO_DIR), 45);
        assert_eq!(in_dir(SCTP_SCENARIO_DIR), 3);
        Ok(())
    }

    #[test]
    fn only_bpf_only_scenarios_probe_sctp() -> anyhow::Result<()> {
        use crate::lab::scenario::Protocol;
        for file in generate()? {
            let scenario =
                Scenario::from_yaml(&file.contents).with_context(|| file.name.clone())?;
            let probes = || scenario.steps.iter().flat_map(|s| &s.probes);
            if file.dir == SCTP_SCENARIO_DIR {
                assert!(file.name.starts_with("sctp-"), "{}", file.name);
                assert!(
                    probes().all(|p| p.protocol == Protocol::Sctp),
                    "{}",
                    file.name
                );
            } else {
                assert!(
                    probes().all(|p| p.protocol != Protocol::Sctp),
                    "{}",
                    file.name
                );
            }
        }
        Ok(())
    }
}
