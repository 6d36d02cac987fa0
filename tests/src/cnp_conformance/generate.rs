//! Turns a group of upstream tests into one lab scenario: upstream's houses and pods as
//! resources, a setup step, then one step per phase of every subtest, in upstream's order, with
//! each test's `Manifests` applied at its start (and the previous test's objects deleted, as
//! `MustApplyWithCleanup` does when a test ends).

use std::{collections::BTreeMap, fmt::Write as _};

use anyhow::{Context as _, bail};

use super::{
    LEFT_OUT,
    model::{ALL_PODS, Change, HOUSE_LABEL, House, Kind, Pod, Probe, Test, Version},
    upstream_manifest,
};
use crate::{
    conformance::yaml::{Yaml, emit_seq_item, map, string_map},
    lab::scenario::Protocol,
};

/// The image upstream's containers run; the lab runs its own echo servers instead.
const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.45";

/// The namespace of upstream's host-network pods (`centaur`), which only the node-peer tests
/// (left out) probe: declared, without its pods.
const FORBIDDEN_FORREST: &str = "forbidden-forrest";

/// Which probes a scenario carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// TCP and UDP: the lab runs these (and the BPF runner replays them).
    Lab,
    /// SCTP only: BPF-only, since this kernel has no SCTP sockets.
    Sctp,
}

impl Variant {
    pub fn keeps(self, protocol: Protocol) -> bool {
        match self {
            Variant::Lab => protocol != Protocol::Sctp,
            Variant::Sctp => protocol == Protocol::Sctp,
        }
    }
}

/// The objects a test creates, by kind, namespace (NetworkPolicies only) and name.
type Key = (Kind, Option<String>, String);

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        Protocol::Icmp => "ICMP",
    }
}

/// A parsed manifest as an ordered YAML value, so that it is written back in upstream's field
/// order. A null (the NetworkPolicy's empty `podSelector:`) becomes `{}`, which is what the
/// API server stores for it (`podSelector` is a required struct).
fn to_yaml(value: &serde_yaml::Value) -> anyhow::Result<Yaml> {
    Ok(match value {
        serde_yaml::Value::Null => Yaml::Map(Vec::new()),
        serde_yaml::Value::String(s) => Yaml::Str(s.clone()),
        serde_yaml::Value::Number(n) => Yaml::Int(
            n.as_i64()
                .with_context(|| format!("{n}: only integers are expected"))?,
        ),
        serde_yaml::Value::Sequence(items) => {
            Yaml::Seq(items.iter().map(to_yaml).collect::<anyhow::Result<_>>()?)
        }
        serde_yaml::Value::Mapping(pairs) => Yaml::Map(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = k.as_str().context("a non-string key")?.to_owned();
                    Ok((key, to_yaml(v)?))
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        other => bail!("unexpected YAML value {other:?}"),
    })
}

/// The documents of an upstream manifest file, each with its key.
fn manifests(version: Version, path: &str) -> anyhow::Result<Vec<(Key, serde_yaml::Value)>> {
    let text = upstream_manifest(version, path)
        .with_context(|| format!("{path} is not among the copied upstream manifests"))?;
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde::Deserialize::deserialize(document)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("parsing {path}"))?;
        let value: serde_yaml::Value = value;
        let kind = value["kind"]
            .as_str()
            .and_then(Kind::from_name)
            .with_context(|| format!("{path}: unexpected kind {:?}", value["kind"]))?;
        let name = value["metadata"]["name"]
            .as_str()
            .with_context(|| format!("{path}: no metadata.name"))?
            .to_owned();
        let namespace = value["metadata"]["namespace"].as_str().map(str::to_owned);
        out.push(((kind, namespace, name), value));
    }
    Ok(out)
}

/// A pod as upstream's StatefulSet template makes it (`base/manifests.yaml`): labelled
/// `conformance-house: <house>`, a client container and one agnhost container per port. Only
/// ports 80 (`web`, TCP) and 53 (`dns`, UDP) are declared as container ports there. With
/// `dns_port_name` false, port 53 is left unnamed: see [`header`] for why the scenario's
/// resources do that until the setup step.
fn pod_manifest(pod: Pod, dns_port_name: bool) -> Yaml {
    let prefix = pod.house.statefulset();
    let container = |suffix: &str, command: Option<&str>| {
        let mut c = map([
            ("name", format!("{prefix}-{suffix}").into()),
            ("image", AGNHOST.into()),
        ]);
        if let Some(command) = command {
            c.push("command", vec!["/bin/bash", "-c", command]);
        }
        c
    };
    let serve = |flag: &str, port: u16| {
        format!("/agnhost serve-hostname --{flag} --http=false --port {port}")
    };
    let mut web = container("80", Some(&serve("tcp", 80)));
    web.push(
        "ports",
        Yaml::Seq(vec![map([
            ("containerPort", 80u16.into()),
            ("protocol", "TCP".into()),
            ("name", "web".into()),
        ])]),
    );
    let mut dns = container("53", Some(&serve("udp", 53)));
    let mut dns_port = map([("containerPort", 53u16.into()), ("protocol", "UDP".into())]);
    if dns_port_name {
        dns_port.push("name", "dns");
    }
    dns.push("ports", Yaml::Seq(vec![dns_port]));
    let porter = |port: u16| {
        let mut c = container(&port.to_string(), Some("/agnhost porter"));
        c.push(
            "env",
            Yaml::Seq(vec![map([
                ("name", format!("SERVE_SCTP_PORT_{port}").into()),
                ("value", "foo".into()),
            ])]),
        );
        c
    };
    let containers = vec![
        container("client", None),
        web,
        container("8080", Some(&serve("tcp", 8080))),
        container("5353", Some(&serve("udp", 5353))),
        dns,
        porter(9003),
        porter(9005),
    ];
    map([
        ("apiVersion", "v1".into()),
        ("kind", "Pod".into()),
        (
            "metadata",
            map([
                ("name", pod.name().into()),
                ("namespace", pod.namespace().into()),
                ("labels", string_map(&[(HOUSE_LABEL, pod.house.name())])),
            ]),
        ),
        ("spec", map([("containers", Yaml::Seq(containers))])),
        ("status", map([("podIP", pod.ip().to_string().into())])),
    ])
}

fn namespace_manifest(name: &str, labels: &[(&str, &str)]) -> Yaml {
    map([
        ("apiVersion", "v1".into()),
        ("kind", "Namespace".into()),
        (
            "metadata",
            map([("name", name.into()), ("labels", string_map(labels))]),
        ),
    ])
}

/// The cluster as the steps go.
struct State {
    version: Version,
    /// Objects of the running test, in the order they were created.
    objects: Vec<(Key, serde_yaml::Value)>,
    /// Namespace labels upstream changed (the house label is the only one set).
    house_labels: BTreeMap<House, Vec<(&'static str, &'static str)>>,
}

/// A step's `apply` and `delete` entries, as keys until the step is written.
#[derive(Default)]
struct Edits {
    apply: Vec<Key>,
    namespaces: Vec<House>,
    delete: Vec<Key>,
}

impl Edits {
    fn touch(&mut self, key: &Key) {
        if !self.apply.contains(key) {
            self.apply.push(key.clone());
        }
    }
}

impl State {
    fn find(&mut self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<usize> {
        self.objects
            .iter()
            .position(|((k, ns, n), _)| *k == kind && ns.as_deref() == namespace && n == name)
    }

    /// A test starts: the previous test's objects are deleted, the test's manifests created.
    fn start(&mut self, test: &Test, edits: &mut Edits) -> anyhow::Result<()> {
        let previous = std::mem::take(&mut self.objects);
        for path in &test.manifests {
            for (key, value) in manifests(self.version, path)? {
                if self.objects.iter().any(|(k, _)| *k == key) {
                    bail!("{path}: {key:?} twice");
                }
                edits.touch(&key);
                self.objects.push((key, value));
            }
        }
        // Deleted and created again in one step is the same as replaced: the lab applies
        // before it deletes, so such objects are only applied.
        for (key, _) in previous {
            if !self.objects.iter().any(|(k, _)| *k == key) {
                edits.delete.push(key);
            }
        }
        Ok(())
    }

    fn change(&mut self, change: &Change, edits: &mut Edits) -> anyhow::Result<()> {
        match change {
            Change::DeleteNetworkPolicy { namespace, name } => {
                let ns = namespace.namespace();
                let i = self
                    .find(Kind::NetworkPolicy, Some(&ns), name)
                    .with_context(|| format!("{change}: no such object"))?;
                let (key, _) = self.objects.remove(i);
                edits.apply.retain(|k| *k != key);
                edits.delete.push(key);
            }
            Change::SetNamespaceLabels { house, labels } => {
                self.house_labels.insert(*house, labels.to_vec());
                if !edits.namespaces.contains(house) {
                    edits.namespaces.push(*house);
                }
            }
            _ => {
                let policy = change
                    .policy()
                    .with_context(|| format!("{change}: edits no policy"))?;
                let i = self
                    .find(policy.kind, None, policy.name)
                    .with_context(|| format!("{change}: no such object"))?;
                let (key, value) = &mut self.objects[i];
                let spec = value
                    .get_mut("spec")
                    .with_context(|| format!("{change}: no spec"))?;
                change
                    .edit_spec(spec)
                    .with_context(|| format!("{change}"))?;
                let key = key.clone();
                edits.touch(&key);
            }
        }
        Ok(())
    }

    fn namespace_labels(&self, house: House) -> Vec<(&'static str, &'static str)> {
        self.house_labels
            .get(&house)
            .cloned()
            .unwrap_or_else(|| vec![(HOUSE_LABEL, house.name())])
    }
}

/// The file name of the scenario for `version`'s admin-tier tests (`baseline` false) or
/// baseline ones, in `variant`.
pub fn file_name(version: Version, baseline: bool, variant: Variant) -> String {
    let group = match (version, baseline) {
        (Version::V1alpha2, false) => "admin-tier",
        (Version::V1alpha2, true) => "baseline-tier",
        (Version::V1alpha1, false) => "admin-network-policy",
        (Version::V1alpha1, true) => "baseline-admin-network-policy",
    };
    let prefix = match variant {
        Variant::Lab => "",
        Variant::Sctp => "sctp-",
    };
    format!("{prefix}{}-{group}.yaml", version.slug())
}

fn probe_yaml(probe: &Probe) -> Yaml {
    map([
        ("from", probe.client.to_string().into()),
        ("to", probe.server.to_string().into()),
        ("port", probe.port.into()),
        ("protocol", protocol_name(probe.protocol).into()),
        (
            "expect",
            if probe.should_connect {
                "allow"
            } else {
                "deny"
            }
            .into(),
        ),
    ])
}

fn header(version: Version, tests: &[&Test], baseline: bool, variant: Variant) -> String {
    let (reference, commit) = version.upstream();
    let mut out = String::new();
    let tier = if baseline { "baseline" } else { "admin" };
    let _ = writeln!(
        out,
        "# Upstream: kubernetes-sigs/network-policy-api conformance suite, {version} ({tier} tier),"
    );
    let _ = writeln!(
        out,
        "#   at {reference} = {commit}, these tests in this order:"
    );
    for test in tests {
        let _ = writeln!(
            out,
            "#   conformance/tests/{} ({}, {} subtest(s); manifests: {})",
            test.file,
            test.short_name,
            test.subtests.len(),
            test.manifests.join(", ")
        );
    }
    let left: Vec<_> = LEFT_OUT
        .iter()
        .filter(|l| l.version == version && l.file.starts_with("baseline-") == baseline)
        .collect();
    if !left.is_empty() {
        out.push_str("# Left out (the agent rejects `nodes` peers, naming the field):\n");
        for l in left {
            let _ = writeln!(out, "#   {} / {}: {:?}", l.file, l.short_name, l.subtest);
        }
    }
    out.push_str(
        "#\n\
         # Generated by `cargo run -p palisade-tests --bin gen-cnp-conformance` from\n\
         # tests/src/cnp_conformance/ (the tests are in v1alpha2.rs and v1alpha1.rs, the manifests\n\
         # copied verbatim under upstream/): change those, not this file.\n\
         #\n\
         # Model (base/manifests.yaml): namespaces network-policy-conformance-<house> labelled\n\
         # conformance-house: <house> (the lab adds kubernetes.io/metadata.name), and in each house\n\
         # a StatefulSet's two pods (harry-potter, draco-malfoy, cedric-diggory, luna-lovegood),\n\
         # labelled as its template (the controller's own labels are not reproduced: no policy\n\
         # selects them), with upstream's containers; only TCP 80 (web) and UDP 53 (dns) are\n\
         # declared container ports, the lab serves every port a probe targets. Pod\n\
         # <house>/<name>-<n> is 10.42.<1..4>.<10+n> (gryffindor, slytherin, hufflepuff, ravenclaw).\n\
         # The forbidden-forrest namespace is declared without its host-network pods, which only\n\
         # the left-out node-peer tests probe.\n\
         # The resources leave port 53 unnamed and the setup step applies the pods exactly as\n\
         # upstream declares them (port 53 named dns): the lab runs a DNS responder instead of the\n\
         # UDP echo on a UDP container port named dns that its resources declare, and upstream's\n\
         # server on 53 is `agnhost serve-hostname --udp` (an echo of sorts), not DNS.\n\
         #\n\
         # Each step is one subtest (t.Run), or one part of it when its Go code changes something\n\
         # between probes. A test's first step creates its Manifests and deletes the previous\n\
         # test's objects (MustApplyWithCleanup); every change is the Go code's, applied to the\n\
         # object as earlier subtests left it. Probes are the subtest's PokeServer calls in order\n\
         # (shouldConnect true: allow; false: deny, the probe waits out its timeout).\n",
    );
    match variant {
        Variant::Lab => out.push_str(
            "# SCTP probes are not here (the lab has no SCTP sockets): examples/cnp-conformance-sctp/\n\
             # has them, replayed at the BPF level by tests/conformance_bpf.rs.\n",
        ),
        Variant::Sctp => out.push_str(
            "#\n\
             # BPF-only: the SCTP probes of the tests that have any (the TCP and UDP ones are in\n\
             # examples/cnp-conformance/), with every change of those tests. tests/conformance_bpf.rs\n\
             # runs each probe as crafted frames through the real programs (BPF_PROG_TEST_RUN).\n",
        ),
    }
    out
}

/// The scenario for `tests` (one version's admin-tier or baseline tests, in upstream's order),
/// with the probes `variant` keeps; only tests with such probes are included.
pub fn scenario(
    version: Version,
    tests: &[Test],
    baseline: bool,
    variant: Variant,
) -> anyhow::Result<String> {
    let included: Vec<&Test> = tests
        .iter()
        .filter(|t| t.version == version && t.is_baseline() == baseline)
        .filter(|t| t.probes_any(|p| variant.keeps(p)))
        .collect();
    if included.is_empty() {
        bail!(
            "no {version} tests for {}",
            file_name(version, baseline, variant)
        );
    }
    let mut out = header(version, &included, baseline, variant);
    out.push_str("resources:\n");
    for house in House::ALL {
        emit_seq_item(
            &mut out,
            2,
            &namespace_manifest(&house.namespace(), &[(HOUSE_LABEL, house.name())]),
        );
    }
    emit_seq_item(
        &mut out,
        2,
        &namespace_manifest(
            &format!("network-policy-conformance-{FORBIDDEN_FORREST}"),
            &[(HOUSE_LABEL, FORBIDDEN_FORREST)],
        ),
    );
    for pod in ALL_PODS {
        emit_seq_item(&mut out, 2, &pod_manifest(pod, false));
    }
    out.push_str("\nsteps:\n");
    out.push_str(
        "  # Setup (suite.Setup): the pods as base/manifests.yaml declares them, port 53 named dns.\n",
    );
    let _ = writeln!(
        out,
        "  - name: {}",
        Yaml::from("Setup: base/manifests.yaml").flow()
    );
    out.push_str("    apply:\n");
    for pod in ALL_PODS {
        emit_seq_item(&mut out, 6, &pod_manifest(pod, true));
    }

    let mut state = State {
        version,
        objects: Vec::new(),
        house_labels: BTreeMap::new(),
    };
    for test in included {
        for (s, subtest) in test.subtests.iter().enumerate() {
            let parts = subtest.phases.len();
            for (p, phase) in subtest.phases.iter().enumerate() {
                let mut edits = Edits::default();
                let starts = s == 0 && p == 0;
                if starts {
                    state
                        .start(test, &mut edits)
                        .with_context(|| test.short_name.to_owned())?;
                }
                for change in &phase.changes {
                    state
                        .change(change, &mut edits)
                        .with_context(|| format!("{} / {}", test.short_name, subtest.title))?;
                }
                let mut name = format!("{}: {}", test.short_name, subtest.title);
                if parts > 1 {
                    let _ = write!(name, " (part {} of {parts})", p + 1);
                }
                out.push('\n');
                if starts {
                    let _ = writeln!(
                        out,
                        "  # conformance/tests/{} ({}): Manifests {}",
                        test.file,
                        test.short_name,
                        test.manifests.join(", ")
                    );
                }
                let _ = writeln!(out, "  # t.Run({:?})", subtest.title);
                for change in &phase.changes {
                    let _ = writeln!(out, "  #   {change}");
                }
                let _ = writeln!(out, "  - name: {}", Yaml::from(name.as_str()).flow());
                let apply: Vec<Yaml> = edits
                    .apply
                    .iter()
                    .map(|key| {
                        let (_, value) = state
                            .objects
                            .iter()
                            .find(|(k, _)| k == key)
                            .with_context(|| format!("{key:?} is gone"))?;
                        to_yaml(value)
                    })
                    .chain(edits.namespaces.iter().map(|house| {
                        Ok(namespace_manifest(
                            &house.namespace(),
                            &state.namespace_labels(*house),
                        ))
                    }))
                    .collect::<anyhow::Result<_>>()?;
                if !apply.is_empty() {
                    out.push_str("    apply:\n");
                    for object in &apply {
                        emit_seq_item(&mut out, 6, object);
                    }
                }
                if !edits.delete.is_empty() {
                    out.push_str("    delete:\n");
                    for (kind, namespace, name) in &edits.delete {
                        let mut reference = map([("kind", kind.name().into())]);
                        if let Some(ns) = namespace {
                            reference.push("namespace", ns.as_str());
                        }
                        reference.push("name", name.as_str());
                        emit_seq_item(&mut out, 6, &reference);
                    }
                }
                let probes: Vec<&Probe> = phase
                    .probes
                    .iter()
                    .filter(|p| variant.keeps(p.protocol))
                    .collect();
                if probes.is_empty() {
                    out.push_str("    # no probes of this kind in this part\n");
                } else {
                    out.push_str("    probes:\n");
                    for probe in probes {
                        // One line each, whatever its length: a probe reads best whole.
                        let _ = writeln!(out, "      - {}", probe_yaml(probe).flow());
                    }
                }
            }
        }
    }
    Ok(out)
}
