//! Calico v3 resources as a compiler needs them: typed, validated, selectors parsed.
//!
//! calicoctl users keep policy as multi-document YAML; [`parse_documents`] reads such a file and
//! returns one result per resource, so that one invalid resource never hides the others. Each
//! resource goes through two steps:
//!
//! 1. [`raw`]: serde types mirroring Calico's YAML (camelCase, unknown fields rejected as the
//!    API server's schema would), read through `serde_path_to_error` for the field path.
//! 2. [`validate`]: Calico's own validation rules (libcalico-go's validator and the v3 resource
//!    reference), with defaults applied (tier `default`, `types` from the rules present), into
//!    the plain types below.
//!
//! Errors name the resource, the field path (`spec.ingress[2].source.selector`) and, for a
//! selector, the byte position in it.

mod load;
pub mod raw;
mod support;
mod validate;

use std::{cmp::Ordering, collections::BTreeMap, fmt, net::IpAddr};

use ipnet::IpNet;
use thiserror::Error;

pub use self::{
    load::{parse_documents, parse_value},
    support::unsupported,
};
use super::selector::Selector;
use crate::model::Labels;

/// The Calico API group and version every resource here carries.
pub const API_VERSION: &str = "projectcalico.org/v3";

/// The tier a policy without `spec.tier` belongs to.
pub const DEFAULT_TIER: &str = "default";

/// One validated Calico resource.
#[derive(Debug, Clone, PartialEq)]
pub enum CalicoResource {
    GlobalNetworkPolicy(Policy),
    NetworkPolicy(Policy),
    Tier(Tier),
    GlobalNetworkSet(NetworkSet),
    NetworkSet(NetworkSet),
    HostEndpoint(HostEndpoint),
}

impl CalicoResource {
    pub fn kind(&self) -> Kind {
        match self {
            CalicoResource::GlobalNetworkPolicy(_) => Kind::GlobalNetworkPolicy,
            CalicoResource::NetworkPolicy(_) => Kind::NetworkPolicy,
            CalicoResource::Tier(_) => Kind::Tier,
            CalicoResource::GlobalNetworkSet(_) => Kind::GlobalNetworkSet,
            CalicoResource::NetworkSet(_) => Kind::NetworkSet,
            CalicoResource::HostEndpoint(_) => Kind::HostEndpoint,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            CalicoResource::GlobalNetworkPolicy(p) | CalicoResource::NetworkPolicy(p) => &p.name,
            CalicoResource::Tier(t) => &t.name,
            CalicoResource::GlobalNetworkSet(s) | CalicoResource::NetworkSet(s) => &s.name,
            CalicoResource::HostEndpoint(h) => &h.name,
        }
    }

    /// The namespace of a namespaced resource.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            CalicoResource::NetworkPolicy(p) => p.namespace.as_deref(),
            CalicoResource::NetworkSet(s) => s.namespace.as_deref(),
            _ => None,
        }
    }
}

/// The kinds this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    GlobalNetworkPolicy,
    NetworkPolicy,
    Tier,
    GlobalNetworkSet,
    NetworkSet,
    HostEndpoint,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::GlobalNetworkPolicy,
        Kind::NetworkPolicy,
        Kind::Tier,
        Kind::GlobalNetworkSet,
        Kind::NetworkSet,
        Kind::HostEndpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Tier => "Tier",
            Kind::GlobalNetworkSet => "GlobalNetworkSet",
            Kind::NetworkSet => "NetworkSet",
            Kind::HostEndpoint => "HostEndpoint",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn is_namespaced(self) -> bool {
        matches!(self, Kind::NetworkPolicy | Kind::NetworkSet)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A GlobalNetworkPolicy (`namespace` None) or a namespaced Calico NetworkPolicy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// The policy's namespace; None for a GlobalNetworkPolicy.
    pub namespace: Option<String>,
    /// `spec.tier`, `default` when omitted.
    pub tier: String,
    /// `spec.order`; None (omitted) sorts after every number. See [`Policy::cmp_order`].
    pub order: Option<f64>,
    /// `spec.selector`; omitted or empty is `all()`.
    pub selector: Selector,
    /// `spec.namespaceSelector` (GlobalNetworkPolicy only); None when omitted or empty.
    pub namespace_selector: Option<Selector>,
    /// `spec.serviceAccountSelector`; None when omitted or empty.
    pub service_account_selector: Option<Selector>,
    /// `spec.types`, defaulted from the rules present when omitted.
    pub types: PolicyTypes,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    /// GlobalNetworkPolicy only; always false for a NetworkPolicy.
    pub do_not_track: bool,
    pub pre_dnat: bool,
    pub apply_on_forward: bool,
}

impl Policy {
    /// Calico's order within a tier: by `order` (omitted last), then by name.
    pub fn cmp_order(&self, other: &Policy) -> Ordering {
        cmp_optional_order(self.order, other.order).then_with(|| self.name.cmp(&other.name))
    }
}

/// Orders `order` fields: numbers ascending, omitted after every number.
pub fn cmp_optional_order(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The directions a policy applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyTypes {
    pub ingress: bool,
    pub egress: bool,
}

/// One ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub ip_version: Option<IpVersion>,
    pub protocol: Option<Protocol>,
    pub not_protocol: Option<Protocol>,
    pub icmp: Option<IcmpMatch>,
    pub not_icmp: Option<IcmpMatch>,
    pub source: EntityRule,
    pub destination: EntityRule,
    /// `metadata.annotations` of the rule, kept for explanations.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
    /// Record the packet and go on to the next rule.
    Log,
    /// Skip the rest of this tier: go to the next tier that has a policy for the endpoint.
    Pass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    V4,
    V6,
}

/// An IP protocol number; Calico's names map to their numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Protocol(pub u8);

impl Protocol {
    pub const ICMP: Protocol = Protocol(1);
    pub const TCP: Protocol = Protocol(6);
    pub const UDP: Protocol = Protocol(17);
    pub const ICMPV6: Protocol = Protocol(58);
    pub const SCTP: Protocol = Protocol(132);
    pub const UDPLITE: Protocol = Protocol(136);

    /// Calico's names, as its validator spells them.
    pub const NAMES: [(&'static str, Protocol); 6] = [
        ("TCP", Protocol::TCP),
        ("UDP", Protocol::UDP),
        ("ICMP", Protocol::ICMP),
        ("ICMPv6", Protocol::ICMPV6),
        ("SCTP", Protocol::SCTP),
        ("UDPLite", Protocol::UDPLITE),
    ];

    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::NAMES
            .into_iter()
            .find_map(|(n, p)| (n == name).then_some(p))
    }

    /// Whether rules with this protocol may match ports.
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Protocol::TCP | Protocol::UDP | Protocol::SCTP | Protocol::UDPLITE
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Protocol::NAMES.into_iter().find(|(_, p)| p == self) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `icmp`/`notICMP`: a type (0..=254) and a code (0..=255) that needs the type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IcmpMatch {
    pub icmp_type: Option<u8>,
    /// Only ever set together with `icmp_type`.
    pub code: Option<u8>,
}

/// `source` or `destination` of a rule. Empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityRule {
    pub nets: Vec<IpNet>,
    pub not_nets: Vec<IpNet>,
    /// None when omitted or empty: then the rule does not restrict to Calico endpoints.
    pub selector: Option<Selector>,
    pub not_selector: Option<Selector>,
    /// May be exactly `global()`: the non-namespaced network sets and host endpoints.
    pub namespace_selector: Option<Selector>,
    pub ports: Vec<PortMatch>,
    pub not_ports: Vec<PortMatch>,
    pub service_accounts: Option<ServiceAccountMatch>,
    /// `services`: the endpoints of a Kubernetes Service. Validation allows it only on the
    /// peer side (an ingress rule's `source`, an egress rule's `destination`), alone on its
    /// side but for `ports`/`notPorts` of a `source`.
    pub services: Option<ServiceMatch>,
}

/// `services`: a Service by name. The addresses of the endpoints in the EndpointSlices
/// labelled `kubernetes.io/service-name: <name>` in `namespace` (Felix's service index); as a
/// `destination`, together with each slice's ports (number and protocol).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceMatch {
    pub name: String,
    /// As written, or the policy's own namespace for a namespaced NetworkPolicy that leaves
    /// it out (a GlobalNetworkPolicy must give it).
    pub namespace: String,
}

/// A port, a range of ports, or a port named on the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortMatch {
    /// `first..=last`; a single port has `first == last`.
    Range {
        first: u16,
        last: u16,
    },
    Named(String),
}

/// `serviceAccounts`: by name (any of `names`) and/or by the account's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceAccountMatch {
    pub names: Vec<String>,
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: String,
    /// None (omitted) sorts after every number.
    pub order: Option<f64>,
    /// What happens to traffic that the tier's policies select but do not decide.
    pub default_action: TierAction,
}

impl Tier {
    /// Calico's order of tiers: by `order` (omitted last), then by name.
    pub fn cmp_order(&self, other: &Tier) -> Ordering {
        cmp_optional_order(self.order, other.order).then_with(|| self.name.cmp(&other.name))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TierAction {
    #[default]
    Deny,
    Pass,
}

/// A GlobalNetworkSet (`namespace` None) or a namespaced NetworkSet: labelled CIDRs that
/// selectors in rules can match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSet {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: Labels,
    pub nets: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    pub name: String,
    pub labels: Labels,
    pub node: String,
    /// `*` means every interface of the node.
    pub interface_name: Option<String>,
    pub expected_ips: Vec<IpAddr>,
    pub ports: Vec<EndpointPort>,
    pub profiles: Vec<String>,
}

/// A named port of a host endpoint, for named-port matches in rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointPort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// Which resource an error is about, as far as the document tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRef {
    /// `kind` as written (may be missing or unknown).
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_deref().unwrap_or("(no kind)"))?;
        f.write_str(" ")?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{namespace}/")?;
        }
        f.write_str(self.name.as_deref().unwrap_or("(no name)"))
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path from the resource's root: `spec.ingress[2].source.selector`; empty for the
    /// document as a whole.
    pub field: String,
    pub message: String,
    /// For a selector that does not parse: the byte offset in the selector.
    pub position: Option<usize>,
}

/// A resource that was rejected, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ResourceError {
    /// Position of the YAML document in the file, from 1, counting non-empty documents.
    pub document: usize,
    /// Line of the file where that document starts, from 1.
    pub line: usize,
    /// Position in a `kind: List` document's `items`, from 0.
    pub item: Option<usize>,
    pub resource: ResourceRef,
    pub errors: Vec<FieldError>,
}

impl ResourceError {
    /// What a datastore reports: the first problem's field (none for the document as a
    /// whole), and every problem's message with its selector position.
    pub fn field_and_message(&self) -> (Option<String>, String) {
        let field = self
            .errors
            .first()
            .map(|f| f.field.clone())
            .filter(|f| !f.is_empty());
        let message = self
            .errors
            .iter()
            .map(|f| match f.position {
                Some(at) => format!("{} (at {at})", f.message),
                None => f.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        (field, message)
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {} (line {})", self.document, self.line)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        write!(f, ": {}: ", self.resource)?;
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if error.field.is_empty() {
                f.write_str(&error.message)?;
            } else {
                write!(f, "{error}")?;
            }
        }
        Ok(())
    }
}
