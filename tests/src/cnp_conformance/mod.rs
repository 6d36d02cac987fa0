//! The kubernetes-sigs/network-policy-api conformance suite as lab scenarios.
//!
//! [`v1alpha2::tests`] (ClusterNetworkPolicy, upstream `HEAD` at [`UPSTREAM_COMMIT_V1ALPHA2`])
//! and [`v1alpha1::tests`] (AdminNetworkPolicy and BaselineAdminNetworkPolicy, tag `v0.1.8` at
//! [`UPSTREAM_COMMIT_V1ALPHA1`]) describe every ported `t.Run` of upstream's
//! `conformance/tests/*.go`: the changes the Go code makes to the live objects between probes
//! (rules swapped, an action or the priority set, a named port or a CIDR rule put in, a
//! NetworkPolicy deleted, a namespace relabelled) and its `PokeServer` calls, in order. The
//! policies are upstream's manifests, copied verbatim under `upstream/` (see
//! [`upstream_manifest`]). The expectations come from upstream's code only.
//!
//! [`generate::scenario`] writes one scenario per version and tier (the `admin-network-policy-*`
//! files, with the integration and priority tests, or the `baseline-*` ones), each test's
//! subtests as consecutive steps: one lab (one agent start) runs a whole group, which keeps the
//! cost of the suite to four labs. `gen-cnp-conformance` writes them to [`SCENARIO_DIR`] (TCP
//! and UDP probes: `tests/lab/cnp_conformance.rs` runs them in the lab) and [`SCTP_SCENARIO_DIR`]
//! (the SCTP probes of the tests that have any: BPF-only, since this kernel has no SCTP sockets;
//! `tests/kernel/conformance_bpf.rs` replays both directories through the real programs).
//!
//! Left out ([`LEFT_OUT`]): the node-peer tests, whose policies have `nodes` peers, which the
//! agent rejects (naming the field).

pub mod generate;
pub mod model;
pub mod v1alpha1;
pub mod v1alpha2;

use std::{fs, path::Path};

use anyhow::Context as _;

use crate::conformance::scenario_files;
use generate::Variant;
use model::{LeftOut, Test, Version};

/// kubernetes-sigs/network-policy-api `HEAD` the v1alpha2 tests are transcribed from.
pub const UPSTREAM_COMMIT_V1ALPHA2: &str = "0eec1b0e5fa92715b4c0f4c48d3c8d2913ed2159";
/// kubernetes-sigs/network-policy-api tag `v0.1.8`, which the v1alpha1 tests come from.
pub const UPSTREAM_COMMIT_V1ALPHA1: &str = "5a62954284765fb16f2e601f11907ca0b839b89f";

/// Where the scenarios the lab runs live, relative to the workspace root.
pub const SCENARIO_DIR: &str = "examples/cnp-conformance";
/// Where the BPF-only (SCTP) scenarios live, relative to the workspace root.
pub const SCTP_SCENARIO_DIR: &str = "examples/cnp-conformance-sctp";
/// Both, as the BPF runner replays them.
pub const SCENARIO_DIRS: [&str; 2] = [SCENARIO_DIR, SCTP_SCENARIO_DIR];

const NODE_PEERS: &str = "its manifest (experimental-egress-selector-rules.yaml) has `nodes` \
                          peers, which the agent rejects; its server is a host-network pod the \
                          lab cannot run";

/// Every upstream subtest without a step, and why.
pub const LEFT_OUT: &[LeftOut] = &[
    LeftOut {
        version: Version::V1alpha2,
        file: "admin-network-policy-experimental-egress-rules.go",
        short_name: "CNPAdminTierEgressNodePeers",
        subtest: "Should support an 'allow-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha2,
        file: "admin-network-policy-experimental-egress-rules.go",
        short_name: "CNPAdminTierEgressNodePeers",
        subtest: "Should support a 'pass-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha2,
        file: "admin-network-policy-experimental-egress-rules.go",
        short_name: "CNPAdminTierEgressNodePeers",
        subtest: "Should support a 'deny-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha2,
        file: "baseline-admin-network-policy-experimental-egress-rules.go",
        short_name: "CNPBaselineTierEgressNodePeers",
        subtest: "Should support an 'allow-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha2,
        file: "baseline-admin-network-policy-experimental-egress-rules.go",
        short_name: "CNPBaselineTierEgressNodePeers",
        subtest: "Should support a 'deny-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha1,
        file: "admin-network-policy-experimental-egress-rules.go",
        short_name: "AdminNetworkPolicyEgressNodePeers",
        subtest: "Should support an 'allow-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha1,
        file: "admin-network-policy-experimental-egress-rules.go",
        short_name: "AdminNetworkPolicyEgressNodePeers",
        subtest: "Should support a 'pass-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha1,
        file: "admin-network-policy-experimental-egress-rules.go",
        short_name: "AdminNetworkPolicyEgressNodePeers",
        subtest: "Should support a 'deny-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha1,
        file: "baseline-admin-network-policy-experimental-egress-rules.go",
        short_name: "BaselineAdminNetworkPolicyEgressNodePeers",
        subtest: "Should support an 'allow-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
    LeftOut {
        version: Version::V1alpha1,
        file: "baseline-admin-network-policy-experimental-egress-rules.go",
        short_name: "BaselineAdminNetworkPolicyEgressNodePeers",
        subtest: "Should support a 'deny-egress' rule policy for egress-node-peer",
        reason: NODE_PEERS,
    },
];

/// Upstream's manifests, verbatim, by version and path under `conformance/`.
const MANIFESTS: &[(Version, &str, &str)] = &[
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-egress-inline-cidr-rules.yaml",
        include_str!(
            "upstream/v1alpha1/admin_network_policy/standard-egress-inline-cidr-rules.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-egress-sctp-rules.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-egress-sctp-rules.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-egress-tcp-rules.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-egress-tcp-rules.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-egress-udp-rules.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-egress-udp-rules.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-gress-rules-combined.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-gress-rules-combined.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-ingress-sctp-rules.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-ingress-sctp-rules.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-ingress-tcp-rules.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-ingress-tcp-rules.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-ingress-udp-rules.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-ingress-udp-rules.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/admin_network_policy/standard-priority-field.yaml",
        include_str!("upstream/v1alpha1/admin_network_policy/standard-priority-field.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/api_integration/standard-anp-np-banp.yaml",
        include_str!("upstream/v1alpha1/api_integration/standard-anp-np-banp.yaml"),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-egress-inline-cidr-rules.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-egress-inline-cidr-rules.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-egress-sctp-rules.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-egress-sctp-rules.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-egress-tcp-rules.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-egress-tcp-rules.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-egress-udp-rules.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-egress-udp-rules.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-gress-rules-combined.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-gress-rules-combined.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-ingress-sctp-rules.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-ingress-sctp-rules.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-ingress-tcp-rules.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-ingress-tcp-rules.yaml"
        ),
    ),
    (
        Version::V1alpha1,
        "base/baseline_admin_network_policy/standard-ingress-udp-rules.yaml",
        include_str!(
            "upstream/v1alpha1/baseline_admin_network_policy/standard-ingress-udp-rules.yaml"
        ),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-egress-inline-cidr-rules.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-egress-inline-cidr-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-egress-sctp-rules.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-egress-sctp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-egress-tcp-rules.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-egress-tcp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-egress-udp-rules.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-egress-udp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-gress-rules-combined.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-gress-rules-combined.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-ingress-sctp-rules.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-ingress-sctp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-ingress-tcp-rules.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-ingress-tcp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-ingress-udp-rules.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-ingress-udp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/admin_tier/standard-priority-field.yaml",
        include_str!("upstream/v1alpha2/admin_tier/standard-priority-field.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/api_integration/standard-anp-np-banp.yaml",
        include_str!("upstream/v1alpha2/api_integration/standard-anp-np-banp.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-egress-inline-cidr-rules.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-egress-inline-cidr-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-egress-sctp-rules.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-egress-sctp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-egress-tcp-rules.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-egress-tcp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-egress-udp-rules.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-egress-udp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-gress-rules-combined.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-gress-rules-combined.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-ingress-sctp-rules.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-ingress-sctp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-ingress-tcp-rules.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-ingress-tcp-rules.yaml"),
    ),
    (
        Version::V1alpha2,
        "base/baseline_tier/standard-ingress-udp-rules.yaml",
        include_str!("upstream/v1alpha2/baseline_tier/standard-ingress-udp-rules.yaml"),
    ),
];

/// The text of upstream's manifest `path` (`base/...`) at `version`'s revision.
pub fn upstream_manifest(version: Version, path: &str) -> Option<&'static str> {
    MANIFESTS
        .iter()
        .find(|(v, p, _)| *v == version && *p == path)
        .map(|(_, _, text)| *text)
}

/// Every ported test of both versions, in upstream's order (v1alpha2 first).
pub fn all_tests() -> Vec<Test> {
    let mut tests = v1alpha2::tests();
    tests.extend(v1alpha1::tests());
    tests
}

/// One generated scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// [`SCENARIO_DIR`] or [`SCTP_SCENARIO_DIR`].
    pub dir: &'static str,
    pub name: String,
    pub contents: String,
}

/// Every scenario: per version, the admin-tier group then the baseline one, in both variants.
pub fn generate() -> anyhow::Result<Vec<Generated>> {
    let tests = all_tests();
    let mut files = Vec::new();
    for (variant, dir) in [
        (Variant::Lab, SCENARIO_DIR),
        (Variant::Sctp, SCTP_SCENARIO_DIR),
    ] {
        for version in Version::ALL {
            for baseline in [false, true] {
                files.push(Generated {
                    dir,
                    name: generate::file_name(version, baseline, variant),
                    contents: generate::scenario(version, &tests, baseline, variant)?,
                });
            }
        }
    }
    Ok(files)
}

/// Writes every scenario under `root` (the workspace root; directories are created if
/// missing) and removes `*.yaml` files there that nothing generates. Returns each directory
/// with the number of files written to it.
pub fn write_all(root: &Path) -> anyhow::Result<Vec<(std::path::PathBuf, usize)>> {
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

/// Differences between what [`generate`] makes and the files under `root`, one line each
/// (empty when identical).
pub fn differences(root: &Path) -> anyhow::Result<Vec<String>> {
    let files = generate()?;
    let mut out = Vec::new();
    for dir_name in SCENARIO_DIRS {
        let dir = root.join(dir_name);
        let mine: Vec<&Generated> = files.iter().filter(|f| f.dir == dir_name).collect();
        for file in &mine {
            match fs::read_to_string(dir.join(&file.name)) {
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
                        "{dir_name}/{}: differs from the generator (line {})",
                        file.name,
                        line + 1
                    ));
                }
                Err(e) => out.push(format!("{dir_name}/{}: {e}", file.name)),
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
                out.push(format!("{dir_name}/{name}: not generated"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{
        model::{Change, Kind, Probe},
        *,
    };
    use crate::lab::Scenario;

    /// Where this machine keeps a clone of upstream (a git directory), if it does: the
    /// transcription is then checked against the Go source.
    const MIRROR: &str = "/work/.mirror/kubernetes-sigs+network-policy-api/repo";

    #[test]
    fn every_scenario_parses_and_carries_every_probe() -> anyhow::Result<()> {
        let tests = all_tests();
        let files = generate()?;
        assert_eq!(files.len(), 8);
        let mut seen: Vec<(Variant, usize)> = Vec::new();
        for file in &files {
            let scenario = Scenario::from_yaml(&file.contents)
                .with_context(|| format!("{}/{}", file.dir, file.name))?;
            assert_eq!(scenario.pods()?.len(), 8, "{}", file.name);
            let variant = if file.dir == SCTP_SCENARIO_DIR {
                Variant::Sctp
            } else {
                Variant::Lab
            };
            let probes: Vec<_> = scenario.steps.iter().flat_map(|s| &s.probes).collect();
            assert!(
                probes.iter().all(|p| variant.keeps(p.protocol)),
                "{}",
                file.name
            );
            seen.push((variant, probes.len()));
            // The header names the upstream commit.
            let header: String = file.contents.lines().take(3).collect();
            assert!(
                header.contains(UPSTREAM_COMMIT_V1ALPHA2)
                    || header.contains(UPSTREAM_COMMIT_V1ALPHA1),
                "{}",
                file.name
            );
        }
        for variant in [Variant::Lab, Variant::Sctp] {
            let described = tests
                .iter()
                .flat_map(Test::probes)
                .filter(|p| variant.keeps(p.protocol))
                .count();
            let written: usize = seen
                .iter()
                .filter(|(v, _)| *v == variant)
                .map(|(_, n)| n)
                .sum();
            assert_eq!(written, described, "{variant:?}");
        }
        Ok(())
    }

    #[test]
    fn counts_cover_upstream() {
        for version in Version::ALL {
            let mine: Vec<Test> = all_tests()
                .into_iter()
                .filter(|t| t.version == version)
                .collect();
            let subtests: usize = mine.iter().map(|t| t.subtests.len()).sum();
            let left = LEFT_OUT.iter().filter(|l| l.version == version).count();
            // 92 t.Run in each version's conformance/tests/*.go.
            assert_eq!(subtests + left, 92, "{version}");
            assert_eq!(left, 5, "{version}");
            let probes = mine.iter().flat_map(Test::probes).count();
            // 301 (HEAD) and 289 (v0.1.8) PokeServer calls, 9 of them in the left-out tests.
            let upstream = match version {
                Version::V1alpha2 => 301,
                Version::V1alpha1 => 289,
            };
            assert_eq!(probes + 9, upstream, "{version}");
            // Every manifest a test names is copied.
            for test in &mine {
                for path in &test.manifests {
                    assert!(upstream_manifest(version, path).is_some(), "{path}");
                }
            }
        }
    }

    #[test]
    fn policies_are_cluster_scoped_and_of_their_version() -> anyhow::Result<()> {
        for file in generate()? {
            let scenario = Scenario::from_yaml(&file.contents)?;
            for object in scenario.steps.iter().flat_map(|s| &s.apply) {
                let Some(kind) = Kind::from_name(&object.key.kind) else {
                    continue;
                };
                if kind == Kind::NetworkPolicy {
                    assert!(object.key.namespace.is_some());
                    continue;
                }
                assert_eq!(object.key.namespace, None, "{}", file.name);
                let expected = if file.name.contains("v1alpha2") {
                    Version::V1alpha2
                } else {
                    Version::V1alpha1
                };
                assert_eq!(
                    object.manifest["apiVersion"],
                    expected.api_version(),
                    "{}",
                    file.name
                );
            }
        }
        Ok(())
    }

    /// One `PokeServer` call read from the Go source: client pod, protocol, server pod, port
    /// and shouldConnect.
    type GoProbe = (String, String, String, u16, bool);

    /// The first quoted string of `text`.
    fn first_quoted(text: &str) -> Option<&str> {
        text.split('"').nth(1)
    }

    /// The pod the Go variable `var` was last fetched as in `before`: `var := kubernetes
    /// .GetPod(t, c, "ns", "name", ...)` (HEAD) or `s.Client.Get(ctx, client.ObjectKey{...,
    /// Name: "name"}, var)` (v0.1.8).
    fn server_of(before: &str, var: &str) -> Option<String> {
        let get_pod = [
            format!("{var} := kubernetes.GetPod("),
            format!("{var} = kubernetes.GetPod("),
        ]
        .iter()
        .filter_map(|needle| before.rfind(needle.as_str()))
        .max();
        let object_key = before.rfind(&format!("}}, {var})"));
        match (get_pod, object_key) {
            (Some(g), k) if k.is_none_or(|k| g > k) => {
                before[g..].split('"').nth(3).map(str::to_owned)
            }
            (_, Some(k)) => {
                let name = before[..k].rfind("Name:")?;
                first_quoted(&before[name..k]).map(str::to_owned)
            }
            _ => None,
        }
    }

    /// Each `t.Run` title of `source` with its `PokeServer` calls.
    fn go_probes(source: &str) -> Vec<(String, Vec<GoProbe>)> {
        let mut subtests: Vec<(String, Vec<GoProbe>)> = Vec::new();
        let mut offset = 0;
        loop {
            let rest = &source[offset..];
            let run = rest.find("t.Run(\"");
            let poke = rest.find("PokeServer(t,");
            match (run, poke) {
                (Some(r), p) if p.is_none_or(|p| r < p) => {
                    let after = &rest[r + 7..];
                    let end = after.find("\", func").unwrap_or(0);
                    subtests.push((after[..end].to_owned(), Vec::new()));
                    offset += r + 7 + end;
                }
                (_, Some(p)) => {
                    let after = &rest[p..];
                    let end = after.find(")\n").unwrap_or(after.len());
                    let call = &after[..end];
                    let quoted: Vec<&str> = call.split('"').skip(1).step_by(2).collect();
                    let port = call
                        .split("int32(")
                        .nth(1)
                        .and_then(|s| s.split(')').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let should = call.trim_end().ends_with("true");
                    let server = call
                        .split(".Status.PodIP")
                        .next()
                        .and_then(|s| s.rsplit([' ', ',', '\t', '\n']).next())
                        .and_then(|var| server_of(&source[..offset + p], var))
                        .unwrap_or_default();
                    if let (Some(last), [_, pod, proto, ..]) = (subtests.last_mut(), &quoted[..]) {
                        last.1.push((
                            (*pod).to_owned(),
                            proto.to_uppercase(),
                            server,
                            port,
                            should,
                        ));
                    }
                    offset += p + end;
                }
                _ => break,
            }
        }
        subtests
    }

    /// The text between the first `"` after `needle`'s last occurrence in `text` and the next.
    fn quoted_after_last(text: &str, needle: &str) -> Option<String> {
        let at = text.rfind(needle)?;
        first_quoted(&text[at + needle.len()..]).map(str::to_owned)
    }

    /// The name of the policy the Go code last fetched in `before`: `GetClusterNetworkPolicy(t,
    /// c, "name", ...)` (HEAD) or `s.Client.Get(ctx, client.ObjectKey{Name: "name"}, anp)`.
    fn policy_of(before: &str) -> Option<String> {
        let get = before.rfind("GetClusterNetworkPolicy(");
        let key = ["}, anp)", "}, banp)"]
            .iter()
            .filter_map(|n| before.rfind(n))
            .max();
        match (get, key) {
            (Some(g), k) if k.is_none_or(|k| g > k) => {
                before[g..].split('"').nth(1).map(str::to_owned)
            }
            (_, Some(k)) => quoted_after_last(&before[..k], "Name:"),
            _ => None,
        }
    }

    /// `Spec.Egress[3]` → `("egress", 3)`.
    fn rule_ref(text: &str) -> Option<(String, usize)> {
        let at = text.find("Spec.")?;
        let rest = &text[at + 5..];
        let (gress, rest) = rest.split_once('[')?;
        let index = rest.split(']').next()?.parse().ok()?;
        Some((gress.to_lowercase(), index))
    }

    /// Each subtest of `source` (one test's Go code) as the sequence of what it does: its
    /// changes, as [`change_key`] writes them, and `probe` for each `PokeServer` call.
    fn go_events(source: &str) -> Vec<Vec<String>> {
        let mut subtests: Vec<Vec<String>> = Vec::new();
        let mut strings: Vec<(String, String)> = Vec::new();
        let mut rule: Option<(String, usize)> = None;
        let mut action = String::new();
        let mut cidrs: Vec<String> = Vec::new();
        for line in source.lines() {
            let at = line.as_ptr() as usize - source.as_ptr() as usize;
            let before = &source[..at];
            let t = line.trim();
            if t.starts_with("//") {
                continue;
            }
            if t.contains("t.Run(\"") {
                subtests.push(Vec::new());
                continue;
            }
            let Some(events) = subtests.last_mut() else {
                continue;
            };
            let policy = || policy_of(before).unwrap_or_default();
            if t.contains("PokeServer(t,") {
                events.push("probe".to_owned());
            } else if let Some((left, right)) = t.split_once(" = ")
                && left.starts_with("mutate.Spec.")
                && right.starts_with("mutate.Spec.")
            {
                if let (Some((g, i)), Some((_, j))) = (rule_ref(left), rule_ref(right)) {
                    events.push(format!("{}: swap {g} {i} {j}", policy()));
                }
            } else if let Some((left, right)) = t.split_once(".Action = ") {
                if let (Some((g, i)), Some(a)) = (rule_ref(left), right.split("RuleAction").nth(1))
                {
                    events.push(format!("{}: action {g} {i} {a}", policy()));
                }
            } else if let Some(priority) = t.strip_prefix("mutate.Spec.Priority = ") {
                events.push(format!("{}: priority {priority}", policy()));
            } else if t.contains(":= mutate") && t.contains(".Spec.") {
                rule = rule_ref(t);
            } else if let Some((var, value)) = t.split_once(" := \"") {
                strings.push((var.to_owned(), value.trim_end_matches('"').to_owned()));
            } else if let Some(var) = t
                .strip_prefix("DestinationNamedPort: ")
                .or_else(|| t.strip_prefix("NamedPort: &"))
            {
                let var = var.trim_end_matches(',');
                let port = strings
                    .iter()
                    .rev()
                    .find(|(v, _)| v == var)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default();
                if let Some((g, i)) = &rule {
                    events.push(format!("{}: named {g} {i} {port}", policy()));
                }
            } else if let Some(a) = t.strip_prefix("Action: ") {
                action = a.trim_end_matches(',').trim_matches('"').to_owned();
            } else if let Some(var) = t
                .split_once("CIDR(")
                .and_then(|(_, s)| s.split_once(".Status.PodIP + mask"))
                .map(|(var, _)| var)
            {
                cidrs.push(server_of(before, var).unwrap_or_default());
            } else if t.starts_with("mutate.Spec.Egress = append(newRule") {
                events.push(format!(
                    "{}: prepend {action} {}",
                    policy(),
                    std::mem::take(&mut cidrs).join(" ")
                ));
            } else if let Some(labels) = t.split("SetLabels(").nth(1) {
                let namespace =
                    quoted_after_last(before, "GetNamespace(t, s.Client, ").unwrap_or_default();
                let value = labels.split('"').nth(3).unwrap_or_default();
                events.push(format!("labels {namespace} {value}"));
            } else if t.contains("s.Client.Delete(ctx, np)") {
                let name = quoted_after_last(before, "Name:").unwrap_or_default();
                events.push(format!("delete {name}"));
            }
        }
        subtests
    }

    /// A change as [`go_events`] reads it from the Go code.
    fn change_key(change: &Change) -> String {
        let policy = change.policy().map(|p| p.name).unwrap_or_default();
        match change {
            Change::SwapRules { gress, i, j, .. } => {
                format!("{policy}: swap {} {i} {j}", gress.field())
            }
            Change::SetAction {
                gress,
                index,
                action,
                ..
            } => format!("{policy}: action {} {index} {action}", gress.field()),
            Change::SetPriority { priority, .. } => format!("{policy}: priority {priority}"),
            Change::SetNamedPort {
                gress, index, port, ..
            } => format!("{policy}: named {} {index} {port}", gress.field()),
            Change::PrependNetworksEgressRule { action, pods, .. } => format!(
                "{policy}: prepend {action} {} {}",
                pods[0].name(),
                pods[1].name()
            ),
            Change::DeleteNetworkPolicy { name, .. } => format!("delete {name}"),
            Change::SetNamespaceLabels { house, labels } => {
                let value = labels.iter().map(|(_, v)| *v).collect::<Vec<_>>().join(",");
                format!("labels {} {value}", house.namespace())
            }
        }
    }

    #[test]
    fn transcription_matches_the_go_source() -> anyhow::Result<()> {
        if !Path::new(MIRROR).is_dir() {
            eprintln!("no upstream clone at {MIRROR}: the transcription is not checked");
            return Ok(());
        }
        let tests = all_tests();
        let mut checked = BTreeSet::new();
        for test in &tests {
            let (reference, _) = test.version.upstream();
            let output = std::process::Command::new("git")
                .args(["-C", MIRROR, "show"])
                .arg(format!("{reference}:conformance/tests/{}", test.file))
                .output()?;
            anyhow::ensure!(output.status.success(), "git show {}", test.file);
            let source = String::from_utf8(output.stdout)?;
            // The file's subtests in order, less those of other tests in the same file.
            let start = source
                .find(&format!("var {} = suite.ConformanceTest", test.short_name))
                .with_context(|| format!("{} not in {}", test.short_name, test.file))?;
            let end = source[start + 1..]
                .find("\nvar ")
                .map_or(source.len(), |e| start + 1 + e);
            let go = go_probes(&source[start..end]);
            assert_eq!(go.len(), test.subtests.len(), "{}", test.short_name);
            for ((title, calls), subtest) in go.iter().zip(&test.subtests) {
                assert_eq!(title, subtest.title, "{}", test.short_name);
                let mine: Vec<GoProbe> = subtest
                    .phases
                    .iter()
                    .flat_map(|p| &p.probes)
                    .map(|p: &Probe| {
                        (
                            p.client.name(),
                            p.protocol.to_string().to_uppercase(),
                            p.server.name(),
                            p.port,
                            p.should_connect,
                        )
                    })
                    .collect();
                assert_eq!(calls, &mine, "{} / {title}", test.short_name);
            }
            // And the changes between them, in the same places.
            let events = go_events(&source[start..end]);
            assert_eq!(events.len(), test.subtests.len(), "{}", test.short_name);
            for (go, subtest) in events.iter().zip(&test.subtests) {
                let mine: Vec<String> = subtest
                    .phases
                    .iter()
                    .flat_map(|p| {
                        p.changes
                            .iter()
                            .map(change_key)
                            .chain(p.probes.iter().map(|_| "probe".to_owned()))
                    })
                    .collect();
                assert_eq!(go, &mine, "{} / {}", test.short_name, subtest.title);
            }
            checked.insert((test.version, test.file));
            // The copied manifests are upstream's, byte for byte.
            for path in &test.manifests {
                let output = std::process::Command::new("git")
                    .args(["-C", MIRROR, "show"])
                    .arg(format!("{reference}:conformance/{path}"))
                    .output()?;
                anyhow::ensure!(output.status.success(), "git show {path}");
                assert_eq!(
                    upstream_manifest(test.version, path).map(str::as_bytes),
                    Some(&output.stdout[..]),
                    "{path}"
                );
            }
        }
        // Every file of conformance/tests/ but main.go, in both versions.
        assert_eq!(checked.len(), 2 * 22);
        Ok(())
    }
}
