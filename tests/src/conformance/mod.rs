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
//! interface). `gen-conformance` writes them to `examples/conformance/`.
//!
//! Upstream probes each server through its own Service (`kubemanager.go` creates one per pod,
//! `probe.go` connects to its ClusterIP). [`generate::service_scenario`] writes the Services
//! variant of each case to `examples/conformance-services/`: the same scenario with upstream's
//! Service per pod, every matrix probed both to the pod addresses (the probes of
//! `examples/conformance/`) and through the ClusterIPs, in the kube-proxy mode(s)
//! [`kube_proxy_modes`] gives it. `tests/lab/conformance.rs` checks the committed files are exactly
//! what this generates and runs every [`service_runs`] entry through the lab.
//!
//! The SCTP context's cases probe SCTP, which this kernel cannot open sockets for: they are
//! BPF-only ([`model::Case::bpf_only`]) and go to `examples/conformance-sctp/` instead, where
//! the lab test does not look (and have no Services variant). `tests/kernel/conformance_bpf.rs` runs
//! both pod-address directories ([`SCENARIO_DIRS`]) at the BPF
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
pub mod runner;
pub mod yaml;

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::lab::KubeProxyMode;

/// The upstream revision the cases are translated from.
pub const UPSTREAM_COMMIT: &str = "9db638c0807a720aa050ebcef69c32e4d4cce280";
pub const UPSTREAM_DIR: &str = "test/e2e/network/netpol";
pub const UPSTREAM_FILE: &str = "network_policy.go";

/// Where the generated scenarios the lab runs live, relative to the workspace root.
pub const SCENARIO_DIR: &str = "examples/conformance";

/// Where the BPF-only scenarios (they probe SCTP) live, relative to the workspace root.
pub const SCTP_SCENARIO_DIR: &str = "examples/conformance-sctp";

/// Where the Services variant of every [`SCENARIO_DIR`] scenario lives, relative to the
/// workspace root: the same case with upstream's Service per pod, each matrix probed both to
/// the pod addresses and through the ClusterIPs (see [`generate::Variant::Services`]).
pub const SERVICE_SCENARIO_DIR: &str = "examples/conformance-services";

/// The directories of scenarios probing pod addresses only (the BPF runner replays these).
pub const SCENARIO_DIRS: [&str; 2] = [SCENARIO_DIR, SCTP_SCENARIO_DIR];

/// Every directory scenarios are generated into.
pub const GENERATED_DIRS: [&str; 3] = [SCENARIO_DIR, SCTP_SCENARIO_DIR, SERVICE_SCENARIO_DIR];

/// The kube-proxy modes the Services variant of each case of `cases` (the lab cases, in
/// upstream's order) runs in, the file's own (`kubeProxy`) first. Each case runs in one mode,
/// chosen so that both modes run every kind of case ([`kinds`]) at the cost of one lab per
/// case: a case goes to the mode in which more of its kinds have not run yet (ties alternate
/// with the previous case). A kind whose cases all went to one mode (the kinds with a single
/// case) has its first case run in the other mode too.
pub fn kube_proxy_modes(cases: &[model::Case]) -> Vec<Vec<KubeProxyMode>> {
    use std::collections::BTreeSet;
    const MODES: [KubeProxyMode; 2] = [KubeProxyMode::Iptables, KubeProxyMode::Nftables];
    let mut ran: [BTreeSet<&'static str>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let mut out: Vec<Vec<KubeProxyMode>> = Vec::new();
    let mut previous = 1;
    for case in cases {
        let kinds = kinds(case);
        let new_in = |m: usize| kinds.iter().filter(|k| !ran[m].contains(*k)).count();
        let m = match new_in(0).cmp(&new_in(1)) {
            std::cmp::Ordering::Greater => 0,
            std::cmp::Ordering::Less => 1,
            std::cmp::Ordering::Equal => 1 - previous,
        };
        ran[m].extend(kinds);
        out.push(vec![MODES[m]]);
        previous = m;
    }
    for (i, case) in cases.iter().enumerate() {
        for kind in kinds(case) {
            for m in 0..2 {
                if !ran[m].contains(kind) {
                    ran[m].insert(kind);
                    out[i].push(MODES[m]);
                }
            }
        }
    }
    out
}

/// Each run of the Services variant: the file name (in [`SERVICE_SCENARIO_DIR`]) and the
/// kube-proxy mode, per [`kube_proxy_modes`].
pub fn service_runs() -> Vec<(String, KubeProxyMode)> {
    let cases: Vec<model::Case> = cases::all().into_iter().filter(|c| !c.bpf_only()).collect();
    kube_proxy_modes(&cases)
        .into_iter()
        .zip(&cases)
        .flat_map(|(modes, case)| {
            let name = case.file_name();
            modes.into_iter().map(move |m| (name.clone(), m))
        })
        .collect()
}

/// What kinds of upstream case `case` is, for spreading cases over kube-proxy modes: the
/// rules its policies have (ingress, egress, ipBlock, `except`, namespaceSelector,
/// matchExpressions, named ports), whether it probes UDP, and the changes it makes between
/// checks (policy updated, policies deleted, pod or namespace relabelled).
pub fn kinds(case: &model::Case) -> Vec<&'static str> {
    use crate::lab::scenario::Protocol;
    let mut out = Vec::new();
    let policies: Vec<String> = case
        .steps
        .iter()
        .flat_map(|s| &s.changes)
        .filter_map(|c| match c {
            model::Change::Create { namespace, policy }
            | model::Change::Update { namespace, policy } => {
                Some(policy.manifest(namespace).to_json().to_string())
            }
            _ => None,
        })
        .collect();
    let any = |needle: &str| policies.iter().any(|p| p.contains(needle));
    let change = |f: fn(&model::Change) -> bool| case.steps.iter().flat_map(|s| &s.changes).any(f);
    if any("\"ingress\"") {
        out.push("ingress rules");
    }
    if any("\"egress\"") {
        out.push("egress rules");
    }
    if any("ipBlock") {
        out.push("ipBlock");
    }
    if any("except") {
        out.push("ipBlock except");
    }
    if any("namespaceSelector") {
        out.push("namespaceSelector");
    }
    if any("matchExpressions") {
        out.push("matchExpressions");
    }
    if policies
        .iter()
        .any(|p| p.contains("\"port\":\"") || p.contains("\"port\": \""))
    {
        out.push("named port");
    }
    if case
        .steps
        .iter()
        .flat_map(|s| &s.checks)
        .any(|c| c.protocol == Protocol::Udp)
    {
        out.push("UDP");
    }
    if change(|c| matches!(c, model::Change::Update { .. })) {
        out.push("policy updated");
    }
    if change(|c| matches!(c, model::Change::CleanPolicies)) {
        out.push("policies deleted");
    }
    if change(|c| matches!(c, model::Change::AddPodLabels { .. })) {
        out.push("pod relabelled");
    }
    if change(|c| matches!(c, model::Change::AddNamespaceLabel { .. })) {
        out.push("namespace relabelled");
    }
    out
}

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
    /// One of [`GENERATED_DIRS`].
    pub dir: &'static str,
    pub name: String,
    pub contents: String,
}

/// Every scenario, in upstream's order: one per case of [`cases::all`] in its
/// [`model::Case::scenario_dir`], then the Services variant of each lab case in
/// [`SERVICE_SCENARIO_DIR`] (same file name).
pub fn generate() -> anyhow::Result<Vec<Generated>> {
    let mut files: Vec<Generated> = Vec::new();
    let mut variants: Vec<Generated> = Vec::new();
    let all = cases::all();
    let lab_cases: Vec<model::Case> = all.iter().filter(|c| !c.bpf_only()).cloned().collect();
    let modes = kube_proxy_modes(&lab_cases);
    for case in all {
        let name = case.file_name();
        if files.iter().any(|f| f.name == name) {
            anyhow::bail!("two cases would be written to {name}");
        }
        if !case.bpf_only() {
            variants.push(Generated {
                dir: SERVICE_SCENARIO_DIR,
                contents: generate::service_scenario(&case, &modes[variants.len()])?,
                name: name.clone(),
            });
        }
        files.push(Generated {
            dir: case.scenario_dir(),
            contents: generate::scenario(&case)?,
            name,
        });
    }
    files.extend(variants);
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
    for dir_name in GENERATED_DIRS {
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
    for dir_name in GENERATED_DIRS {
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
        let files: Vec<Generated> = generate()?
            .into_iter()
            .filter(|f| f.dir != SERVICE_SCENARIO_DIR)
            .collect();
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
        // 42 cases in the TCP context, 3 in the UDP one and 3 in the SCTP one; none left out;
        // a Services variant of each of the 45 the lab runs.
        assert_eq!(files.len(), 48 + 45);
        assert!(LEFT_OUT.is_empty());
        let in_dir = |dir: &str| files.iter().filter(|f| f.dir == dir).count();
        assert_eq!(in_dir(SCENARIO_DIR), 45);
        assert_eq!(in_dir(SCTP_SCENARIO_DIR), 3);
        assert_eq!(in_dir(SERVICE_SCENARIO_DIR), 45);
        Ok(())
    }

    /// A probe reduced to what it checks: (from, to, port, protocol, expect).
    fn key(p: &crate::lab::Probe) -> String {
        format!(
            "{} {} {} {:?} {:?}",
            p.from, p.to, p.port, p.protocol, p.expect
        )
    }

    #[test]
    fn services_variant_adds_each_pods_service_and_probes_through_it() -> anyhow::Result<()> {
        use crate::lab::scenario::ServiceTarget;
        let files = generate()?;
        let modes: Vec<KubeProxyMode> = files
            .iter()
            .filter(|f| f.dir == SERVICE_SCENARIO_DIR)
            .map(|f| Scenario::from_yaml(&f.contents).map(|s| s.kube_proxy))
            .collect::<Result<_, _>>()?;
        let runs = service_runs();
        for (name, mode) in files
            .iter()
            .filter(|f| f.dir == SERVICE_SCENARIO_DIR)
            .map(|f| &f.name)
            .zip(&modes)
        {
            assert_eq!(
                runs.iter().find(|(n, _)| n == name).map(|(_, m)| *m),
                Some(*mode),
                "{name}: its first run is in its own mode"
            );
        }
        for case in cases::all().iter().filter(|c| !c.bpf_only()) {
            let name = case.file_name();
            let find = |dir: &str| {
                files
                    .iter()
                    .find(|f| f.dir == dir && f.name == name)
                    .with_context(|| format!("{dir}/{name}"))
            };
            let direct = Scenario::from_yaml(&find(SCENARIO_DIR)?.contents)?;
            let services = Scenario::from_yaml(&find(SERVICE_SCENARIO_DIR)?.contents)?;
            assert_eq!(services.pods()?, direct.pods()?, "{name}");
            // One Service per pod, named and shaped as upstream's Pod.Service.
            let declared: Vec<&crate::lab::scenario::Object> = services
                .resources
                .iter()
                .filter(|o| o.key.kind == "Service")
                .collect();
            assert_eq!(declared.len(), 9, "{name}");
            for pod in model::all_pods() {
                let expected = generate::service_manifest(case, pod).to_json();
                assert!(
                    declared.iter().any(|o| o.manifest == expected),
                    "{name}: {}",
                    generate::service_name(pod)
                );
            }
            // Upstream's relabels never change a pod's `pod` label: each Service keeps
            // selecting exactly its pod.
            for step in &case.steps {
                for change in &step.changes {
                    if let model::Change::AddPodLabels { pod, labels } = change {
                        assert!(
                            labels.iter().all(|(k, v)| *k != "pod" || *v == pod.name),
                            "{name}"
                        );
                    }
                }
            }
            assert_eq!(services.steps.len(), direct.steps.len(), "{name}");
            for (s, (with, without)) in services.steps.iter().zip(&direct.steps).enumerate() {
                assert_eq!(with.apply.len(), without.apply.len(), "{name} step {s}");
                assert_eq!(with.delete.len(), without.delete.len(), "{name} step {s}");
                let (through, to_pods): (Vec<_>, Vec<_>) =
                    with.probes.iter().partition(|p| p.service.is_some());
                // The pod-address probes are exactly the direct variant's.
                let pod_keys: Vec<String> = to_pods.iter().map(|p| key(p)).collect();
                let direct_keys: Vec<String> = without.probes.iter().map(key).collect();
                assert_eq!(pod_keys, direct_keys, "{name} step {s}");
                // And every one of them again through the server's Service.
                assert_eq!(through.len(), to_pods.len(), "{name} step {s}");
                for (svc, direct) in through.iter().zip(&without.probes) {
                    let expected_service = ServiceTarget::ClusterIp {
                        namespace: direct.to.namespace.clone(),
                        name: format!("s-{}-{}", direct.to.namespace, direct.to.name),
                    };
                    assert_eq!(svc.service.as_ref(), Some(&expected_service), "{name}");
                    assert_eq!(
                        (svc.from.to_string(), svc.port, svc.protocol, svc.expect),
                        (
                            direct.from.to_string(),
                            direct.port,
                            direct.protocol,
                            direct.expect
                        ),
                        "{name} step {s}"
                    );
                }
                assert!(with.probes.len() <= MAX_PROBES_PER_STEP, "{name} step {s}");
            }
        }
        Ok(())
    }

    #[test]
    fn both_modes_cover_every_kind() {
        use std::collections::BTreeMap;
        let lab_cases: Vec<model::Case> =
            cases::all().into_iter().filter(|c| !c.bpf_only()).collect();
        let modes = kube_proxy_modes(&lab_cases);
        let mut covered: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (case, modes) in lab_cases.iter().zip(&modes) {
            for kind in kinds(case) {
                let entry = covered.entry(kind).or_default();
                for mode in modes {
                    match mode {
                        KubeProxyMode::Iptables => entry.0 += 1,
                        KubeProxyMode::Nftables => entry.1 += 1,
                    }
                }
            }
        }
        eprintln!("{covered:?}");
        assert_eq!(covered.len(), 12, "{covered:?}");
        for (kind, (iptables, nftables)) in &covered {
            assert!(
                *iptables > 0 && *nftables > 0,
                "{kind}: {iptables} cases with iptables, {nftables} with nftables"
            );
        }
        // One lab per case, but for the kinds that have a single case.
        let twice: Vec<String> = lab_cases
            .iter()
            .zip(&modes)
            .filter(|(_, m)| m.len() > 1)
            .map(|(c, _)| c.file_name())
            .collect();
        eprintln!("in both modes: {twice:?}");
        assert!(modes.iter().all(|m| !m.is_empty() && m.len() <= 2));
        assert!(twice.len() <= 2, "{twice:?}");
        let runs = service_runs();
        let count = |mode| runs.iter().filter(|(_, m)| *m == mode).count();
        eprintln!(
            "{} runs in iptables mode, {} in nftables mode",
            count(KubeProxyMode::Iptables),
            count(KubeProxyMode::Nftables)
        );
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
