//! Calico's YAML, field for field, before validation.
//!
//! Field names are Calico's JSON names (camelCase, with its `notICMP`, `preDNAT` and
//! `expectedIPs` spellings). Unknown fields are rejected as Calico's CRD schema rejects them,
//! so a misspelt `notPorts` is an error rather than a rule that silently matches more. Values
//! stay loosely typed (strings, numbers) where Calico accepts several forms: [`super::validate`]
//! checks them and says what was wrong.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};

/// Any of the resources: `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<S>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalNetworkPolicySpec {
    pub tier: Option<String>,
    pub order: Option<f64>,
    pub selector: Option<String>,
    pub namespace_selector: Option<String>,
    pub service_account_selector: Option<String>,
    pub types: Option<Vec<String>>,
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
    pub do_not_track: Option<bool>,
    #[serde(rename = "preDNAT")]
    pub pre_dnat: Option<bool>,
    pub apply_on_forward: Option<bool>,
}

/// The namespaced NetworkPolicy has no `namespaceSelector`, `doNotTrack`, `preDNAT` or
/// `applyOnForward`: Calico's schema does not know them there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    pub tier: Option<String>,
    pub order: Option<f64>,
    pub selector: Option<String>,
    pub service_account_selector: Option<String>,
    pub types: Option<Vec<String>>,
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

impl From<NetworkPolicySpec> for GlobalNetworkPolicySpec {
    fn from(spec: NetworkPolicySpec) -> Self {
        GlobalNetworkPolicySpec {
            tier: spec.tier,
            order: spec.order,
            selector: spec.selector,
            namespace_selector: None,
            service_account_selector: spec.service_account_selector,
            types: spec.types,
            ingress: spec.ingress,
            egress: spec.egress,
            do_not_track: None,
            pre_dnat: None,
            apply_on_forward: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub action: Option<String>,
    pub ip_version: Option<i64>,
    pub protocol: Option<IntOrString>,
    pub not_protocol: Option<IntOrString>,
    pub icmp: Option<IcmpFields>,
    #[serde(rename = "notICMP")]
    pub not_icmp: Option<IcmpFields>,
    pub source: Option<EntityRule>,
    pub destination: Option<EntityRule>,
    /// Application-layer (Istio) matches: accepted by the schema, refused by validation.
    pub http: Option<serde_yaml::Value>,
    pub metadata: Option<RuleMetadata>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleMetadata {
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpFields {
    #[serde(rename = "type")]
    pub icmp_type: Option<i64>,
    pub code: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntityRule {
    pub nets: Option<Vec<String>>,
    pub not_nets: Option<Vec<String>>,
    pub selector: Option<String>,
    pub not_selector: Option<String>,
    pub namespace_selector: Option<String>,
    pub ports: Option<Vec<IntOrString>>,
    pub not_ports: Option<Vec<IntOrString>>,
    pub service_accounts: Option<ServiceAccountMatch>,
    pub services: Option<ServiceMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMatch {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountMatch {
    pub names: Option<Vec<String>>,
    pub selector: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TierSpec {
    pub order: Option<f64>,
    pub default_action: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSetSpec {
    pub nets: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostEndpointSpec {
    pub node: Option<String>,
    pub interface_name: Option<String>,
    #[serde(rename = "expectedIPs")]
    pub expected_ips: Option<Vec<String>>,
    pub profiles: Option<Vec<String>>,
    pub ports: Option<Vec<EndpointPort>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: Option<i64>,
    pub protocol: Option<IntOrString>,
}

/// Calico's `numorstring`: a YAML number or a string (`6379`, `"80:90"`, `http`, `TCP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(n) => write!(f, "{n}"),
            IntOrString::String(s) => write!(f, "'{s}'"),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntOrStringVisitor;

        impl Visitor<'_> for IntOrStringVisitor {
            type Value = IntOrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("number {v} is too large")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_owned()))
            }
        }

        deserializer.deserialize_any(IntOrStringVisitor)
    }
}
