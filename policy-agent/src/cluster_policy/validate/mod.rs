//! The CRDs' validation, as the API server applies their OpenAPI schemas and CEL rules, into
//! the one [`ClusterPolicy`] type. Every error names the field (`spec.ingress[2].from[0].pods`).
//!
//! Here the objects and their rules; a rule's peers in [`peers`], its ports in [`ports`].

mod peers;
mod ports;
mod schema;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::{Deserializer, de::DeserializeOwned};

use self::peers::{egress_peers, ingress_peers, namespaced_pod, selector};
use self::ports::{anp_ports, cnp_protocols, named_ports_need_pods};
use self::schema::{Limits, PRIORITY_MAX, RULE_NAME_MAX, V1ALPHA1, V1ALPHA2, Version, error};
use super::{
    ApiKind, ClusterPolicy, ClusterPolicyError, ClusterRule, PolicyTier, RuleAction, Subject, raw,
};
use crate::serde_field;

/// The only name a BaselineAdminNetworkPolicy may have.
pub const BASELINE_SINGLETON: &str = "default";

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
