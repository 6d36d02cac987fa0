//! Ordered tables: Calico's tiers, policy order, Allow, Deny, Pass and Log, resolved at
//! compile time into complete per-identity verdicts.
//!
//! An endpoint direction that some Calico policy applies to (or any policy, when the `default`
//! tier passes) gets one ordered table instead of the merged allow-only table of Kubernetes
//! policies. Its content ([`OrderedContent`], built by [`build`]) is the list of tiers that
//! apply to the endpoint, their policies in order (Kubernetes NetworkPolicies among them, in
//! tier `default` at order 1000, as Calico places them) and their rules, with everything about
//! the endpoint's own side of each rule already decided.
//!
//! Its entries ([`cells`]) are computed per peer identity: for the peer a pod identity or a
//! CIDR class stands for, the verdict of every (protocol, port) is worked out by walking the
//! tiers exactly as Calico does, and written as an `ANY`-protocol entry, protocol entries and
//! port prefixes (only where they differ from the wider entry); a table whose rules match
//! source ports first sorts source ports into classes ([`source_ports::SourceClasses`]) and has
//! protocol and port entries per class. An identity whose verdicts
//! all equal those of the table's `ANY` entries (an unknown peer) gets no entries. The
//! datapath makes one lookup per ordered table (`lookup::ORDERED`, then `ANY`), whatever the
//! number of tiers, policies and rules.
//!
//! The semantics follow the Calico reference model in `tests/src/calico_reference/` (which
//! says where each choice comes from); this module shares no code with it, and the
//! `compiler_vs_calico_model` property test holds the two to the same verdicts.

mod build;
pub mod cells;
mod owners;
mod port_lists;
pub mod service_match;
pub mod source_ports;

pub use self::{
    build::{build, build_always, build_host},
    owners::CalicoContext,
};

use std::fmt;

use ipnet::IpNet;

use super::policy_name::PolicyName;
use crate::{
    calico::{
        resources::{Action, TierAction},
        selector::Selector,
    },
    model::{LabelSelector, NamespaceMatch},
};

/// The `rule_ref`s that name no rule, shared with the datapath (which tells a tier's default
/// deny from a Deny rule).
pub use policy_common::rule::{PROFILE_RULE_REF, TIER_DEFAULT_RULE};

/// The rules of one endpoint direction, in Calico's evaluation order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderedContent {
    pub tiers: Vec<OrderedTier>,
    /// The verdict when no tier decides (none applies, or the last passed): a pod's profile
    /// allows, a host endpoint's denies.
    pub profile_allows: bool,
}

impl OrderedContent {
    /// The policies in evaluation order: `rule_ref >> 16` indexes this list.
    pub fn policy_names(&self) -> Vec<PolicyName> {
        self.tiers
            .iter()
            .flat_map(|tier| tier.policies.iter().map(|p| p.name.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderedTier {
    pub name: String,
    pub default_action: TierAction,
    pub policies: Vec<OrderedPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderedPolicy {
    pub name: PolicyName,
    pub rules: Vec<OrderedRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderedRule {
    pub action: Action,
    /// The rule's index in its policy's `ingress`/`egress` list.
    pub index: u16,
    pub matcher: Matcher,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Matcher {
    Calico(Box<CalicoMatch>),
    Kubernetes(KubernetesMatch),
}

/// A Calico rule with its endpoint side decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CalicoMatch {
    /// Whether the rule's `ipVersion` and its endpoint-side fields (`destination` of an
    /// ingress rule, `source` of an egress rule: nets, selectors) hold for the endpoint's
    /// IPv4 and its IPv6 address.
    pub local_ok: [bool; 2],
    pub protocol: Option<u8>,
    pub not_protocol: Option<u8>,
    /// `icmp` and `notICMP` with a type: (type, code).
    pub icmp: Option<(u8, Option<u8>)>,
    pub not_icmp: Option<(u8, Option<u8>)>,
    /// The peer side: `source` of an ingress rule, `destination` of an egress rule.
    pub peer: PeerEntity,
    /// Destination ports: `None` when the rule sets none; `Some(vec![])` matches nothing (a
    /// named port the endpoint does not have).
    pub ports: Option<Vec<PortRule>>,
    pub not_ports: Option<Vec<PortRule>>,
    /// Source ports (`source.ports`/`source.notPorts`), the same way: the endpoint's own for
    /// egress (named ports resolved on it); only numbers and ranges for ingress (a peer's
    /// named source port is refused by the datastores).
    pub source_ports: Option<Vec<PortRule>>,
    pub not_source_ports: Option<Vec<PortRule>>,
}

/// The entity fields of a rule's peer side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerEntity {
    /// `nets` with their block numbers; empty: no constraint.
    pub nets: Vec<(IpNet, usize)>,
    pub not_nets: Vec<(IpNet, usize)>,
    pub selector: Option<Selector>,
    pub not_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    /// `serviceAccounts` when it sets names or a selector.
    pub service_accounts: Option<ServiceAccounts>,
    /// The namespace of a namespaced policy (Calico or Kubernetes-derived).
    pub policy_namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccounts {
    pub names: Vec<String>,
    pub selector: Option<Selector>,
}

/// One entry of `ports`/`notPorts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRule {
    /// A number or range, for any protocol with ports.
    Range { first: u16, last: u16 },
    /// A named port resolved on the endpoint (ingress): this protocol, this number.
    Exact { protocol: u8, port: u16 },
    /// A named port of the peer pod (egress), resolved per pod identity.
    PeerNamed(String),
}

/// A Kubernetes NetworkPolicy rule (always Allow) with ingress named ports resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubernetesMatch {
    /// `None`: every peer.
    pub peers: Option<Vec<KubernetesPeer>>,
    /// `None`: every port and protocol.
    pub ports: Option<Vec<KubernetesPort>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KubernetesPeer {
    Pods {
        namespaces: NamespaceMatch,
        pods: LabelSelector,
    },
    /// An `ipBlock`, by block number.
    Block(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KubernetesPort {
    Range {
        protocol: u8,
        first: u16,
        last: u16,
    },
    /// An egress named port of the peer pod.
    PeerNamed {
        protocol: u8,
        name: String,
    },
}

/// A verdict as ordered tables store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub allow: bool,
    pub rule_ref: u32,
    /// A `Log` rule matched on the way to the verdict: the datapath writes a flow event.
    pub log: bool,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = if self.allow { "allow" } else { "deny" };
        write!(f, "{action} ({:#x})", self.rule_ref)
    }
}
