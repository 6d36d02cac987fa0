//! The model's own reading of Calico v3 resources: lenient raw structs for the fields the
//! evaluation needs, and Calico's defaults applied here rather than taken from the agent.
//!
//! Which resources are valid is the agent's validation's question (`CalicoWorld::from_yaml`
//! asks it first); what a valid resource *means*, defaults included, is answered here from
//! the YAML as written, so that a defaulting bug in `policy_agent::calico::resources` shows up
//! as a disagreement with the compiler instead of being shared by both. Only the selector
//! parser ([`Selector::parse`]) is the agent's.
//!
//! The defaults, from the Calico v3 resource reference (GlobalNetworkPolicy, NetworkPolicy,
//! Tier) and libcalico-go's `clientv3` (which fills them in on create):
//! * `spec.tier` omitted or empty: `default`.
//! * `spec.order` omitted: after every number (kept as `None`).
//! * `spec.types` omitted or empty: `Ingress` when there are ingress rules or no rules at
//!   all, `Egress` when there are egress rules (so both when there are both).
//! * `spec.selector` omitted or empty: `all()`; an empty `namespaceSelector`,
//!   `serviceAccountSelector` or rule selector is absent (Go's zero value).
//! * `metadata.namespace` of a namespaced resource omitted: `default`.
//! * `doNotTrack`, `preDNAT` omitted: false.
//! * A rule's `services.namespace` omitted: the policy's own namespace.
//! * A Tier's `defaultAction` omitted: `Deny`; `kube-admin` and `kube-baseline` always have
//!   Calico's fixed order and `Pass`, whatever a declaration says.
//! * A network set's entry without a prefix length is its host prefix; CIDRs lose their host
//!   bits.
//!
//! Staged policies (`StagedGlobalNetworkPolicy`, `StagedNetworkPolicy`,
//! `StagedKubernetesNetworkPolicy`) are read here too, into [`StagedPolicy`], as Calico's API
//! server converts them (`ConvertStagedPolicyToEnforced`): `spec.stagedAction` omitted is
//! `Set`; with `Set` the document, without `stagedAction` and renamed to its enforced kind
//! (GlobalNetworkPolicy, NetworkPolicy, or networking.k8s.io/v1 NetworkPolicy), is read exactly
//! as that kind is, defaults included; with `Delete` only the kind, namespace and name count.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use policy_agent::calico::selector::Selector;
use serde::Deserialize;
use serde_yaml::Value;

type Labels = BTreeMap<String, String>;

use super::trace::{ADMIN_TIER, BASELINE_TIER};

/// The tier a policy without `spec.tier` is in.
pub const DEFAULT_TIER: &str = "default";
/// Calico's `KubeAdminTierOrder` and `KubeBaselineTierOrder`: the fixed orders of its tiers
/// of administrators' policy, before and after `default`.
pub const ADMIN_TIER_ORDER: f64 = 1_000.0;
pub const BASELINE_TIER_ORDER: f64 = 10_000_000.0;

/// A GlobalNetworkPolicy (`namespace` None) or a namespaced Calico NetworkPolicy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub namespace: Option<String>,
    pub tier: String,
    pub order: Option<f64>,
    pub selector: Selector,
    pub namespace_selector: Option<Selector>,
    pub service_account_selector: Option<Selector>,
    pub types: Types,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub do_not_track: bool,
    pub pre_dnat: bool,
}

/// The directions a policy applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Types {
    pub ingress: bool,
    pub egress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
    Log,
    Pass,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TierAction {
    #[default]
    Deny,
    Pass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub ip_version: Option<IpVersion>,
    /// IP protocol numbers.
    pub protocol: Option<u8>,
    pub not_protocol: Option<u8>,
    pub icmp: Option<Icmp>,
    pub not_icmp: Option<Icmp>,
    pub source: EntityRule,
    pub destination: EntityRule,
}

/// `icmp`/`notICMP`: empty constrains nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Icmp {
    pub icmp_type: Option<u8>,
    pub code: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityRule {
    pub nets: Vec<IpNet>,
    pub not_nets: Vec<IpNet>,
    pub selector: Option<Selector>,
    pub not_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    pub ports: Vec<Port>,
    pub not_ports: Vec<Port>,
    pub service_accounts: Option<ServiceAccounts>,
    pub services: Option<Service>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    Range { first: u16, last: u16 },
    Named(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccounts {
    pub names: Vec<String>,
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: String,
    pub order: Option<f64>,
    pub default_action: TierAction,
}

/// A GlobalNetworkSet (`namespace` None) or a namespaced NetworkSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSet {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: Labels,
    pub nets: Vec<IpNet>,
}

/// A host endpoint, as a peer: the addresses it owns and its named ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    pub name: String,
    pub labels: Labels,
    pub expected_ips: Vec<IpAddr>,
    pub ports: Vec<NamedPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    pub protocol: u8,
}

/// The kind of policy a staged policy stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StagedKind {
    /// A `StagedGlobalNetworkPolicy`.
    GlobalNetworkPolicy,
    /// A `StagedNetworkPolicy` (Calico's namespaced policy).
    NetworkPolicy,
    /// A `StagedKubernetesNetworkPolicy` (a networking.k8s.io/v1 NetworkPolicy).
    KubernetesNetworkPolicy,
}

impl StagedKind {
    /// The kind of a staged document, from its `kind`.
    pub fn of_kind(kind: &str) -> Option<StagedKind> {
        match kind {
            "StagedGlobalNetworkPolicy" => Some(StagedKind::GlobalNetworkPolicy),
            "StagedNetworkPolicy" => Some(StagedKind::NetworkPolicy),
            "StagedKubernetesNetworkPolicy" => Some(StagedKind::KubernetesNetworkPolicy),
            _ => None,
        }
    }
}

/// A staged policy: what it does to the enforced policy of its kind, namespace and name.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedPolicy {
    pub kind: StagedKind,
    /// None for a `StagedGlobalNetworkPolicy`; a namespaced kind's namespace defaults to
    /// `default`.
    pub namespace: Option<String>,
    pub name: String,
    pub change: StagedChange,
}

impl StagedPolicy {
    /// Whether `other` is the same staged object (kind, namespace and name): the API server
    /// holds one of each.
    pub fn same_object(&self, other: &StagedPolicy) -> bool {
        (self.kind, &self.namespace, &self.name) == (other.kind, &other.namespace, &other.name)
    }
}

/// `stagedAction`: `Set` puts the policy in place of the enforced one (or beside the others),
/// `Delete` takes the enforced one away.
#[derive(Debug, Clone, PartialEq)]
pub enum StagedChange {
    Set(StagedSet),
    Delete,
}

/// A staged `Set`'s policy, read as its enforced kind.
#[derive(Debug, Clone, PartialEq)]
pub enum StagedSet {
    Calico(Box<Policy>),
    Kubernetes(Box<k8s_openapi::api::networking::v1::NetworkPolicy>),
}

/// One resource as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Policy(Box<Policy>),
    Tier(Tier),
    NetworkSet(NetworkSet),
    HostEndpoint(HostEndpoint),
    /// A staged policy: kept apart from the enforced ones.
    Staged(Box<StagedPolicy>),
}

// ---- raw: the YAML as written, only the fields the model reads ----

#[derive(Deserialize, Default)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<Labels>,
}

#[derive(Deserialize)]
struct Object<S> {
    #[serde(default)]
    metadata: Meta,
    spec: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    tier: Option<String>,
    order: Option<f64>,
    selector: Option<String>,
    namespace_selector: Option<String>,
    service_account_selector: Option<String>,
    types: Option<Vec<String>>,
    ingress: Option<Vec<RawRule>>,
    egress: Option<Vec<RawRule>>,
    do_not_track: Option<bool>,
    #[serde(rename = "preDNAT")]
    pre_dnat: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    action: Option<String>,
    ip_version: Option<i64>,
    protocol: Option<NumOrString>,
    not_protocol: Option<NumOrString>,
    icmp: Option<RawIcmp>,
    #[serde(rename = "notICMP")]
    not_icmp: Option<RawIcmp>,
    source: Option<RawEntity>,
    destination: Option<RawEntity>,
}

#[derive(Deserialize, Default)]
struct RawIcmp {
    #[serde(rename = "type")]
    icmp_type: Option<i64>,
    code: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawEntity {
    nets: Option<Vec<String>>,
    not_nets: Option<Vec<String>>,
    selector: Option<String>,
    not_selector: Option<String>,
    namespace_selector: Option<String>,
    ports: Option<Vec<NumOrString>>,
    not_ports: Option<Vec<NumOrString>>,
    service_accounts: Option<RawServiceAccounts>,
    services: Option<RawService>,
}

#[derive(Deserialize, Default)]
struct RawServiceAccounts {
    names: Option<Vec<String>>,
    selector: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawService {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawTier {
    order: Option<f64>,
    default_action: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawSet {
    nets: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawHost {
    #[serde(rename = "expectedIPs")]
    expected_ips: Option<Vec<String>>,
    ports: Option<Vec<RawHostPort>>,
}

#[derive(Deserialize)]
struct RawHostPort {
    name: Option<String>,
    port: Option<i64>,
    protocol: Option<NumOrString>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum NumOrString {
    Num(i64),
    Str(String),
}

// ---- reading, with Calico's defaults ----

/// Reads one Calico v3 resource (not a `List`) the way Calico means it.
pub fn read(value: &Value) -> Result<Resource, String> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespaced = matches!(kind, "NetworkPolicy" | "NetworkSet");
    match kind {
        "GlobalNetworkPolicy" | "NetworkPolicy" => {
            policy(typed(value)?, namespaced).map(|p| Resource::Policy(Box::new(p)))
        }
        "Tier" => tier(typed(value)?).map(Resource::Tier),
        "GlobalNetworkSet" | "NetworkSet" => network_set(typed(value)?, namespaced),
        "HostEndpoint" => host_endpoint(typed(value)?),
        other => match StagedKind::of_kind(other) {
            Some(kind) => staged(kind, value).map(|s| Resource::Staged(Box::new(s))),
            None => Err(format!("the model does not read kind '{other}'")),
        },
    }
}

/// A staged policy of `kind`: its `stagedAction` (`Set` when omitted), and with `Set` the
/// document read as its enforced kind.
fn staged(kind: StagedKind, value: &Value) -> Result<StagedPolicy, String> {
    let meta: Meta = value
        .get("metadata")
        .cloned()
        .map(serde_yaml::from_value)
        .transpose()
        .map_err(|e| format!("unreadable metadata: {e}"))?
        .unwrap_or_default();
    let namespaced = kind != StagedKind::GlobalNetworkPolicy;
    let mut enforced = value.clone();
    let action = match enforced
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .and_then(|spec| spec.remove("stagedAction"))
    {
        None => "Set".to_owned(),
        Some(Value::String(action)) => action,
        Some(other) => return Err(format!("stagedAction {other:?}")),
    };
    let change = match action.as_str() {
        "Delete" => StagedChange::Delete,
        "Set" => {
            let (api_version, enforced_kind) = match kind {
                StagedKind::GlobalNetworkPolicy => ("projectcalico.org/v3", "GlobalNetworkPolicy"),
                StagedKind::NetworkPolicy => ("projectcalico.org/v3", "NetworkPolicy"),
                StagedKind::KubernetesNetworkPolicy => ("networking.k8s.io/v1", "NetworkPolicy"),
            };
            enforced["apiVersion"] = Value::String(api_version.to_owned());
            enforced["kind"] = Value::String(enforced_kind.to_owned());
            StagedChange::Set(match kind {
                StagedKind::KubernetesNetworkPolicy => {
                    let mut np: k8s_openapi::api::networking::v1::NetworkPolicy =
                        serde_yaml::from_value(enforced)
                            .map_err(|e| format!("unreadable NetworkPolicy: {e}"))?;
                    // The namespace the staged object is in, written out: what it replaces.
                    np.metadata.namespace = namespace(&meta, true);
                    StagedSet::Kubernetes(Box::new(np))
                }
                StagedKind::GlobalNetworkPolicy | StagedKind::NetworkPolicy => {
                    StagedSet::Calico(Box::new(policy(typed(&enforced)?, namespaced)?))
                }
            })
        }
        other => return Err(format!("stagedAction '{other}'")),
    };
    Ok(StagedPolicy {
        kind,
        namespace: namespace(&meta, namespaced),
        name: name(&meta),
        change,
    })
}

fn typed<S: for<'de> Deserialize<'de>>(value: &Value) -> Result<Object<S>, String> {
    serde_yaml::from_value(value.clone()).map_err(|e| format!("unreadable resource: {e}"))
}

fn name(meta: &Meta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// A namespaced resource's namespace, `default` when omitted (calicoctl's default).
fn namespace(meta: &Meta, namespaced: bool) -> Option<String> {
    namespaced.then(|| {
        meta.namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned())
    })
}

/// A selector field: None when omitted or empty.
fn selector(text: Option<&str>) -> Result<Option<Selector>, String> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => Selector::parse(text)
            .map(Some)
            .map_err(|e| format!("selector '{text}': {e}")),
    }
}

fn policy(object: Object<RawPolicy>, namespaced: bool) -> Result<Policy, String> {
    let spec = object.spec.unwrap_or_default();
    let namespace = namespace(&object.metadata, namespaced);
    let raw_ingress = spec.ingress.unwrap_or_default();
    let raw_egress = spec.egress.unwrap_or_default();
    let types = match spec.types.as_deref() {
        Some(types) if !types.is_empty() => Types {
            ingress: types.iter().any(|t| t == "Ingress"),
            egress: types.iter().any(|t| t == "Egress"),
        },
        _ => Types {
            ingress: !raw_ingress.is_empty() || raw_egress.is_empty(),
            egress: !raw_egress.is_empty(),
        },
    };
    let ns = namespace.as_deref();
    let rules = |raw: Vec<RawRule>| -> Result<Vec<Rule>, String> {
        raw.into_iter().map(|r| rule(r, ns)).collect()
    };
    Ok(Policy {
        name: name(&object.metadata),
        tier: spec
            .tier
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_TIER.to_owned()),
        order: spec.order,
        selector: selector(spec.selector.as_deref())?.unwrap_or(Selector::All),
        namespace_selector: selector(spec.namespace_selector.as_deref())?,
        service_account_selector: selector(spec.service_account_selector.as_deref())?,
        types,
        ingress: rules(raw_ingress)?,
        egress: rules(raw_egress)?,
        do_not_track: spec.do_not_track.unwrap_or(false),
        pre_dnat: spec.pre_dnat.unwrap_or(false),
        namespace,
    })
}

fn rule(raw: RawRule, policy_ns: Option<&str>) -> Result<Rule, String> {
    let action = match raw.action.as_deref() {
        Some("Allow") => Action::Allow,
        Some("Deny") => Action::Deny,
        Some("Log") => Action::Log,
        Some("Pass") => Action::Pass,
        other => return Err(format!("rule action {other:?}")),
    };
    let ip_version = match raw.ip_version {
        None => None,
        Some(4) => Some(IpVersion::V4),
        Some(6) => Some(IpVersion::V6),
        Some(other) => return Err(format!("ipVersion {other}")),
    };
    let protocol = raw.protocol.as_ref().map(protocol_number).transpose()?;
    let not_protocol = raw.not_protocol.as_ref().map(protocol_number).transpose()?;
    Ok(Rule {
        action,
        ip_version,
        protocol,
        not_protocol,
        icmp: raw.icmp.as_ref().map(icmp).transpose()?,
        not_icmp: raw.not_icmp.as_ref().map(icmp).transpose()?,
        source: entity(raw.source.unwrap_or_default(), policy_ns)?,
        destination: entity(raw.destination.unwrap_or_default(), policy_ns)?,
    })
}

/// Calico's protocol names, or a number.
fn protocol_number(raw: &NumOrString) -> Result<u8, String> {
    let number = match raw {
        NumOrString::Num(n) => u8::try_from(*n).ok(),
        NumOrString::Str(name) => match name.as_str() {
            "TCP" => Some(6),
            "UDP" => Some(17),
            "ICMP" => Some(1),
            "ICMPv6" => Some(58),
            "SCTP" => Some(132),
            "UDPLite" => Some(136),
            _ => None,
        },
    };
    number.ok_or_else(|| "not a protocol".to_owned())
}

fn icmp(raw: &RawIcmp) -> Result<Icmp, String> {
    let byte = |n: Option<i64>| {
        n.map(|n| u8::try_from(n).map_err(|_| format!("ICMP field {n}")))
            .transpose()
    };
    Ok(Icmp {
        icmp_type: byte(raw.icmp_type)?,
        code: byte(raw.code)?,
    })
}

fn entity(raw: RawEntity, policy_ns: Option<&str>) -> Result<EntityRule, String> {
    let ports = |list: Option<Vec<NumOrString>>| -> Result<Vec<Port>, String> {
        list.unwrap_or_default().iter().map(port).collect()
    };
    let service_accounts = match raw.service_accounts {
        None => None,
        Some(sa) => Some(ServiceAccounts {
            names: sa.names.unwrap_or_default(),
            selector: selector(sa.selector.as_deref())?,
        }),
    };
    let services = raw.services.map(|s| Service {
        name: s.name.unwrap_or_default(),
        namespace: s
            .namespace
            .filter(|ns| !ns.is_empty())
            .or_else(|| policy_ns.map(str::to_owned))
            .unwrap_or_default(),
    });
    Ok(EntityRule {
        nets: nets(raw.nets, false)?,
        not_nets: nets(raw.not_nets, false)?,
        selector: selector(raw.selector.as_deref())?,
        not_selector: selector(raw.not_selector.as_deref())?,
        namespace_selector: selector(raw.namespace_selector.as_deref())?,
        ports: ports(raw.ports)?,
        not_ports: ports(raw.not_ports)?,
        service_accounts,
        services,
    })
}

/// CIDRs without their host bits; with `addresses`, a bare address is its host prefix.
fn nets(raw: Option<Vec<String>>, addresses: bool) -> Result<Vec<IpNet>, String> {
    raw.unwrap_or_default()
        .iter()
        .map(|text| match text.parse::<IpNet>() {
            Ok(net) => Ok(net.trunc()),
            Err(_) if addresses => text
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("'{text}' is not a CIDR or an address")),
            Err(_) => Err(format!("'{text}' is not a CIDR")),
        })
        .collect()
}

/// A port number, `"first:last"`, a number in a string, or a port name.
fn port(raw: &NumOrString) -> Result<Port, String> {
    let number = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("'{text}' is not a port"))
    };
    match raw {
        NumOrString::Num(n) => {
            let n = u16::try_from(*n).map_err(|_| format!("{n} is not a port"))?;
            Ok(Port::Range { first: n, last: n })
        }
        NumOrString::Str(text) => match text.split_once(':') {
            Some((first, last)) => Ok(Port::Range {
                first: number(first)?,
                last: number(last)?,
            }),
            None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                let n = number(text)?;
                Ok(Port::Range { first: n, last: n })
            }
            None => Ok(Port::Named(text.clone())),
        },
    }
}

fn tier(object: Object<RawTier>) -> Result<Tier, String> {
    let name = name(&object.metadata);
    let spec = object.spec.unwrap_or_default();
    let (order, default_action) = match name.as_str() {
        ADMIN_TIER => (Some(ADMIN_TIER_ORDER), TierAction::Pass),
        BASELINE_TIER => (Some(BASELINE_TIER_ORDER), TierAction::Pass),
        _ => {
            let action = match spec.default_action.as_deref() {
                None | Some("Deny") => TierAction::Deny,
                Some("Pass") => TierAction::Pass,
                Some(other) => return Err(format!("tier defaultAction '{other}'")),
            };
            (spec.order, action)
        }
    };
    Ok(Tier {
        name,
        order,
        default_action,
    })
}

fn network_set(object: Object<RawSet>, namespaced: bool) -> Result<Resource, String> {
    Ok(Resource::NetworkSet(NetworkSet {
        name: name(&object.metadata),
        namespace: namespace(&object.metadata, namespaced),
        labels: object.metadata.labels.clone().unwrap_or_default(),
        nets: nets(object.spec.unwrap_or_default().nets, true)?,
    }))
}

fn host_endpoint(object: Object<RawHost>) -> Result<Resource, String> {
    let spec = object.spec.unwrap_or_default();
    let expected_ips = spec
        .expected_ips
        .unwrap_or_default()
        .iter()
        .map(|text| {
            text.parse::<IpAddr>()
                .map_err(|_| format!("'{text}' is not an address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let port = p
                .port
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| "host endpoint port without a number".to_owned())?;
            let protocol = p
                .protocol
                .as_ref()
                .ok_or_else(|| "host endpoint port without a protocol".to_owned())
                .and_then(protocol_number)?;
            Ok(NamedPort {
                name: p.name.clone().unwrap_or_default(),
                port,
                protocol,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Resource::HostEndpoint(HostEndpoint {
        name: name(&object.metadata),
        labels: object.metadata.labels.clone().unwrap_or_default(),
        expected_ips,
        ports,
    }))
}
