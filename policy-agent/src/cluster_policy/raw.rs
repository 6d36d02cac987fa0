//! The network-policy-api YAML, field for field, before validation.
//!
//! Two API versions of the same idea: `v1alpha2` ClusterNetworkPolicy (release v0.2.0) and the
//! `v1alpha1` AdminNetworkPolicy and BaselineAdminNetworkPolicy it replaced (release v0.1.8).
//! Unknown fields are rejected, as the CRDs' structural schemas reject them on a cluster, so a
//! misspelt `protocols` is an error rather than a rule that silently matches every port.
//! Numbers stay `i64` so that [`super::validate`] can say which value is out of range.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// `apiVersion`, `kind`, `metadata`, `spec`; `status` is the implementation's to write and is
/// ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<S>,
    /// Read so that it is not an unknown field; what an implementation reports is its own.
    #[serde(default)]
    #[allow(dead_code)]
    pub status: Option<serde_json::Value>,
}

/// `metav1.LabelSelector`, with the fields of the withdrawn v1alpha1 drafts (`sameLabels`,
/// `notSameLabels`, a nested `namespaceSelector`) read so that they are refused by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
    pub same_labels: Option<serde_json::Value>,
    pub not_same_labels: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    pub values: Option<Vec<String>>,
}

/// `subject` (both versions) and the `namespaces`/`pods` peers: exactly one field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subject {
    pub namespaces: Option<LabelSelector>,
    pub pods: Option<NamespacedPod>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespacedPod {
    pub namespace_selector: Option<LabelSelector>,
    pub pod_selector: Option<LabelSelector>,
}

/// An ingress peer: pods only, in both versions.
pub type IngressPeer = Subject;

/// An egress peer; `nodes` and `domainNames` are the experimental channel's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressPeer {
    pub namespaces: Option<LabelSelector>,
    pub pods: Option<NamespacedPod>,
    pub nodes: Option<LabelSelector>,
    pub networks: Option<Vec<String>>,
    pub domain_names: Option<Vec<String>>,
}

// ---- v1alpha2 ClusterNetworkPolicy ----

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterNetworkPolicySpec {
    pub tier: Option<String>,
    pub priority: Option<i64>,
    pub subject: Option<Subject>,
    pub ingress: Option<Vec<CnpIngressRule>>,
    pub egress: Option<Vec<CnpEgressRule>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CnpIngressRule {
    pub name: Option<String>,
    pub action: Option<String>,
    pub from: Option<Vec<IngressPeer>>,
    pub protocols: Option<Vec<CnpProtocol>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CnpEgressRule {
    pub name: Option<String>,
    pub action: Option<String>,
    pub to: Option<Vec<EgressPeer>>,
    pub protocols: Option<Vec<CnpProtocol>>,
}

/// One of `tcp`, `udp`, `sctp`, `destinationNamedPort`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CnpProtocol {
    pub tcp: Option<CnpProtocolPorts>,
    pub udp: Option<CnpProtocolPorts>,
    pub sctp: Option<CnpProtocolPorts>,
    pub destination_named_port: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CnpProtocolPorts {
    pub destination_port: Option<CnpPort>,
}

/// `number` or `range`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CnpPort {
    pub number: Option<i64>,
    pub range: Option<CnpPortRange>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CnpPortRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

// ---- v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy ----

/// Both kinds: a BaselineAdminNetworkPolicy has no `priority` (validation refuses one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminNetworkPolicySpec {
    pub priority: Option<i64>,
    pub subject: Option<Subject>,
    pub ingress: Option<Vec<AnpIngressRule>>,
    pub egress: Option<Vec<AnpEgressRule>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnpIngressRule {
    pub name: Option<String>,
    pub action: Option<String>,
    pub from: Option<Vec<IngressPeer>>,
    pub ports: Option<Vec<AnpPort>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnpEgressRule {
    pub name: Option<String>,
    pub action: Option<String>,
    pub to: Option<Vec<EgressPeer>>,
    pub ports: Option<Vec<AnpPort>>,
}

/// One of `portNumber`, `namedPort`, `portRange`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnpPort {
    pub port_number: Option<AnpPortNumber>,
    pub named_port: Option<String>,
    pub port_range: Option<AnpPortRange>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnpPortNumber {
    /// Defaults to TCP in the CRD.
    pub protocol: Option<String>,
    pub port: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnpPortRange {
    pub protocol: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}
