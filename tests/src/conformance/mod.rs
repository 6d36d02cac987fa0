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
//! them all.
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

/// Where the generated scenarios live, relative to the workspace root.
pub const SCENARIO_DIR: &str = "examples/conformance";

/// An upstream case that is not ported, and why.
#[derive(Debug, Clone, Copy)]
pub struct LeftOut {
    pub context: &'static str,
    pub title: &'static str,
    pub reason: &'static str,
}

const SCTP_CONTEXT: &str = "SIGDescribe(\"Netpol\", feature.SCTPConnectivity, \"[LinuxOnly]\") / \
                            Context(\"NetworkPolicy between server and client using SCTP\")";
const SCTP_REASON: &str = "probes SCTP connections; this kernel has no SCTP sockets (SCTP \
                           verdicts are tested at the BPF level)";

/// Every upstream `It` of `network_policy.go` that has no scenario.
pub const LEFT_OUT: &[LeftOut] = &[
    LeftOut {
        context: SCTP_CONTEXT,
        title: "should support a 'default-deny-ingress' policy",
        reason: SCTP_REASON,
    },
    LeftOut {
        context: SCTP_CONTEXT,
        title: "should enforce policy based on Ports",
        reason: SCTP_REASON,
    },
    LeftOut {
        context: SCTP_CONTEXT,
        title: "should enforce policy to allow traffic only from a pod in a different namespace \
                based on PodSelector and NamespaceSelector",
        reason: SCTP_REASON,
    },
];

/// Every scenario: (file name, contents), in upstream's order.
pub fn generate() -> anyhow::Result<Vec<(String, String)>> {
    let mut files: Vec<(String, String)> = Vec::new();
    for case in cases::all() {
        let name = case.file_name();
        if files.iter().any(|(n, _)| *n == name) {
            anyhow::bail!("two cases would be written to {name}");
        }
        files.push((name, generate::scenario(&case)?));
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

/// Writes every scenario into `dir` (created if missing) and removes `*.yaml` files there that
/// no case generates. Returns the number of files written.
pub fn write_all(dir: &Path) -> anyhow::Result<usize> {
    let files = generate()?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for stale in scenario_files(dir)? {
        let keep = stale
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| files.iter().any(|(name, _)| name == n));
        if !keep {
            fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    for (name, contents) in &files {
        let path = dir.join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files.len())
}

/// Differences between what [`generate`] makes and the files in `dir`, one line each (empty
/// when they are identical).
pub fn differences(dir: &Path) -> anyhow::Result<Vec<String>> {
    let files = generate()?;
    let mut out = Vec::new();
    for (name, contents) in &files {
        match fs::read_to_string(dir.join(name)) {
            Ok(committed) if committed == *contents => {}
            Ok(committed) => {
                let line = committed
                    .lines()
                    .zip(contents.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| committed.lines().count().min(contents.lines().count()));
                out.push(format!(
                    "{name}: differs from the generator (line {})",
                    line + 1
                ));
            }
            Err(e) => out.push(format!("{name}: {e}")),
        }
    }
    for path in scenario_files(dir)? {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !files.iter().any(|(n, _)| n == name) {
            out.push(format!("{name}: not generated by any case"));
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
        for (case, (name, text)) in cases.iter().zip(&files) {
            let scenario = Scenario::from_yaml(text).with_context(|| name.clone())?;
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
        // 42 cases in the TCP context and 3 in the UDP one; 3 SCTP ones are left out.
        assert_eq!(files.len(), 45);
        assert_eq!(LEFT_OUT.len(), 3);
        Ok(())
    }
}
