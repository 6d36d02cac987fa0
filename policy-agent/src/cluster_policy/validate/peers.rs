//! Peers: the pods, namespaces and networks a rule names, checked as the schemas and CEL
//! rules check them.

use std::str::FromStr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

use super::schema::{
    CALICO_LABEL_PREFIX, CIDR_MAX_LEN, Limits, NETWORKS_MAX, RESERVED_KEY, Version, error,
};
use crate::{
    cluster_policy::{ClusterPeer, ClusterPolicyError, raw},
    model::{LabelSelector, convert},
};

pub(super) fn namespaced_pod(
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

pub(super) fn selector(
    raw: raw::LabelSelector,
    field: &str,
) -> Result<LabelSelector, ClusterPolicyError> {
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

pub(super) fn peer_list<T>(
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

pub(super) fn ingress_peers(
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

pub(super) fn egress_peers(
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

pub(super) fn networks_peer(
    networks: Vec<String>,
    field: &str,
) -> Result<ClusterPeer, ClusterPolicyError> {
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
