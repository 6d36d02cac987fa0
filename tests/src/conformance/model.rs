//! The upstream test model, in Rust: the 9 pods, `Reachability` with the same operations as
//! upstream's `reachability.go`/`truthtable.go`, the `GenNetworkPolicy*`/`SetSpec*` builders of
//! `policies.go`, and what a case is (steps that change the cluster, then `ValidateOrFail`
//! checks).

use std::{fmt, net::Ipv4Addr};

use super::yaml::{Yaml, map, string_map};
use crate::lab::scenario::Protocol;

/// Upstream's namespaces (`getNamespaceBaseNames`: `x`, `y`, `z`) and pods (`defaultModel`:
/// `a`, `b`, `c` in each), in upstream's order (`k8s.AllPodStrings()`).
pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const POD_NAMES: [&str; 3] = ["a", "b", "c"];

/// The label upstream selects namespaces by (`namespaceLabelKey`, `v1.LabelMetadataName`).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A pod, `namespace/name` (upstream's `PodString`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodStr {
    pub namespace: &'static str,
    pub name: &'static str,
}

impl fmt::Display for PodStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `NewPodString(ns, name)`.
pub fn pod(namespace: &'static str, name: &'static str) -> PodStr {
    PodStr { namespace, name }
}

/// The 9 pods in upstream's order: x/a, x/b, x/c, y/a, ..., z/c.
pub fn all_pods() -> Vec<PodStr> {
    NAMESPACES
        .iter()
        .flat_map(|ns| POD_NAMES.iter().map(move |name| pod(ns, name)))
        .collect()
}

/// The address the scenarios give a pod: 10.42.N.M with N = 1, 2, 3 for x, y, z and
/// M = 10, 11, 12 for a, b, c. Upstream reads the real `status.podIP` for ipBlock cases; the
/// generator computes the same strings from these.
pub fn pod_ip(p: PodStr) -> Ipv4Addr {
    let position = |list: &[&str], item: &str| list.iter().position(|x| *x == item).unwrap_or(0);
    let ns = u8::try_from(position(&NAMESPACES, p.namespace)).unwrap_or(0);
    let name = u8::try_from(position(&POD_NAMES, p.name)).unwrap_or(0);
    Ipv4Addr::new(10, 42, 1 + ns, 10 + name)
}

/// Go's spelling of a namespace variable (`nsX`) in rendered upstream calls.
fn go_ns(ns: &str) -> String {
    format!("ns{}", ns.to_uppercase())
}

/// Upstream's `Peer`: an empty field matches everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub namespace: Option<&'static str>,
    pub pod: Option<&'static str>,
}

impl Peer {
    /// `&Peer{}`
    pub fn any() -> Self {
        Self {
            namespace: None,
            pod: None,
        }
    }

    /// `&Peer{Namespace: ns}`
    pub fn ns(namespace: &'static str) -> Self {
        Self {
            namespace: Some(namespace),
            pod: None,
        }
    }

    /// `&Peer{Namespace: ns, Pod: name}`
    pub fn pod(namespace: &'static str, name: &'static str) -> Self {
        Self {
            namespace: Some(namespace),
            pod: Some(name),
        }
    }

    /// `Peer.Matches`.
    pub fn matches(&self, p: PodStr) -> bool {
        self.namespace.is_none_or(|ns| ns == p.namespace) && self.pod.is_none_or(|n| n == p.name)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fields = Vec::new();
        if let Some(ns) = self.namespace {
            fields.push(format!("Namespace: {}", go_ns(ns)));
        }
        if let Some(pod) = self.pod {
            fields.push(format!("Pod: \"{pod}\""));
        }
        write!(f, "&Peer{{{}}}", fields.join(", "))
    }
}

/// One call on upstream's `Reachability`, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// `ExpectPeer(from, to, connected)`
    Peer {
        from: Peer,
        to: Peer,
        connected: bool,
    },
    /// `ExpectAllIngress(pod, connected)`: every pod to `pod` (`SetAllTo`).
    AllIngress { pod: PodStr, connected: bool },
    /// `ExpectAllEgress(pod, connected)`: `pod` to every pod (`SetAllFrom`).
    AllEgress { pod: PodStr, connected: bool },
    /// `Expect(from, to, connected)`
    Single {
        from: PodStr,
        to: PodStr,
        connected: bool,
    },
}

fn go_pod(p: PodStr) -> String {
    format!("NewPodString({}, \"{}\")", go_ns(p.namespace), p.name)
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Peer {
                from,
                to,
                connected,
            } => write!(f, "ExpectPeer({from}, {to}, {connected})"),
            Expectation::AllIngress { pod, connected } => {
                write!(f, "ExpectAllIngress({}, {connected})", go_pod(*pod))
            }
            Expectation::AllEgress { pod, connected } => {
                write!(f, "ExpectAllEgress({}, {connected})", go_pod(*pod))
            }
            Expectation::Single {
                from,
                to,
                connected,
            } => write!(f, "Expect({}, {}, {connected})", go_pod(*from), go_pod(*to)),
        }
    }
}

/// Upstream's `NewReachability(k8s.AllPodStrings(), default)` and the calls made on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachability {
    pub default: bool,
    pub expectations: Vec<Expectation>,
}

impl Reachability {
    /// `NewReachability(k8s.AllPodStrings(), default)`
    pub fn new(default: bool) -> Self {
        Self {
            default,
            expectations: Vec::new(),
        }
    }

    pub fn expect_peer(mut self, from: Peer, to: Peer, connected: bool) -> Self {
        self.expectations.push(Expectation::Peer {
            from,
            to,
            connected,
        });
        self
    }

    pub fn expect_all_ingress(mut self, pod: PodStr, connected: bool) -> Self {
        self.expectations
            .push(Expectation::AllIngress { pod, connected });
        self
    }

    pub fn expect_all_egress(mut self, pod: PodStr, connected: bool) -> Self {
        self.expectations
            .push(Expectation::AllEgress { pod, connected });
        self
    }

    pub fn expect(mut self, from: PodStr, to: PodStr, connected: bool) -> Self {
        self.expectations.push(Expectation::Single {
            from,
            to,
            connected,
        });
        self
    }

    /// The expected truth table, `[from][to]` in [`all_pods`] order, computed like upstream's
    /// `TruthTable` (later calls overwrite earlier ones).
    pub fn table(&self) -> Vec<Vec<bool>> {
        let pods = all_pods();
        let mut table = vec![vec![self.default; pods.len()]; pods.len()];
        for e in &self.expectations {
            for (f, from) in pods.iter().enumerate() {
                for (t, to) in pods.iter().enumerate() {
                    let hit = match e {
                        Expectation::Peer {
                            from: pf, to: pt, ..
                        } => pf.matches(*from) && pt.matches(*to),
                        Expectation::AllIngress { pod, .. } => to == pod,
                        Expectation::AllEgress { pod, .. } => from == pod,
                        Expectation::Single {
                            from: sf, to: st, ..
                        } => from == sf && to == st,
                    };
                    if hit {
                        table[f][t] = match e {
                            Expectation::Peer { connected, .. }
                            | Expectation::AllIngress { connected, .. }
                            | Expectation::AllEgress { connected, .. }
                            | Expectation::Single { connected, .. } => *connected,
                        };
                    }
                }
            }
        }
        table
    }
}

/// One `ValidateOrFail(k8s, &TestCase{ToPort, Protocol, Reachability})`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub port: u16,
    pub protocol: Protocol,
    pub reachability: Reachability,
}

/// `ValidateOrFail` on TCP.
pub fn tcp(port: u16, reachability: Reachability) -> Check {
    Check {
        port,
        protocol: Protocol::Tcp,
        reachability,
    }
}

/// `ValidateOrFail` on UDP.
pub fn udp(port: u16, reachability: Reachability) -> Check {
    Check {
        port,
        protocol: Protocol::Udp,
        reachability,
    }
}

/// `ValidateOrFail` on SCTP (checked at the BPF level only: see [`Case::bpf_only`]).
pub fn sctp(port: u16, reachability: Reachability) -> Check {
    Check {
        port,
        protocol: Protocol::Sctp,
        reachability,
    }
}

/// A NetworkPolicy as upstream's builders leave it (`metav1.ObjectMeta.Name` and the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub pod_selector: Yaml,
    pub ingress: Option<Vec<Yaml>>,
    pub egress: Option<Vec<Yaml>>,
    pub policy_types: Vec<&'static str>,
}

/// Upstream's `SetFunc`s for the spec.
#[derive(Debug, Clone)]
pub enum Set {
    /// `SetSpecIngressRules(rules...)`: creates `Ingress` (and appends `Ingress` to
    /// `PolicyTypes`) the first time, then appends the rules.
    Ingress(Vec<Yaml>),
    /// `SetSpecEgressRules(rules...)`
    Egress(Vec<Yaml>),
}

impl Policy {
    fn apply(&mut self, set: Set) {
        match set {
            Set::Ingress(rules) => {
                if self.ingress.is_none() {
                    self.policy_types.push("Ingress");
                }
                self.ingress.get_or_insert_with(Vec::new).extend(rules);
            }
            Set::Egress(rules) => {
                if self.egress.is_none() {
                    self.policy_types.push("Egress");
                }
                self.egress.get_or_insert_with(Vec::new).extend(rules);
            }
        }
    }

    /// The manifest in `namespace` (fields in the order Go serialises them).
    pub fn manifest(&self, namespace: &str) -> Yaml {
        let mut spec = map([("podSelector", self.pod_selector.clone())]);
        if let Some(ingress) = &self.ingress {
            spec.push("ingress", Yaml::Seq(ingress.clone()));
        }
        if let Some(egress) = &self.egress {
            spec.push("egress", Yaml::Seq(egress.clone()));
        }
        spec.push("policyTypes", self.policy_types.clone());
        map([
            ("apiVersion", "networking.k8s.io/v1".into()),
            ("kind", "NetworkPolicy".into()),
            (
                "metadata",
                map([
                    ("name", self.name.as_str().into()),
                    ("namespace", namespace.into()),
                ]),
            ),
            ("spec", spec),
        ])
    }
}

/// `GenNetworkPolicyWithNameAndPodSelector(name, selector, sets...)`
pub fn gen_with_pod_selector(name: &str, pod_selector: Yaml, sets: Vec<Set>) -> Policy {
    let mut policy = Policy {
        name: name.to_owned(),
        pod_selector,
        ingress: None,
        egress: None,
        policy_types: Vec::new(),
    };
    for set in sets {
        policy.apply(set);
    }
    policy
}

/// `GenNetworkPolicyWithNameAndPodMatchLabel(name, labels, sets...)`: the pod selector is
/// `{matchLabels: labels}` (`{}` when `labels` is empty).
pub fn gen_with_pod_match_label(name: &str, labels: &[(&str, &str)], sets: Vec<Set>) -> Policy {
    gen_with_pod_selector(name, match_labels(labels), sets)
}

/// `metav1.LabelSelector{MatchLabels: labels}` (an empty map is omitted, as Go does).
pub fn match_labels(labels: &[(&str, &str)]) -> Yaml {
    if labels.is_empty() {
        Yaml::Map(Vec::new())
    } else {
        map([("matchLabels", string_map(labels))])
    }
}

/// `metav1.LabelSelector{}`
pub fn empty_selector() -> Yaml {
    Yaml::Map(Vec::new())
}

/// `metav1.LabelSelector{MatchExpressions: [{Key, Operator, Values}]}`
pub fn match_expression(key: &str, operator: &str, values: &[&str]) -> Yaml {
    map([(
        "matchExpressions",
        Yaml::Seq(vec![map([
            ("key", key.into()),
            ("operator", operator.into()),
            ("values", values.to_vec().into()),
        ])]),
    )])
}

/// `NetworkPolicyPeer{PodSelector, NamespaceSelector}` (either may be absent).
pub fn peer(pod_selector: Option<Yaml>, namespace_selector: Option<Yaml>) -> Yaml {
    let mut peer = Yaml::Map(Vec::new());
    if let Some(selector) = pod_selector {
        peer.push("podSelector", selector);
    }
    if let Some(selector) = namespace_selector {
        peer.push("namespaceSelector", selector);
    }
    peer
}

/// `NetworkPolicyPeer{IPBlock: &IPBlock{CIDR, Except}}`
pub fn ip_block_peer(cidr: &str, except: &[&str]) -> Yaml {
    let mut block = map([("cidr", cidr.into())]);
    if !except.is_empty() {
        block.push("except", except.to_vec());
    }
    map([("ipBlock", block)])
}

/// `NetworkPolicyIngressRule{Ports, From}` (empty lists omitted).
pub fn ingress_rule(from: Vec<Yaml>, ports: Vec<Yaml>) -> Yaml {
    rule("from", from, ports)
}

/// `NetworkPolicyEgressRule{Ports, To}` (empty lists omitted).
pub fn egress_rule(to: Vec<Yaml>, ports: Vec<Yaml>) -> Yaml {
    rule("to", to, ports)
}

fn rule(peers_key: &str, peers: Vec<Yaml>, ports: Vec<Yaml>) -> Yaml {
    let mut rule = Yaml::Map(Vec::new());
    if !ports.is_empty() {
        rule.push("ports", Yaml::Seq(ports));
    }
    if !peers.is_empty() {
        rule.push(peers_key, Yaml::Seq(peers));
    }
    rule
}

/// `NetworkPolicyPort{Protocol, Port: IntOrString{IntVal}}` (`protocol` absent when `None`).
pub fn port_number(protocol: Option<&str>, port: u16) -> Yaml {
    let mut p = Yaml::Map(Vec::new());
    if let Some(protocol) = protocol {
        p.push("protocol", protocol);
    }
    p.push("port", port);
    p
}

/// `NetworkPolicyPort{Protocol, Port: IntOrString{Type: String, StrVal}}`
pub fn port_name(protocol: Option<&str>, name: &str) -> Yaml {
    let mut p = Yaml::Map(Vec::new());
    if let Some(protocol) = protocol {
        p.push("protocol", protocol);
    }
    p.push("port", name);
    p
}

/// `NetworkPolicyPort{Protocol}`: every port of the protocol.
pub fn port_protocol(protocol: &str) -> Yaml {
    map([("protocol", protocol.into())])
}

/// A change upstream makes to the cluster between checks.
#[derive(Debug, Clone)]
pub enum Change {
    /// `CreatePolicy(ctx, k8s, policy, ns)`
    Create {
        namespace: &'static str,
        policy: Policy,
    },
    /// `UpdatePolicy(ctx, k8s, policy, ns)`
    Update {
        namespace: &'static str,
        policy: Policy,
    },
    /// `k8s.cleanNetworkPolicies(ctx)`: deletes every policy in x, y and z.
    CleanPolicies,
    /// `AddPodLabels(ctx, k8s, ns, name, labels)`: merged into the pod's labels.
    AddPodLabels {
        pod: PodStr,
        labels: Vec<(&'static str, &'static str)>,
    },
    /// `AddNamespaceLabel(ctx, k8s, ns, key, value)`
    AddNamespaceLabel {
        namespace: &'static str,
        key: &'static str,
        value: &'static str,
    },
}

/// `CreatePolicy(ctx, k8s, policy, ns)`
pub fn create(namespace: &'static str, policy: Policy) -> Change {
    Change::Create { namespace, policy }
}

/// `UpdatePolicy(ctx, k8s, policy, ns)`
pub fn update(namespace: &'static str, policy: Policy) -> Change {
    Change::Update { namespace, policy }
}

/// The `SIGDescribe`/`Context` an upstream case sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `SIGDescribe("Netpol")` / `Context("NetworkPolicy between server and client")`
    Tcp,
    /// `SIGDescribe("Netpol [LinuxOnly]")` /
    /// `Context("NetworkPolicy between server and client using UDP")`
    Udp,
    /// `SIGDescribe("Netpol", feature.SCTPConnectivity, "[LinuxOnly]")` /
    /// `Context("NetworkPolicy between server and client using SCTP")`
    Sctp,
}

impl Context {
    pub fn describe(self) -> &'static str {
        match self {
            Context::Tcp => {
                "SIGDescribe(\"Netpol\") / Context(\"NetworkPolicy between server and client\")"
            }
            Context::Udp => {
                "SIGDescribe(\"Netpol [LinuxOnly]\") / Context(\"NetworkPolicy between server and \
                 client using UDP\")"
            }
            Context::Sctp => {
                "SIGDescribe(\"Netpol\", feature.SCTPConnectivity, \"[LinuxOnly]\") / \
                 Context(\"NetworkPolicy between server and client using SCTP\")"
            }
        }
    }

    /// Prefix of the scenario file name (the UDP and SCTP contexts reuse titles of the TCP
    /// one).
    pub fn file_prefix(self) -> &'static str {
        match self {
            Context::Tcp => "",
            Context::Udp => "udp-",
            Context::Sctp => "sctp-",
        }
    }
}

/// Changes, then the checks upstream makes in the resulting state (one lab step).
#[derive(Debug, Clone)]
pub struct CaseStep {
    /// What upstream does here (its `ginkgo.By` text where it has one).
    pub name: String,
    pub changes: Vec<Change>,
    pub checks: Vec<Check>,
}

/// One upstream `f.It(...)`.
#[derive(Debug, Clone)]
pub struct Case {
    /// The `It` title, verbatim.
    pub title: &'static str,
    pub context: Context,
    /// `initializeResources(ctx, f, protocols, ports)`: every pod has one container per
    /// (port, protocol).
    pub protocols: Vec<Protocol>,
    pub ports: Vec<u16>,
    pub steps: Vec<CaseStep>,
}

impl Case {
    /// A TCP-context case whose pods serve `ports` on `protocols`.
    pub fn new(title: &'static str, protocols: &[Protocol], ports: &[u16]) -> Self {
        Self {
            title,
            context: Context::Tcp,
            protocols: protocols.to_vec(),
            ports: ports.to_vec(),
            steps: Vec::new(),
        }
    }

    /// The same case in another context.
    pub fn in_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Adds a step: `changes`, then `checks`.
    pub fn step(mut self, name: &str, changes: Vec<Change>, checks: Vec<Check>) -> Self {
        self.steps.push(CaseStep {
            name: name.to_owned(),
            changes,
            checks,
        });
        self
    }

    /// Whether the scenario probes SCTP anywhere (its servers, `waitForHTTPServers`, probe
    /// every protocol of [`Case::protocols`]): the lab cannot run it on a kernel without SCTP
    /// sockets, so it is checked at the BPF level only and lives in [`Case::scenario_dir`].
    pub fn bpf_only(&self) -> bool {
        self.protocols.contains(&Protocol::Sctp)
            || self
                .steps
                .iter()
                .flat_map(|s| &s.checks)
                .any(|c| c.protocol == Protocol::Sctp)
    }

    /// The directory (relative to the workspace root) the scenario is generated into:
    /// [`super::SCENARIO_DIR`], or [`super::SCTP_SCENARIO_DIR`] for a [`Case::bpf_only`] one.
    pub fn scenario_dir(&self) -> &'static str {
        if self.bpf_only() {
            super::SCTP_SCENARIO_DIR
        } else {
            super::SCENARIO_DIR
        }
    }

    /// The scenario's file name: the title in lowercase, apostrophes dropped, every other run
    /// of non-alphanumerics a `-`.
    pub fn file_name(&self) -> String {
        let mut slug = String::new();
        for c in self.title.chars().filter(|c| *c != '\'') {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        format!(
            "{}{}.yaml",
            self.context.file_prefix(),
            slug.trim_matches('-')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_follows_upstream_truth_table() {
        // should support denying of egress traffic on the client side: later calls win.
        let r = Reachability::new(true)
            .expect_peer(Peer::pod("x", "a"), Peer::any(), false)
            .expect_peer(Peer::any(), Peer::pod("y", "a"), false)
            .expect_peer(Peer::pod("x", "a"), Peer::pod("y", "a"), true)
            .expect_peer(Peer::any(), Peer::pod("y", "b"), false);
        let t = r.table();
        // x/a is index 0, y/a 3, y/b 4, z/c 8.
        assert!(t[0][3]);
        assert!(!t[0][4]);
        assert!(!t[0][1]);
        assert!(!t[8][3]);
        assert!(!t[8][4]);
        assert!(t[8][5]);
        let r = Reachability::new(true)
            .expect_all_ingress(pod("x", "a"), false)
            .expect(pod("x", "b"), pod("x", "a"), true);
        let t = r.table();
        assert!(t[1][0]);
        assert!(!t[2][0]);
        assert!(t[0][1]);
        assert_eq!(
            r.expectations[0].to_string(),
            "ExpectAllIngress(NewPodString(nsX, \"a\"), false)"
        );
    }

    #[test]
    fn pod_addresses_and_file_names() {
        assert_eq!(pod_ip(pod("x", "a")), Ipv4Addr::new(10, 42, 1, 10));
        assert_eq!(pod_ip(pod("z", "c")), Ipv4Addr::new(10, 42, 3, 12));
        let case = Case::new(
            "should support a 'default-deny-ingress' policy",
            &[Protocol::Tcp],
            &[80],
        );
        assert_eq!(
            case.file_name(),
            "should-support-a-default-deny-ingress-policy.yaml"
        );
        assert_eq!(
            case.clone().in_context(Context::Udp).file_name(),
            "udp-should-support-a-default-deny-ingress-policy.yaml"
        );
        assert!(!case.bpf_only());
        assert_eq!(case.scenario_dir(), "examples/conformance");
        let sctp = Case::new(
            "should support a 'default-deny-ingress' policy",
            &[Protocol::Sctp],
            &[80],
        )
        .in_context(Context::Sctp);
        assert_eq!(
            sctp.file_name(),
            "sctp-should-support-a-default-deny-ingress-policy.yaml"
        );
        assert!(sctp.bpf_only());
        assert_eq!(sctp.scenario_dir(), "examples/conformance-sctp");
    }

    #[test]
    fn policy_types_follow_the_set_funcs() {
        let p = gen_with_pod_selector(
            "deny-all",
            empty_selector(),
            vec![Set::Ingress(vec![]), Set::Egress(vec![])],
        );
        assert_eq!(p.policy_types, ["Ingress", "Egress"]);
        assert_eq!(
            p.manifest("x").flow(),
            "{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: deny-all, \
             namespace: x}, spec: {podSelector: {}, ingress: [], egress: [], policyTypes: \
             [Ingress, Egress]}}"
        );
    }
}
