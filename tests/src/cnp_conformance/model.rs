//! The upstream conformance model, in Rust: the houses and their pods as upstream's
//! `base/manifests.yaml` declares them, one `PokeServer` call as a [`Probe`], the mutations the
//! Go code makes between probes as [`Change`]s, and what a `ConformanceTest` is (its
//! `Manifests` and its `t.Run` subtests, each a list of [`Phase`]s: changes, then probes).

use std::{fmt, net::Ipv4Addr};

use crate::lab::scenario::Protocol;

/// Which upstream API (and revision of the suite) a test belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy, upstream `HEAD`.
    V1alpha2,
    /// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy and BaselineAdminNetworkPolicy,
    /// upstream tag `v0.1.8`.
    V1alpha1,
}

impl Version {
    pub const ALL: [Version; 2] = [Version::V1alpha2, Version::V1alpha1];

    /// The upstream revision the tests are transcribed from, as `(ref, commit)`.
    pub fn upstream(self) -> (&'static str, &'static str) {
        match self {
            Version::V1alpha2 => ("HEAD", super::UPSTREAM_COMMIT_V1ALPHA2),
            Version::V1alpha1 => ("v0.1.8", super::UPSTREAM_COMMIT_V1ALPHA1),
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Version::V1alpha2 => "policy.networking.k8s.io/v1alpha2",
            Version::V1alpha1 => "policy.networking.k8s.io/v1alpha1",
        }
    }

    /// How the scenario file names start.
    pub fn slug(self) -> &'static str {
        match self {
            Version::V1alpha2 => "v1alpha2",
            Version::V1alpha1 => "v1alpha1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_version())
    }
}

/// One of upstream's houses: a namespace `network-policy-conformance-<house>` labelled
/// `conformance-house: <house>`, with a StatefulSet of 2 pods labelled the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum House {
    Gryffindor,
    Slytherin,
    Hufflepuff,
    Ravenclaw,
}

impl House {
    /// In the order `base/manifests.yaml` declares them.
    pub const ALL: [House; 4] = [
        House::Gryffindor,
        House::Slytherin,
        House::Hufflepuff,
        House::Ravenclaw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            House::Gryffindor => "gryffindor",
            House::Slytherin => "slytherin",
            House::Hufflepuff => "hufflepuff",
            House::Ravenclaw => "ravenclaw",
        }
    }

    pub fn namespace(self) -> String {
        format!("network-policy-conformance-{}", self.name())
    }

    /// The house's StatefulSet: its pods are `<statefulset>-0` and `<statefulset>-1`.
    pub fn statefulset(self) -> &'static str {
        match self {
            House::Gryffindor => "harry-potter",
            House::Slytherin => "draco-malfoy",
            House::Hufflepuff => "cedric-diggory",
            House::Ravenclaw => "luna-lovegood",
        }
    }

    fn index(self) -> u8 {
        match self {
            House::Gryffindor => 0,
            House::Slytherin => 1,
            House::Hufflepuff => 2,
            House::Ravenclaw => 3,
        }
    }
}

/// The label upstream's houses (namespaces and pods) carry.
pub const HOUSE_LABEL: &str = "conformance-house";

/// A StatefulSet pod: `<statefulset>-<ordinal>` in its house's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pod {
    pub house: House,
    pub ordinal: u8,
}

pub const HARRY_POTTER_0: Pod = Pod::new(House::Gryffindor, 0);
pub const HARRY_POTTER_1: Pod = Pod::new(House::Gryffindor, 1);
pub const DRACO_MALFOY_0: Pod = Pod::new(House::Slytherin, 0);
pub const DRACO_MALFOY_1: Pod = Pod::new(House::Slytherin, 1);
pub const CEDRIC_DIGGORY_0: Pod = Pod::new(House::Hufflepuff, 0);
pub const CEDRIC_DIGGORY_1: Pod = Pod::new(House::Hufflepuff, 1);
pub const LUNA_LOVEGOOD_0: Pod = Pod::new(House::Ravenclaw, 0);
pub const LUNA_LOVEGOOD_1: Pod = Pod::new(House::Ravenclaw, 1);

/// Every pod of the houses, in `base/manifests.yaml`'s order (`replicas: 2` each).
pub const ALL_PODS: [Pod; 8] = [
    HARRY_POTTER_0,
    HARRY_POTTER_1,
    DRACO_MALFOY_0,
    DRACO_MALFOY_1,
    CEDRIC_DIGGORY_0,
    CEDRIC_DIGGORY_1,
    LUNA_LOVEGOOD_0,
    LUNA_LOVEGOOD_1,
];

impl Pod {
    pub const fn new(house: House, ordinal: u8) -> Self {
        Self { house, ordinal }
    }

    pub fn name(self) -> String {
        format!("{}-{}", self.house.statefulset(), self.ordinal)
    }

    pub fn namespace(self) -> String {
        self.house.namespace()
    }

    /// The address the scenarios give the pod: 10.42.N.M, N = 1..4 for gryffindor, slytherin,
    /// hufflepuff, ravenclaw and M = 10 + ordinal. Upstream reads `serverPod.Status.PodIP`; the
    /// generator computes the same strings (the inline-CIDR tests put them in policies).
    pub fn ip(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 42, 1 + self.house.index(), 10 + self.ordinal)
    }
}

impl fmt::Display for Pod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace(), self.name())
    }
}

/// One `kubernetes.PokeServer(t, ..., clientNamespace, clientPod, protocol,
/// serverPod.Status.PodIP, port, ..., shouldConnect)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub client: Pod,
    pub protocol: Protocol,
    pub server: Pod,
    pub port: u16,
    pub should_connect: bool,
}

/// `PokeServer(client.namespace, client.name, protocol, server.Status.PodIP, port, should)`,
/// arguments in upstream's order.
pub fn poke(client: Pod, protocol: Protocol, server: Pod, port: u16, should: bool) -> Probe {
    Probe {
        client,
        protocol,
        server,
        port,
        should_connect: should,
    }
}

/// The kinds of object upstream's tests create and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ClusterNetworkPolicy,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    NetworkPolicy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Kind::AdminNetworkPolicy => "AdminNetworkPolicy",
            Kind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Kind::ClusterNetworkPolicy,
            Kind::AdminNetworkPolicy,
            Kind::BaselineAdminNetworkPolicy,
            Kind::NetworkPolicy,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    /// The field a rule's ports live in, and how a named port is written there: v1alpha2's
    /// `protocols: [{destinationNamedPort: N}]`, v1alpha1's `ports: [{namedPort: N}]`.
    fn named_port(self, port: &str) -> (&'static str, serde_yaml::Value) {
        let mut entry = serde_yaml::Mapping::new();
        let (field, key) = match self {
            Kind::ClusterNetworkPolicy => ("protocols", "destinationNamedPort"),
            _ => ("ports", "namedPort"),
        };
        entry.insert(key.into(), port.into());
        (field, serde_yaml::Value::Sequence(vec![entry.into()]))
    }
}

/// A policy by kind and name (cluster-scoped: no namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRef {
    pub kind: Kind,
    pub name: &'static str,
}

pub fn cnp(name: &'static str) -> PolicyRef {
    PolicyRef {
        kind: Kind::ClusterNetworkPolicy,
        name,
    }
}

pub fn anp(name: &'static str) -> PolicyRef {
    PolicyRef {
        kind: Kind::AdminNetworkPolicy,
        name,
    }
}

pub fn banp(name: &'static str) -> PolicyRef {
    PolicyRef {
        kind: Kind::BaselineAdminNetworkPolicy,
        name,
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.name)
    }
}

/// `Spec.Ingress` or `Spec.Egress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gress {
    Ingress,
    Egress,
}

impl Gress {
    pub fn field(self) -> &'static str {
        match self {
            Gress::Ingress => "ingress",
            Gress::Egress => "egress",
        }
    }

    fn go(self) -> &'static str {
        match self {
            Gress::Ingress => "Ingress",
            Gress::Egress => "Egress",
        }
    }
}

/// What upstream's Go code changes between probes, on the live object it just read
/// (`Get`, `DeepCopy`, edit, merge `Patch`): each change applies to the object as the previous
/// ones left it, across subtests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `r := mutate.Spec.G[i]; mutate.Spec.G[i] = mutate.Spec.G[j]; mutate.Spec.G[j] = r`
    SwapRules {
        policy: PolicyRef,
        gress: Gress,
        i: usize,
        j: usize,
    },
    /// `mutate.Spec.G[index].Action = action`
    SetAction {
        policy: PolicyRef,
        gress: Gress,
        index: usize,
        action: &'static str,
    },
    /// `mutate.Spec.Priority = priority`
    SetPriority { policy: PolicyRef, priority: i64 },
    /// `rule := mutate.Spec.G[index]; rule.Protocols = [{DestinationNamedPort: port}]`
    /// (v1alpha1: `rule.Ports = &[{NamedPort: &port}]`); `mutate.Spec.G[index] = rule`
    SetNamedPort {
        policy: PolicyRef,
        gress: Gress,
        index: usize,
        port: &'static str,
    },
    /// `newRule := [{Name: name, Action: action, To: [{Networks: [ip(pods[0]) + "/32",
    /// ip(pods[1]) + "/32"]}]}]; mutate.Spec.Egress = append(newRule, mutate.Spec.Egress...)`
    PrependNetworksEgressRule {
        policy: PolicyRef,
        name: &'static str,
        action: &'static str,
        pods: [Pod; 2],
    },
    /// `s.Client.Delete(ctx, np)` of a NetworkPolicy.
    DeleteNetworkPolicy {
        namespace: House,
        name: &'static str,
    },
    /// `mutateNamespace.SetLabels(labels)` then `PatchNamespace`: the labels are replaced
    /// (the API server keeps `kubernetes.io/metadata.name`).
    SetNamespaceLabels {
        house: House,
        labels: &'static [(&'static str, &'static str)],
    },
}

impl Change {
    /// The policy it edits, if it edits one in place.
    pub fn policy(&self) -> Option<PolicyRef> {
        match self {
            Change::SwapRules { policy, .. }
            | Change::SetAction { policy, .. }
            | Change::SetPriority { policy, .. }
            | Change::SetNamedPort { policy, .. }
            | Change::PrependNetworksEgressRule { policy, .. } => Some(*policy),
            Change::DeleteNetworkPolicy { .. } | Change::SetNamespaceLabels { .. } => None,
        }
    }

    /// Edits `spec` (the policy's `spec` mapping) as the Go code edits `mutate.Spec`.
    pub fn edit_spec(&self, spec: &mut serde_yaml::Value) -> anyhow::Result<()> {
        match self {
            Change::SwapRules { gress, i, j, .. } => {
                let list = rule_list(spec, *gress)?;
                anyhow::ensure!(
                    *i < list.len() && *j < list.len(),
                    "spec.{}[{i}] or [{j}]: only {} rules",
                    gress.field(),
                    list.len()
                );
                list.swap(*i, *j);
            }
            Change::SetAction {
                gress,
                index,
                action,
                ..
            } => {
                let rule = rule_at(spec, *gress, *index)?;
                rule.insert("action".into(), (*action).into());
            }
            Change::SetPriority { priority, .. } => {
                let map = spec
                    .as_mapping_mut()
                    .ok_or_else(|| anyhow::anyhow!("spec is not a mapping"))?;
                map.insert("priority".into(), (*priority).into());
            }
            Change::SetNamedPort {
                policy,
                gress,
                index,
                port,
            } => {
                let (field, value) = policy.kind.named_port(port);
                let rule = rule_at(spec, *gress, *index)?;
                rule.insert(field.into(), value);
            }
            Change::PrependNetworksEgressRule {
                name, action, pods, ..
            } => {
                let networks: Vec<serde_yaml::Value> = pods
                    .iter()
                    .map(|p| format!("{}/32", p.ip()).into())
                    .collect();
                let mut peer = serde_yaml::Mapping::new();
                peer.insert("networks".into(), networks.into());
                let mut rule = serde_yaml::Mapping::new();
                rule.insert("name".into(), (*name).into());
                rule.insert("action".into(), (*action).into());
                rule.insert("to".into(), vec![serde_yaml::Value::from(peer)].into());
                rule_list(spec, Gress::Egress)?.insert(0, rule.into());
            }
            Change::DeleteNetworkPolicy { .. } | Change::SetNamespaceLabels { .. } => {
                anyhow::bail!("{self} does not edit a policy")
            }
        }
        Ok(())
    }
}

fn rule_list(
    spec: &mut serde_yaml::Value,
    gress: Gress,
) -> anyhow::Result<&mut Vec<serde_yaml::Value>> {
    spec.get_mut(gress.field())
        .and_then(serde_yaml::Value::as_sequence_mut)
        .ok_or_else(|| anyhow::anyhow!("spec.{} is not a list", gress.field()))
}

fn rule_at(
    spec: &mut serde_yaml::Value,
    gress: Gress,
    index: usize,
) -> anyhow::Result<&mut serde_yaml::Mapping> {
    rule_list(spec, gress)?
        .get_mut(index)
        .and_then(serde_yaml::Value::as_mapping_mut)
        .ok_or_else(|| anyhow::anyhow!("spec.{}[{index}] is not a rule", gress.field()))
}

impl fmt::Display for Change {
    /// The Go code, abridged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::SwapRules {
                policy,
                gress,
                i,
                j,
            } => write!(
                f,
                "{policy}: swap Spec.{g}[{i}] and Spec.{g}[{j}], then Patch",
                g = gress.go()
            ),
            Change::SetAction {
                policy,
                gress,
                index,
                action,
            } => write!(
                f,
                "{policy}: Spec.{}[{index}].Action = {action}, then Patch",
                gress.go()
            ),
            Change::SetPriority { policy, priority } => {
                write!(f, "{policy}: Spec.Priority = {priority}, then Patch")
            }
            Change::SetNamedPort {
                policy,
                gress,
                index,
                port,
            } => {
                let (field, _) = policy.kind.named_port(port);
                let value = match policy.kind {
                    Kind::ClusterNetworkPolicy => format!("[{{DestinationNamedPort: {port:?}}}]"),
                    _ => format!("&[{{NamedPort: &{port:?}}}]"),
                };
                let field = if field == "protocols" {
                    "Protocols"
                } else {
                    "Ports"
                };
                write!(
                    f,
                    "{policy}: Spec.{}[{index}].{field} = {value}, then Patch",
                    gress.go()
                )
            }
            Change::PrependNetworksEgressRule {
                policy,
                name,
                action,
                pods,
            } => write!(
                f,
                "{policy}: Spec.Egress = append([{{Name: {name:?}, Action: {action:?}, To: \
                 [{{Networks: [{}.PodIP + \"/32\", {}.PodIP + \"/32\"]}}]}}], Spec.Egress...), \
                 then Patch",
                pods[0].name(),
                pods[1].name()
            ),
            Change::DeleteNetworkPolicy { namespace, name } => {
                write!(f, "Delete NetworkPolicy {}/{name}", namespace.namespace())
            }
            Change::SetNamespaceLabels { house, labels } => {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k:?}: {v:?}"))
                    .collect();
                write!(
                    f,
                    "Namespace {}: SetLabels({{{}}}), then PatchNamespace",
                    house.namespace(),
                    labels.join(", ")
                )
            }
        }
    }
}

/// Changes, then probes: a subtest is one phase, or several when its Go code changes
/// something between probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub changes: Vec<Change>,
    pub probes: Vec<Probe>,
}

pub fn phase(changes: Vec<Change>, probes: Vec<Probe>) -> Phase {
    Phase { changes, probes }
}

/// One `t.Run(title, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtest {
    pub title: &'static str,
    pub phases: Vec<Phase>,
}

pub fn subtest(title: &'static str, phases: Vec<Phase>) -> Subtest {
    Subtest { title, phases }
}

/// One `suite.ConformanceTest`: its `Manifests` are applied before its subtests run, and
/// deleted after them (`MustApplyWithCleanup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub version: Version,
    /// `conformance/tests/<file>`.
    pub file: &'static str,
    pub short_name: &'static str,
    /// Paths under `conformance/` (`base/...`).
    pub manifests: Vec<&'static str>,
    pub subtests: Vec<Subtest>,
}

impl Test {
    pub fn probes(&self) -> impl Iterator<Item = &Probe> {
        self.subtests
            .iter()
            .flat_map(|s| &s.phases)
            .flat_map(|p| &p.probes)
    }

    /// Whether it has a probe of a protocol `keep` accepts.
    pub fn probes_any(&self, keep: impl Fn(Protocol) -> bool) -> bool {
        self.probes().any(|p| keep(p.protocol))
    }

    /// The admin-tier tests (`admin-network-policy-*.go`) or the baseline ones.
    pub fn is_baseline(&self) -> bool {
        self.file.starts_with("baseline-")
    }
}

/// An upstream subtest that is not ported, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    pub version: Version,
    pub file: &'static str,
    pub short_name: &'static str,
    pub subtest: &'static str,
    pub reason: &'static str,
}

pub const INGRESS: Gress = Gress::Ingress;
pub const EGRESS: Gress = Gress::Egress;
pub const GRYFFINDOR: House = House::Gryffindor;
pub const SLYTHERIN: House = House::Slytherin;

/// [`Change::SwapRules`]
pub fn swap(policy: PolicyRef, gress: Gress, i: usize, j: usize) -> Change {
    Change::SwapRules {
        policy,
        gress,
        i,
        j,
    }
}

/// [`Change::SetAction`]
pub fn set_action(policy: PolicyRef, gress: Gress, index: usize, action: &'static str) -> Change {
    Change::SetAction {
        policy,
        gress,
        index,
        action,
    }
}

/// [`Change::SetPriority`]
pub fn set_priority(policy: PolicyRef, priority: i64) -> Change {
    Change::SetPriority { policy, priority }
}

/// [`Change::SetNamedPort`]
pub fn set_named_port(policy: PolicyRef, gress: Gress, index: usize, port: &'static str) -> Change {
    Change::SetNamedPort {
        policy,
        gress,
        index,
        port,
    }
}

/// [`Change::PrependNetworksEgressRule`]
pub fn prepend_networks(
    policy: PolicyRef,
    name: &'static str,
    action: &'static str,
    pods: [Pod; 2],
) -> Change {
    Change::PrependNetworksEgressRule {
        policy,
        name,
        action,
        pods,
    }
}

/// [`Change::DeleteNetworkPolicy`]
pub fn delete_network_policy(namespace: House, name: &'static str) -> Change {
    Change::DeleteNetworkPolicy { namespace, name }
}

/// [`Change::SetNamespaceLabels`]
pub fn set_namespace_labels(
    house: House,
    labels: &'static [(&'static str, &'static str)],
) -> Change {
    Change::SetNamespaceLabels { house, labels }
}
