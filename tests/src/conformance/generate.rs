//! Turns a [`Case`] into a lab scenario: the upstream model as resources, a first step that
//! checks every server answers before any policy exists (upstream's `waitForHTTPServers`),
//! then one step per upstream `ValidateOrFail` group with the changes made before it and every
//! probe of its reachability matrices.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use anyhow::{Context as _, bail};

use super::{
    UPSTREAM_COMMIT, UPSTREAM_DIR, UPSTREAM_FILE,
    model::{Case, CaseStep, Change, Check, NAMESPACES, PodStr, all_pods, pod_ip},
    yaml::{Yaml, emit_seq_item, map, string_map},
};
use crate::lab::{KubeProxyMode, scenario::Protocol};

/// Which addresses a scenario's probes connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Each server pod's own address (the lab's first port of the suite; the BPF runner
    /// replays these).
    PodAddresses,
    /// As upstream: each pod has its Service (`kubemanager.go`), and every check probes the
    /// 72 pairs twice, once to the server's pod address and once to its Service's ClusterIP,
    /// in one lab whose kube-proxy runs in `mode` (and, when `also` is set, in a second lab
    /// in that mode: see [`super::kube_proxy_modes`]).
    Services {
        mode: KubeProxyMode,
        also: Option<KubeProxyMode>,
    },
}

/// The image upstream's containers run (`imageutils.Agnhost`); the lab runs its own echo
/// servers instead.
const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.52";

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        // Upstream's cases probe no ICMP.
        Protocol::Icmp => "ICMP",
    }
}

/// Upstream's `Container.Spec()` for one port and protocol: `agnhost serve-hostname` for TCP
/// and UDP, `agnhost porter` with `SERVE_SCTP_PORT_<port>` in its environment for SCTP.
fn container(port: u16, protocol: Protocol) -> Yaml {
    let proto = protocol_name(protocol);
    let lower = proto.to_lowercase();
    let serve_hostname = |flag: &str| -> Vec<String> {
        vec![
            "/agnhost".to_owned(),
            "serve-hostname".to_owned(),
            flag.to_owned(),
            "--http=false".to_owned(),
            "--port".to_owned(),
            port.to_string(),
        ]
    };
    let mut spec = map([
        ("name", format!("cont-{port}-{lower}").into()),
        ("image", AGNHOST.into()),
        ("imagePullPolicy", "IfNotPresent".into()),
    ]);
    match protocol {
        Protocol::Tcp => spec.push("command", serve_hostname("--tcp")),
        Protocol::Udp => spec.push("command", serve_hostname("--udp")),
        // The kernel answers echo requests; nothing to serve.
        Protocol::Icmp => {}
        Protocol::Sctp => {
            spec.push("command", vec!["/agnhost", "porter"]);
            spec.push(
                "env",
                Yaml::Seq(vec![map([
                    ("name", format!("SERVE_SCTP_PORT_{port}").into()),
                    ("value", "foo".into()),
                ])]),
            );
        }
    }
    spec.push(
        "ports",
        Yaml::Seq(vec![map([
            ("containerPort", port.into()),
            ("name", format!("serve-{port}-{lower}").into()),
            ("protocol", proto.into()),
        ])]),
    );
    spec
}

/// Upstream's `Pod.KubePod(namespace)` with the labels the pod has now, and the address the
/// lab gives it.
fn pod_manifest(case: &Case, pod: PodStr, labels: &BTreeMap<String, String>) -> Yaml {
    let containers: Vec<Yaml> = case
        .ports
        .iter()
        .flat_map(|port| case.protocols.iter().map(|p| container(*port, *p)))
        .collect();
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    map([
        ("apiVersion", "v1".into()),
        ("kind", "Pod".into()),
        (
            "metadata",
            map([
                ("name", pod.name.into()),
                ("namespace", pod.namespace.into()),
                ("labels", string_map(&labels)),
            ]),
        ),
        (
            "spec",
            map([
                ("terminationGracePeriodSeconds", 0i64.into()),
                ("containers", Yaml::Seq(containers)),
            ]),
        ),
        ("status", map([("podIP", pod_ip(pod).to_string().into())])),
    ])
}

/// Upstream's `Pod.ServiceName(namespace)`: `s-<namespace>-<pod>`.
pub fn service_name(pod: PodStr) -> String {
    format!("s-{}-{}", pod.namespace, pod.name)
}

/// Upstream's `Pod.Service(namespace)`, which `kubeManager.initializeClusterFromModel` creates
/// with each pod: selector `pod: <name>` (the pod's own label: upstream's relabels only add
/// labels, so it keeps selecting exactly that pod), one port per container, named
/// `service-port-<proto>-<port>`, with the container's protocol and port. Upstream gives no
/// `targetPort`, so the API server defaults it to `port`: the container port.
pub fn service_manifest(case: &Case, pod: PodStr) -> Yaml {
    let ports: Vec<Yaml> = case
        .ports
        .iter()
        .flat_map(|port| {
            case.protocols.iter().map(move |p| {
                let proto = protocol_name(*p);
                map([
                    (
                        "name",
                        format!("service-port-{}-{port}", proto.to_lowercase()).into(),
                    ),
                    ("protocol", proto.into()),
                    ("port", (*port).into()),
                ])
            })
        })
        .collect();
    map([
        ("apiVersion", "v1".into()),
        ("kind", "Service".into()),
        (
            "metadata",
            map([
                ("name", service_name(pod).into()),
                ("namespace", pod.namespace.into()),
            ]),
        ),
        (
            "spec",
            map([
                ("selector", string_map(&[("pod", pod.name)])),
                ("ports", Yaml::Seq(ports)),
            ]),
        ),
    ])
}

/// A namespace as upstream creates it: no labels of its own (the lab adds
/// `kubernetes.io/metadata.name`, as the API server does), plus any added since.
fn namespace_manifest(name: &str, labels: &BTreeMap<String, String>) -> Yaml {
    let mut metadata = map([("name", name.into())]);
    if !labels.is_empty() {
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        metadata.push("labels", string_map(&labels));
    }
    map([
        ("apiVersion", "v1".into()),
        ("kind", "Namespace".into()),
        ("metadata", metadata),
    ])
}

/// What the cluster holds as the steps go.
struct State {
    policies: BTreeSet<(String, String)>,
    pod_labels: BTreeMap<PodStr, BTreeMap<String, String>>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// A step's `apply` and `delete` entries.
#[derive(Default)]
struct Edits {
    apply: Vec<Yaml>,
    delete: Vec<Yaml>,
}

impl State {
    fn new() -> Self {
        Self {
            policies: BTreeSet::new(),
            pod_labels: all_pods()
                .into_iter()
                .map(|p| (p, BTreeMap::from([("pod".to_owned(), p.name.to_owned())])))
                .collect(),
            namespace_labels: NAMESPACES
                .iter()
                .map(|ns| ((*ns).to_owned(), BTreeMap::new()))
                .collect(),
        }
    }

    fn change(&mut self, case: &Case, change: &Change, edits: &mut Edits) -> anyhow::Result<()> {
        match change {
            Change::Create { namespace, policy } => {
                let key = ((*namespace).to_owned(), policy.name.clone());
                if !self.policies.insert(key) {
                    bail!(
                        "CreatePolicy {namespace}/{}: it already exists",
                        policy.name
                    );
                }
                edits.apply.push(policy.manifest(namespace));
            }
            Change::Update { namespace, policy } => {
                let key = ((*namespace).to_owned(), policy.name.clone());
                if !self.policies.contains(&key) {
                    bail!(
                        "UpdatePolicy {namespace}/{}: it does not exist",
                        policy.name
                    );
                }
                edits.apply.push(policy.manifest(namespace));
            }
            Change::CleanPolicies => {
                for (namespace, name) in std::mem::take(&mut self.policies) {
                    edits.delete.push(map([
                        ("kind", "NetworkPolicy".into()),
                        ("namespace", namespace.into()),
                        ("name", name.into()),
                    ]));
                }
            }
            Change::AddPodLabels { pod, labels } => {
                let current = self
                    .pod_labels
                    .get_mut(pod)
                    .with_context(|| format!("AddPodLabels: no pod {pod}"))?;
                for (k, v) in labels {
                    current.insert((*k).to_owned(), (*v).to_owned());
                }
                edits.apply.push(pod_manifest(case, *pod, current));
            }
            Change::AddNamespaceLabel {
                namespace,
                key,
                value,
            } => {
                let current = self
                    .namespace_labels
                    .get_mut(*namespace)
                    .with_context(|| format!("AddNamespaceLabel: no namespace {namespace}"))?;
                current.insert((*key).to_owned(), (*value).to_owned());
                edits.apply.push(namespace_manifest(
                    namespace,
                    &self.namespace_labels[*namespace],
                ));
            }
        }
        Ok(())
    }
}

/// The probes of one check: every ordered pair of distinct pods, to the server pod's address.
pub fn probes(check: &Check) -> Vec<Yaml> {
    probes_to(check, |pod| pod.to_string())
}

/// The probes of one check through the servers' Services: every ordered pair of distinct
/// pods, to `service/<ns>/s-<ns>-<pod>` on the Service port (upstream's `probeWorker` connects
/// to `job.PodTo.ServiceIP` on `ToPort`); the expectation is the pair's, since the Service has
/// that one pod as its only backend.
pub fn service_probes(check: &Check) -> Vec<Yaml> {
    probes_to(check, |pod| {
        format!("service/{}/{}", pod.namespace, service_name(pod))
    })
}

fn probes_to(check: &Check, to_address: impl Fn(PodStr) -> String) -> Vec<Yaml> {
    let pods = all_pods();
    let table = check.reachability.table();
    let mut out = Vec::new();
    for (f, from) in pods.iter().enumerate() {
        for (t, to) in pods.iter().enumerate() {
            if f == t {
                continue;
            }
            let expect = if table[f][t] { "allow" } else { "deny" };
            out.push(map([
                ("from", from.to_string().into()),
                ("to", to_address(*to).into()),
                ("port", check.port.into()),
                ("protocol", protocol_name(check.protocol).into()),
                ("expect", expect.into()),
            ]));
        }
    }
    out
}

/// The check as upstream writes it, then its truth table, as comment lines at `indent`.
fn check_comment(out: &mut String, indent: usize, check: &Check) {
    let pad = " ".repeat(indent);
    let proto = protocol_name(check.protocol);
    let r = &check.reachability;
    let _ = writeln!(
        out,
        "{pad}# ValidateOrFail(k8s, &TestCase{{ToPort: {}, Protocol: v1.Protocol{proto}, ...}}) with",
        check.port
    );
    let _ = writeln!(
        out,
        "{pad}#   reachability := NewReachability(k8s.AllPodStrings(), {})",
        r.default
    );
    for e in &r.expectations {
        let _ = writeln!(out, "{pad}#   reachability.{e}");
    }
    let _ = writeln!(
        out,
        "{pad}# expected {proto}/{}: from (rows) to (columns), . allow, X deny, - not probed",
        check.port
    );
    let pods = all_pods();
    let header: Vec<String> = pods
        .iter()
        .map(|p| format!("{:>4}", p.to_string()))
        .collect();
    let _ = writeln!(out, "{pad}#   {:<4}{}", "", header.join(""));
    let table = r.table();
    for (f, from) in pods.iter().enumerate() {
        let cells: Vec<String> = (0..pods.len())
            .map(|t| {
                let mark = if f == t {
                    "-"
                } else if table[f][t] {
                    "."
                } else {
                    "X"
                };
                format!("{mark:>4}")
            })
            .collect();
        let _ = writeln!(out, "{pad}#   {:<4}{}", from.to_string(), cells.join(""));
    }
}

fn header(case: &Case, variant: Variant) -> String {
    let ports: Vec<String> = case.ports.iter().map(u16::to_string).collect();
    let protocols: Vec<&str> = case.protocols.iter().map(|p| protocol_name(*p)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "# Upstream: It({:?})", case.title);
    let _ = writeln!(out, "#   in {}", case.context.describe());
    let _ = writeln!(
        out,
        "#   kubernetes/kubernetes {UPSTREAM_DIR}/{UPSTREAM_FILE}"
    );
    let _ = writeln!(
        out,
        "#   at {UPSTREAM_COMMIT} (helpers: kubemanager.go, model.go, reachability.go,"
    );
    let _ = writeln!(out, "#   truthtable.go, test_helper.go, policies.go)");
    out.push_str(
        "#\n\
         # Generated by `cargo run -p palisade-tests --bin gen-conformance` from\n\
         # tests/src/conformance/ (the case is in cases.rs): change that, not this file.\n\
         #\n\
         # Model (initializeResources): namespaces x, y, z with no labels of their own (the lab\n\
         # adds kubernetes.io/metadata.name); pods a, b, c in each, labelled pod: <name>, with one\n\
         # agnhost container per port and protocol (cont-<port>-<proto>, container port named\n\
         # serve-<port>-<proto>). Pod {x,y,z}/{a,b,c} is 10.42.{1,2,3}.{10,11,12}.\n",
    );
    let _ = writeln!(
        out,
        "# Here: port(s) {} on {}.",
        ports.join(", "),
        protocols.join(" and ")
    );
    out.push_str(
        "# Probes: each ValidateOrFail is the full matrix of ordered pairs of the 9 pods on its\n\
         # port and protocol, except a pod to itself: upstream ignores those (ignoreLoopback), and\n\
         # a pod reaching its own address never crosses its interface, so no policy applies.\n",
    );
    match variant {
        Variant::PodAddresses => {
            out.push_str(
                "# Upstream connects to each server pod's Service ClusterIP; these probes connect to\n\
                 # the pod address, which is what NetworkPolicy judges once kube-proxy has translated\n",
            );
            if case.bpf_only() {
                out.push_str(
                    "# the ClusterIP (no Services variant: the lab has no SCTP sockets or Service rules).\n",
                );
            } else {
                out.push_str(
                    "# the ClusterIP (examples/conformance-services/ has the same case through Services).\n",
                );
            }
            out.push_str("# The first step is upstream's waitForHTTPServers (no policy yet).\n");
        }
        Variant::Services { mode, also } => {
            out.push_str(
                "# Services, as upstream's kubemanager.go creates them: one per pod, s-<ns>-<pod>,\n\
                 # selecting exactly that pod (pod: <name>), one port per container\n\
                 # (service-port-<proto>-<port>, port = targetPort = the container port); the lab\n\
                 # assigns ClusterIPs, derives EndpointSlices and writes kube-proxy's rules.\n\
                 # Every matrix is probed twice in the same step: to the server pod's address (the\n\
                 # probes of examples/conformance/, same file name) and, as upstream's probe.go does,\n\
                 # to the server's Service ClusterIP on the Service port (to: service/NS/NAME),\n\
                 # judged on the one backend kube-proxy can choose. The first step is upstream's\n\
                 # waitForHTTPServers (no policy yet).\n",
            );
            let _ = writeln!(
                out,
                "# kube-proxy: {mode}. Each case runs in one mode, chosen so that both modes run\n\
                 # every kind of case (conformance::kube_proxy_modes); `lab run --kube-proxy MODE`\n\
                 # runs it in another."
            );
            if let Some(also) = also {
                let _ = writeln!(
                    out,
                    "# tests/conformance.rs also runs it in {also} mode: no other case is of its\n\
                     # kind (conformance::kinds)."
                );
            }
        }
    }
    if case.bpf_only() {
        out.push_str(
            "#\n\
             # BPF-only: this kernel has no SCTP sockets, so the lab refuses SCTP probes. \
             tests/tests/\n\
             # conformance_bpf.rs runs every probe as crafted frames through the real programs\n\
             # (BPF_PROG_TEST_RUN): the source's egress program, then the destination's ingress.\n",
        );
    }
    out
}

fn emit_step(out: &mut String, name: &str, edits: &Edits, checks: &[Check], variant: Variant) {
    let _ = writeln!(out, "  - name: {}", Yaml::from(name).flow());
    if !edits.apply.is_empty() {
        out.push_str("    apply:\n");
        for object in &edits.apply {
            emit_seq_item(out, 6, object);
        }
    }
    if !edits.delete.is_empty() {
        out.push_str("    delete:\n");
        for reference in &edits.delete {
            emit_seq_item(out, 6, reference);
        }
    }
    out.push_str("    probes:\n");
    for check in checks {
        check_comment(out, 6, check);
        for probe in probes(check) {
            emit_seq_item(out, 6, &probe);
        }
        if let Variant::Services { .. } = variant {
            let _ = writeln!(
                out,
                "      # the same pairs through the server's Service ClusterIP"
            );
            for probe in service_probes(check) {
                emit_seq_item(out, 6, &probe);
            }
        }
    }
}

/// Upstream's `waitForHTTPServers`: every (port, protocol) of the model, all reachable.
fn servers_ready(case: &Case) -> CaseStep {
    let mut checks = Vec::new();
    for port in &case.ports {
        for protocol in &case.protocols {
            checks.push(Check {
                port: *port,
                protocol: *protocol,
                reachability: super::model::Reachability::new(true),
            });
        }
    }
    CaseStep {
        name: "waitForHTTPServers: no policy yet, every server answers".to_owned(),
        changes: Vec::new(),
        checks,
    }
}

/// The scenario file for `case`, probing pod addresses.
pub fn scenario(case: &Case) -> anyhow::Result<String> {
    render(case, Variant::PodAddresses)
}

/// The scenario file for `case` with each pod's Service, probing pod addresses and Services;
/// `modes` are the kube-proxy modes it runs in, the file's own first.
pub fn service_scenario(case: &Case, modes: &[KubeProxyMode]) -> anyhow::Result<String> {
    if case.bpf_only() {
        bail!(
            "{}: the lab has no SCTP (sockets or Service rules): no Service variant",
            case.title
        );
    }
    let (mode, also) = match modes {
        [mode] => (*mode, None),
        [mode, also] => (*mode, Some(*also)),
        _ => bail!("{}: {} kube-proxy modes", case.title, modes.len()),
    };
    render(case, Variant::Services { mode, also })
}

fn render(case: &Case, variant: Variant) -> anyhow::Result<String> {
    let mut state = State::new();
    let mut out = header(case, variant);
    if let Variant::Services { mode, .. } = variant {
        let _ = writeln!(out, "kubeProxy: {mode}");
    }
    out.push_str("resources:\n");
    for ns in NAMESPACES {
        emit_seq_item(
            &mut out,
            2,
            &namespace_manifest(ns, &state.namespace_labels[ns]),
        );
    }
    for pod in all_pods() {
        emit_seq_item(
            &mut out,
            2,
            &pod_manifest(case, pod, &state.pod_labels[&pod]),
        );
    }
    if let Variant::Services { .. } = variant {
        for pod in all_pods() {
            emit_seq_item(&mut out, 2, &service_manifest(case, pod));
        }
    }
    out.push_str("\nsteps:\n");
    let first = servers_ready(case);
    emit_step(
        &mut out,
        &first.name,
        &Edits::default(),
        &first.checks,
        variant,
    );
    for step in &case.steps {
        let mut edits = Edits::default();
        for change in &step.changes {
            state
                .change(case, change, &mut edits)
                .with_context(|| format!("{}: step {:?}", case.title, step.name))?;
        }
        if step.checks.is_empty() {
            bail!("{}: step {:?} checks nothing", case.title, step.name);
        }
        out.push('\n');
        emit_step(&mut out, &step.name, &edits, &step.checks, variant);
    }
    Ok(out)
}

/// How many probes the scenario for `case` makes to pod addresses (in either variant; the
/// Services variant makes as many again to ClusterIPs).
pub fn probe_count(case: &Case) -> usize {
    std::iter::once(&servers_ready(case))
        .chain(&case.steps)
        .flat_map(|s| &s.checks)
        .map(|c| probes(c).len())
        .sum()
}
