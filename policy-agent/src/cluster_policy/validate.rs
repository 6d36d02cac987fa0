//! The CRDs' validation, as the API server applies their OpenAPI schemas and CEL rules, into
//! the one [`ClusterPolicy`] type. Every error names the field (`spec.ingress[2].from[0].pods`).

use std::str::FromStr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::{Deserializer, de::DeserializeOwned};

use super::{
    ApiKind, ClusterPeer, ClusterPolicy, ClusterPolicyError, ClusterPort, ClusterRule, PolicyTier,
    RuleAction, Subject, raw,
};
use crate::model::{LabelSelector, Protocol, convert};
use crate::serde_field;

/// Limits of the two API versions' schemas.
struct Limits {
    /// `ingress`, `egress` (each).
    rules: usize,
    /// `from`, `to`, `ports`/`protocols` (each).
    items: usize,
}

const V1ALPHA2: Limits = Limits {
    rules: 25,
    items: 25,
};
const V1ALPHA1: Limits = Limits {
    rules: 100,
    items: 100,
};
/// `name` of a rule.
const RULE_NAME_MAX: usize = 100;
/// `networks` of one peer, in both versions.
const NETWORKS_MAX: usize = 25;
/// `CIDR`'s `MaxLength`.
const CIDR_MAX_LEN: usize = 43;
const PRIORITY_MAX: i64 = 1000;
/// Label keys Calico sets itself on the namespaces and pods its selectors see.
const CALICO_LABEL_PREFIX: &str = "projectcalico.org/";
const RESERVED_KEY: &str = "label keys under projectcalico.org/ are not supported: Calico's automatic labels (which this agent's selectors see) replace the objects' own";

/// The only name a BaselineAdminNetworkPolicy may have.
pub const BASELINE_SINGLETON: &str = "default";

fn error(field: impl Into<String>, message: impl Into<String>) -> ClusterPolicyError {
    ClusterPolicyError {
        field: field.into(),
        message: message.into(),
    }
}

/// Reads one object of `kind` (its `apiVersion` and `kind` already matched) from a YAML or JSON
/// value and validates it.
pub fn parse_value<'de, D: Deserializer<'de>>(
    kind: ApiKind,
    document: D,
) -> Result<ClusterPolicy, ClusterPolicyError> {
    match kind {
        ApiKind::ClusterNetworkPolicy => {
            let object: raw::Object<raw::ClusterNetworkPolicySpec> = typed(document)?;
            same_kind(kind, &object.api_version, &object.kind)?;
            let name = object_name(&object.metadata)?;
            let spec = object.spec.ok_or_else(|| error("spec", "required"))?;
            cluster_network_policy(name, spec)
        }
        ApiKind::AdminNetworkPolicy | ApiKind::BaselineAdminNetworkPolicy => {
            let object: raw::Object<raw::AdminNetworkPolicySpec> = typed(document)?;
            same_kind(kind, &object.api_version, &object.kind)?;
            let name = object_name(&object.metadata)?;
            let spec = object.spec.ok_or_else(|| error("spec", "required"))?;
            admin_network_policy(kind, name, spec)
        }
    }
}

fn typed<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    document: D,
) -> Result<T, ClusterPolicyError> {
    serde_field::deserialize(document).map_err(|e| error(e.field, e.message))
}

/// The document is of the kind its reader expected (a caller chooses by these fields).
fn same_kind(kind: ApiKind, api_version: &str, written: &str) -> Result<(), ClusterPolicyError> {
    if api_version != kind.api_version() {
        return Err(error(
            "apiVersion",
            format!("{api_version:?}: expected {:?}", kind.api_version()),
        ));
    }
    if written != kind.as_str() {
        return Err(error("kind", format!("{written:?}: expected {kind:?}")));
    }
    Ok(())
}

fn object_name(metadata: &meta::ObjectMeta) -> Result<String, ClusterPolicyError> {
    match metadata.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => Err(error("metadata.name", "required")),
    }
}

fn cluster_network_policy(
    name: String,
    spec: raw::ClusterNetworkPolicySpec,
) -> Result<ClusterPolicy, ClusterPolicyError> {
    let tier = match spec.tier.as_deref() {
        Some("Admin") => PolicyTier::Admin,
        Some("Baseline") => PolicyTier::Baseline,
        Some(other) => {
            return Err(error(
                "spec.tier",
                format!("unsupported value {other:?}: expected \"Admin\" or \"Baseline\""),
            ));
        }
        None => return Err(error("spec.tier", "required")),
    };
    let priority = priority(spec.priority)?;
    let subject = subject(spec.subject, Version::V1alpha2)?;
    let ingress = rule_list(
        spec.ingress,
        "spec.ingress",
        &V1ALPHA2,
        Version::V1alpha2,
        cnp_action,
    )?;
    let egress = rule_list(
        spec.egress,
        "spec.egress",
        &V1ALPHA2,
        Version::V1alpha2,
        cnp_action,
    )?;
    Ok(ClusterPolicy {
        kind: ApiKind::ClusterNetworkPolicy,
        name,
        tier,
        priority,
        subject,
        ingress,
        egress,
    })
}

fn admin_network_policy(
    kind: ApiKind,
    name: String,
    spec: raw::AdminNetworkPolicySpec,
) -> Result<ClusterPolicy, ClusterPolicyError> {
    let baseline = kind == ApiKind::BaselineAdminNetworkPolicy;
    let priority = if baseline {
        if name != BASELINE_SINGLETON {
            return Err(error(
                "metadata.name",
                format!(
                    "{name:?}: only one baseline admin network policy with metadata.name=\"default\" can be created in the cluster"
                ),
            ));
        }
        if spec.priority.is_some() {
            return Err(error(
                "spec.priority",
                "unknown field: a BaselineAdminNetworkPolicy has no priority",
            ));
        }
        0
    } else {
        priority(spec.priority)?
    };
    let action = |value: Option<&str>, at: &str| -> Result<RuleAction, ClusterPolicyError> {
        let field = format!("{at}.action");
        match (value, baseline) {
            (Some("Allow"), _) => Ok(RuleAction::Accept),
            (Some("Deny"), _) => Ok(RuleAction::Deny),
            (Some("Pass"), false) => Ok(RuleAction::Pass),
            (Some(other), _) => Err(error(
                field,
                format!(
                    "unsupported value {other:?}: expected {}",
                    if baseline {
                        "\"Allow\" or \"Deny\""
                    } else {
                        "\"Allow\", \"Deny\" or \"Pass\""
                    }
                ),
            )),
            (None, _) => Err(error(field, "required")),
        }
    };
    let subject = subject(spec.subject, Version::V1alpha1)?;
    let ingress = rule_list(
        spec.ingress,
        "spec.ingress",
        &V1ALPHA1,
        Version::V1alpha1,
        action,
    )?;
    let egress = rule_list(
        spec.egress,
        "spec.egress",
        &V1ALPHA1,
        Version::V1alpha1,
        action,
    )?;
    Ok(ClusterPolicy {
        kind,
        name,
        tier: if baseline {
            PolicyTier::Baseline
        } else {
            PolicyTier::Admin
        },
        priority,
        subject,
        ingress,
        egress,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1alpha1,
    V1alpha2,
}

fn priority(value: Option<i64>) -> Result<u32, ClusterPolicyError> {
    match value {
        None => Err(error("spec.priority", "required")),
        Some(p) if (0..=PRIORITY_MAX).contains(&p) => Ok(p as u32),
        Some(p) => Err(error(
            "spec.priority",
            format!("{p} is out of range: must be between 0 and {PRIORITY_MAX}"),
        )),
    }
}

fn rules_list<T>(
    rules: Option<Vec<T>>,
    field: &str,
    max: usize,
) -> Result<Vec<T>, ClusterPolicyError> {
    let rules = rules.unwrap_or_default();
    if rules.len() > max {
        return Err(error(
            field,
            format!("{} rules: at most {max} are allowed", rules.len()),
        ));
    }
    Ok(rules)
}

/// What every written rule is made of, whichever API and direction it comes from: the
/// four rule types differ only in their peers' field (`from`, `to`) and their ports' shape.
struct RuleParts {
    name: Option<String>,
    action: Option<String>,
    peers: Peers,
    ports: Ports,
}

enum Peers {
    /// `from` of an ingress rule.
    From(Option<Vec<raw::IngressPeer>>),
    /// `to` of an egress rule.
    To(Option<Vec<raw::EgressPeer>>),
}

enum Ports {
    /// A ClusterNetworkPolicy's `protocols`.
    Protocols(Option<Vec<raw::CnpProtocol>>),
    /// An (Baseline)AdminNetworkPolicy's `ports`.
    Ports(Option<Vec<raw::AnpPort>>),
}

impl From<raw::CnpIngressRule> for RuleParts {
    fn from(rule: raw::CnpIngressRule) -> Self {
        RuleParts {
            name: rule.name,
            action: rule.action,
            peers: Peers::From(rule.from),
            ports: Ports::Protocols(rule.protocols),
        }
    }
}

impl From<raw::CnpEgressRule> for RuleParts {
    fn from(rule: raw::CnpEgressRule) -> Self {
        RuleParts {
            name: rule.name,
            action: rule.action,
            peers: Peers::To(rule.to),
            ports: Ports::Protocols(rule.protocols),
        }
    }
}

impl From<raw::AnpIngressRule> for RuleParts {
    fn from(rule: raw::AnpIngressRule) -> Self {
        RuleParts {
            name: rule.name,
            action: rule.action,
            peers: Peers::From(rule.from),
            ports: Ports::Ports(rule.ports),
        }
    }
}

impl From<raw::AnpEgressRule> for RuleParts {
    fn from(rule: raw::AnpEgressRule) -> Self {
        RuleParts {
            name: rule.name,
            action: rule.action,
            peers: Peers::To(rule.to),
            ports: Ports::Ports(rule.ports),
        }
    }
}

/// The rules of `field` (`spec.ingress`, `spec.egress`), checked in one order for every API
/// and direction (action, peers, ports, the named-port rule, name), so that the first error
/// reported is the same whichever of them a rule comes from. `action` reads the API's own
/// actions.
fn rule_list<R: Into<RuleParts>>(
    rules: Option<Vec<R>>,
    field: &str,
    limits: &Limits,
    version: Version,
    action: impl Fn(Option<&str>, &str) -> Result<RuleAction, ClusterPolicyError>,
) -> Result<Vec<ClusterRule>, ClusterPolicyError> {
    rules_list(rules, field, limits.rules)?
        .into_iter()
        .enumerate()
        .map(|(i, rule)| {
            let rule: RuleParts = rule.into();
            let at = format!("{field}[{i}]");
            let action = action(rule.action.as_deref(), &at)?;
            let peers = match rule.peers {
                Peers::From(from) => ingress_peers(from, &at, limits, version)?,
                Peers::To(to) => egress_peers(to, &at, limits, version)?,
            };
            let (ports, ports_field) = match rule.ports {
                Ports::Protocols(protocols) => (cnp_protocols(protocols, &at)?, "protocols"),
                Ports::Ports(ports) => (anp_ports(ports, &at)?, "ports"),
            };
            // Ingress peers are never `networks`: this holds for them by construction.
            named_ports_need_pods(&peers, ports.as_deref(), &at, ports_field)?;
            Ok(ClusterRule {
                name: rule_name(rule.name, &at)?,
                action,
                peers,
                ports,
            })
        })
        .collect()
}

fn rule_name(name: Option<String>, at: &str) -> Result<String, ClusterPolicyError> {
    let name = name.unwrap_or_default();
    if name.chars().count() > RULE_NAME_MAX {
        return Err(error(
            format!("{at}.name"),
            format!("longer than {RULE_NAME_MAX} characters"),
        ));
    }
    Ok(name)
}

fn cnp_action(value: Option<&str>, at: &str) -> Result<RuleAction, ClusterPolicyError> {
    let field = format!("{at}.action");
    match value {
        Some("Accept") => Ok(RuleAction::Accept),
        Some("Deny") => Ok(RuleAction::Deny),
        Some("Pass") => Ok(RuleAction::Pass),
        Some(other) => Err(error(
            field,
            format!("unsupported value {other:?}: expected \"Accept\", \"Deny\" or \"Pass\""),
        )),
        None => Err(error(field, "required")),
    }
}

fn subject(subject: Option<raw::Subject>, version: Version) -> Result<Subject, ClusterPolicyError> {
    let subject = subject.ok_or_else(|| error("spec.subject", "required"))?;
    match (subject.namespaces, subject.pods) {
        (Some(namespaces), None) => Ok(Subject::Namespaces(selector(
            namespaces,
            "spec.subject.namespaces",
        )?)),
        (None, Some(pods)) => {
            let (namespaces, pods) = namespaced_pod(pods, "spec.subject.pods", version)?;
            Ok(Subject::Pods { namespaces, pods })
        }
        _ => Err(error(
            "spec.subject",
            "exactly one of namespaces or pods must be set",
        )),
    }
}

fn namespaced_pod(
    pods: raw::NamespacedPod,
    at: &str,
    version: Version,
) -> Result<(LabelSelector, LabelSelector), ClusterPolicyError> {
    // v1alpha2 made `namespaceSelector` optional (all namespaces); v1alpha1 requires it.
    let namespaces = match (pods.namespace_selector, version) {
        (Some(s), _) => selector(s, &format!("{at}.namespaceSelector"))?,
        (None, Version::V1alpha2) => LabelSelector::default(),
        (None, Version::V1alpha1) => {
            return Err(error(format!("{at}.namespaceSelector"), "required"));
        }
    };
    let pod_selector = pods
        .pod_selector
        .ok_or_else(|| error(format!("{at}.podSelector"), "required"))?;
    let pods = selector(pod_selector, &format!("{at}.podSelector"))?;
    Ok((namespaces, pods))
}

fn selector(raw: raw::LabelSelector, field: &str) -> Result<LabelSelector, ClusterPolicyError> {
    for (name, present) in [
        ("sameLabels", raw.same_labels.is_some()),
        ("notSameLabels", raw.not_same_labels.is_some()),
    ] {
        if present {
            return Err(error(
                format!("{field}.{name}"),
                format!(
                    "{name} is not supported (a withdrawn v1alpha1 draft; network-policy-api v0.1.8 has no such field)"
                ),
            ));
        }
    }
    // The compiler judges these selectors on the labels Calico's selectors see, where Calico
    // sets its automatic labels (`projectcalico.org/name` on namespaces; `/namespace`,
    // `/orchestrator`, `/serviceaccount` on pods) over the objects' own: a selector on those
    // keys would select other pods than the API says. Refused rather than enforced wrongly.
    let reserved = |key: &str| key.starts_with(CALICO_LABEL_PREFIX);
    if let Some(key) = raw
        .match_labels
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| reserved(k))
    {
        return Err(error(
            format!("{field}.matchLabels"),
            format!("{key:?}: {RESERVED_KEY}"),
        ));
    }
    if let Some(i) = raw
        .match_expressions
        .iter()
        .flatten()
        .position(|e| reserved(&e.key))
    {
        return Err(error(
            format!("{field}.matchExpressions[{i}].key"),
            RESERVED_KEY.to_owned(),
        ));
    }
    let selector = meta::LabelSelector {
        match_labels: raw.match_labels,
        match_expressions: raw.match_expressions.map(|exprs| {
            exprs
                .into_iter()
                .map(|e| meta::LabelSelectorRequirement {
                    key: e.key,
                    operator: e.operator,
                    values: e.values,
                })
                .collect()
        }),
    };
    convert::label_selector(Some(&selector), field).map_err(|e| error(e.field, e.message))
}

fn peer_list<T>(
    peers: Option<Vec<T>>,
    field: &str,
    limits: &Limits,
) -> Result<Vec<T>, ClusterPolicyError> {
    let peers = peers.ok_or_else(|| error(field, "required"))?;
    if peers.is_empty() || peers.len() > limits.items {
        return Err(error(
            field,
            format!(
                "{} peers: between 1 and {} are required",
                peers.len(),
                limits.items
            ),
        ));
    }
    Ok(peers)
}

fn ingress_peers(
    from: Option<Vec<raw::IngressPeer>>,
    at: &str,
    limits: &Limits,
    version: Version,
) -> Result<Vec<ClusterPeer>, ClusterPolicyError> {
    let field = format!("{at}.from");
    peer_list(from, &field, limits)?
        .into_iter()
        .enumerate()
        .map(|(j, peer)| {
            let at = format!("{field}[{j}]");
            match (peer.namespaces, peer.pods) {
                (Some(namespaces), None) => Ok(ClusterPeer::Namespaces(selector(
                    namespaces,
                    &format!("{at}.namespaces"),
                )?)),
                (None, Some(pods)) => {
                    let (namespaces, pods) = namespaced_pod(pods, &format!("{at}.pods"), version)?;
                    Ok(ClusterPeer::Pods { namespaces, pods })
                }
                _ => Err(error(at, "exactly one of namespaces or pods must be set")),
            }
        })
        .collect()
}

fn egress_peers(
    to: Option<Vec<raw::EgressPeer>>,
    at: &str,
    limits: &Limits,
    version: Version,
) -> Result<Vec<ClusterPeer>, ClusterPolicyError> {
    let field = format!("{at}.to");
    peer_list(to, &field, limits)?
        .into_iter()
        .enumerate()
        .map(|(j, peer)| {
            let at = format!("{field}[{j}]");
            let set = [
                peer.namespaces.is_some(),
                peer.pods.is_some(),
                peer.nodes.is_some(),
                peer.networks.is_some(),
                peer.domain_names.is_some(),
            ]
            .into_iter()
            .filter(|set| *set)
            .count();
            if set != 1 {
                return Err(error(
                    at,
                    "exactly one of namespaces, pods, nodes, networks or domainNames must be set",
                ));
            }
            if peer.nodes.is_some() {
                return Err(error(
                    format!("{at}.nodes"),
                    "nodes peers are not supported: this agent does not watch Node objects",
                ));
            }
            if peer.domain_names.is_some() {
                return Err(error(
                    format!("{at}.domainNames"),
                    "domainNames peers are not supported: this agent has no DNS-aware policy",
                ));
            }
            if let Some(namespaces) = peer.namespaces {
                return Ok(ClusterPeer::Namespaces(selector(
                    namespaces,
                    &format!("{at}.namespaces"),
                )?));
            }
            if let Some(pods) = peer.pods {
                let (namespaces, pods) = namespaced_pod(pods, &format!("{at}.pods"), version)?;
                return Ok(ClusterPeer::Pods { namespaces, pods });
            }
            let networks = peer.networks.unwrap_or_default();
            networks_peer(networks, &format!("{at}.networks"))
        })
        .collect()
}

fn networks_peer(networks: Vec<String>, field: &str) -> Result<ClusterPeer, ClusterPolicyError> {
    if networks.is_empty() || networks.len() > NETWORKS_MAX {
        return Err(error(
            field,
            format!(
                "{} networks: between 1 and {NETWORKS_MAX} are required",
                networks.len()
            ),
        ));
    }
    let mut nets = Vec::with_capacity(networks.len());
    for (k, cidr) in networks.iter().enumerate() {
        let at = format!("{field}[{k}]");
        if cidr.len() > CIDR_MAX_LEN {
            return Err(error(at, format!("longer than {CIDR_MAX_LEN} characters")));
        }
        let net = IpNet::from_str(cidr)
            .map_err(|_| error(&at, format!("{cidr:?}: Invalid CIDR format provided")))?;
        if nets.contains(&net.trunc()) {
            // `listType=set`: the API server refuses duplicates.
            return Err(error(at, format!("duplicate value {cidr:?}")));
        }
        nets.push(net.trunc());
    }
    Ok(ClusterPeer::Networks(nets))
}

/// The CRDs' CEL rule: a named port needs a pod to name it.
fn named_ports_need_pods(
    peers: &[ClusterPeer],
    ports: Option<&[ClusterPort]>,
    at: &str,
    ports_field: &str,
) -> Result<(), ClusterPolicyError> {
    let named = ports.is_some_and(|ports| ports.iter().any(|p| matches!(p, ClusterPort::Named(_))));
    let networks = peers.iter().any(|p| matches!(p, ClusterPeer::Networks(_)));
    if named && networks {
        return Err(error(
            format!("{at}.{ports_field}"),
            "networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames",
        ));
    }
    Ok(())
}

fn ports_list<T>(
    ports: Option<Vec<T>>,
    field: &str,
    max: usize,
) -> Result<Option<Vec<T>>, ClusterPolicyError> {
    match ports {
        None => Ok(None),
        Some(ports) if ports.is_empty() || ports.len() > max => Err(error(
            field,
            format!("{} items: between 1 and {max} are required", ports.len()),
        )),
        Some(ports) => Ok(Some(ports)),
    }
}

fn cnp_protocols(
    protocols: Option<Vec<raw::CnpProtocol>>,
    at: &str,
) -> Result<Option<Vec<ClusterPort>>, ClusterPolicyError> {
    let field = format!("{at}.protocols");
    let Some(protocols) = ports_list(protocols, &field, V1ALPHA2.items)? else {
        return Ok(None);
    };
    protocols
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            let at = format!("{field}[{k}]");
            let named = p.destination_named_port.filter(|n| !n.is_empty());
            let set = [
                p.tcp.is_some(),
                p.udp.is_some(),
                p.sctp.is_some(),
                named.is_some(),
            ]
            .into_iter()
            .filter(|set| *set)
            .count();
            if set != 1 {
                return Err(error(
                    at,
                    "exactly one of tcp, udp, sctp or destinationNamedPort must be set",
                ));
            }
            if let Some(name) = named {
                return Ok(ClusterPort::Named(name));
            }
            let (protocol, name, ports) = match (p.tcp, p.udp, p.sctp) {
                (Some(ports), _, _) => (Protocol::Tcp, "tcp", ports),
                (_, Some(ports), _) => (Protocol::Udp, "udp", ports),
                (_, _, Some(ports)) => (Protocol::Sctp, "sctp", ports),
                _ => return Err(error(at, "no protocol")),
            };
            let at = format!("{at}.{name}");
            let port = ports
                .destination_port
                .ok_or_else(|| error(format!("{at}.destinationPort"), "required"))?;
            let at = format!("{at}.destinationPort");
            match (port.number, port.range) {
                (Some(number), None) => {
                    let port = port_number(number, &format!("{at}.number"))?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first: port,
                        last: port,
                    })
                }
                (None, Some(range)) => {
                    let (first, last) = port_range(range.start, range.end, &format!("{at}.range"))?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first,
                        last,
                    })
                }
                _ => Err(error(at, "exactly one of number or range must be set")),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn anp_ports(
    ports: Option<Vec<raw::AnpPort>>,
    at: &str,
) -> Result<Option<Vec<ClusterPort>>, ClusterPolicyError> {
    let field = format!("{at}.ports");
    let Some(ports) = ports_list(ports, &field, V1ALPHA1.items)? else {
        return Ok(None);
    };
    ports
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            let at = format!("{field}[{k}]");
            match (p.port_number, p.named_port, p.port_range) {
                (Some(number), None, None) => {
                    let at = format!("{at}.portNumber");
                    let protocol = protocol(number.protocol.as_deref(), &at)?;
                    let port = number
                        .port
                        .ok_or_else(|| error(format!("{at}.port"), "required"))?;
                    let port = port_number(port, &format!("{at}.port"))?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first: port,
                        last: port,
                    })
                }
                (None, Some(name), None) if !name.is_empty() => Ok(ClusterPort::Named(name)),
                (None, None, Some(range)) => {
                    let at = format!("{at}.portRange");
                    let protocol = protocol(range.protocol.as_deref(), &at)?;
                    let (first, last) = port_range(range.start, range.end, &at)?;
                    Ok(ClusterPort::Range {
                        protocol,
                        first,
                        last,
                    })
                }
                _ => Err(error(
                    at,
                    "exactly one of portNumber, namedPort or portRange must be set",
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `protocol` of a v1alpha1 port: the CRD defaults it to TCP.
fn protocol(value: Option<&str>, at: &str) -> Result<Protocol, ClusterPolicyError> {
    match value {
        None | Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        Some("SCTP") => Ok(Protocol::Sctp),
        Some(other) => Err(error(
            format!("{at}.protocol"),
            format!("unsupported value {other:?}: expected \"TCP\", \"UDP\" or \"SCTP\""),
        )),
    }
}

fn port_number(value: i64, field: &str) -> Result<u16, ClusterPolicyError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| {
            error(
                field,
                format!("{value} is out of range: must be between 1 and 65535"),
            )
        })
}

fn port_range(
    start: Option<i64>,
    end: Option<i64>,
    at: &str,
) -> Result<(u16, u16), ClusterPolicyError> {
    let start = start.ok_or_else(|| error(format!("{at}.start"), "required"))?;
    let end = end.ok_or_else(|| error(format!("{at}.end"), "required"))?;
    let first = port_number(start, &format!("{at}.start"))?;
    let last = port_number(end, &format!("{at}.end"))?;
    if first >= last {
        return Err(error(at, "Start port must be less than End port"));
    }
    Ok((first, last))
}
