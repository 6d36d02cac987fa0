//! The Calico resources of the bench's cluster, written as v3 YAML and read by
//! `calico::resources::parse_documents` as a datastore would: 3 tiers of
//! GlobalNetworkPolicies, a few namespaced Calico NetworkPolicies and two GlobalNetworkSets.

use std::{fmt::Write as _, time::Instant};

use policy_agent::{
    calico::resources::{CalicoResource, parse_documents, unsupported},
    model::Cluster,
};

use super::cluster::{NAMESPACES, kubernetes_cluster};

/// GlobalNetworkPolicies per tier: security, platform, default (the last one of `default` is
/// the cluster-wide default deny).
const SECURITY_POLICIES: usize = 50;
const PLATFORM_POLICIES: usize = 250;
const DEFAULT_POLICIES: usize = 700;
/// CIDRs per GlobalNetworkSet (two sets).
const SET_SIZE: usize = 5_000;

/// One policy document; `rules` are YAML flow mappings.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of the document"
)]
fn policy_yaml(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    order: f64,
    selector: &str,
    namespace_selector: Option<&str>,
    ingress: &[String],
    egress: &[String],
) -> String {
    let tier = name.split_once('.').map_or("default", |(tier, _)| tier);
    let mut doc =
        format!("apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata:\n  name: {name}\n");
    if let Some(ns) = namespace {
        writeln!(doc, "  namespace: {ns}").expect("write");
    }
    write!(
        doc,
        "spec:\n  tier: {tier}\n  order: {order}\n  selector: \"{selector}\"\n"
    )
    .expect("write");
    if let Some(ns_selector) = namespace_selector {
        writeln!(doc, "  namespaceSelector: \"{ns_selector}\"").expect("write");
    }
    let types: Vec<&str> = [("Ingress", ingress), ("Egress", egress)]
        .into_iter()
        .filter(|(_, rules)| !rules.is_empty())
        .map(|(t, _)| t)
        .collect();
    // A policy without rules (the default deny) names both directions.
    let types = if types.is_empty() {
        "Ingress, Egress".to_owned()
    } else {
        types.join(", ")
    };
    writeln!(doc, "  types: [{types}]").expect("write");
    for (field, rules) in [("ingress", ingress), ("egress", egress)] {
        if rules.is_empty() {
            continue;
        }
        writeln!(doc, "  {field}:").expect("write");
        for rule in rules {
            writeln!(doc, "    - {rule}").expect("write");
        }
    }
    doc
}

fn tiers_yaml() -> Vec<String> {
    [
        ("security", Some(100), "Pass"),
        ("platform", Some(200), "Pass"),
        // Calico's own default tier: last, Deny.
        ("default", Some(1_000_000), "Deny"),
    ]
    .into_iter()
    .map(|(name, order, action)| {
        let order = order.map_or(String::new(), |o| format!("  order: {o}\n"));
        format!(
            "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: {name}\nspec:\n{order}  defaultAction: {action}\n"
        )
    })
    .collect()
}

/// Two GlobalNetworkSets of `SET_SIZE` CIDRs: a threat feed of /32s (denied by the security
/// tier) and partners' /24s (allowed by the platform tier). `extra` CIDRs are appended to the
/// threat feed (the incremental change).
pub fn network_sets_yaml(extra: usize) -> Vec<String> {
    let mut feed = String::from(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: threat-feed\n  labels:\n    feed: blocklist\nspec:\n  nets:\n",
    );
    for i in 0..SET_SIZE + extra {
        // 100.64.0.0/10 (shared address space), one /32 each.
        writeln!(
            feed,
            "    - 100.{}.{}.{}/32",
            64 + i / 65536,
            (i >> 8) & 255,
            i & 255
        )
        .expect("write");
    }
    let mut partners = String::from(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: partners\n  labels:\n    feed: partners\nspec:\n  nets:\n",
    );
    for i in 0..SET_SIZE {
        // 11.0.0.0 upwards, one /24 each.
        writeln!(partners, "    - 11.{}.{}.0/24", i >> 8, i & 255).expect("write");
    }
    vec![feed, partners]
}

fn security_policy(k: usize) -> String {
    let name = format!("security.sec-{k}");
    let order = (k * 10) as f64;
    let gnp = |selector: &str, ns: Option<&str>, ingress: &[String], egress: &[String]| {
        policy_yaml(
            "GlobalNetworkPolicy",
            &name,
            None,
            order,
            selector,
            ns,
            ingress,
            egress,
        )
    };
    let s = |text: &str| text.to_owned();
    match k {
        // The threat feed: logged and denied both ways; the rest goes on (tier Passes).
        0 => gnp(
            "all()",
            None,
            &[
                s("{action: Log, source: {selector: \"feed == 'blocklist'\"}}"),
                s("{action: Deny, source: {selector: \"feed == 'blocklist'\"}}"),
            ],
            &[s(
                "{action: Deny, destination: {selector: \"feed == 'blocklist'\"}}",
            )],
        ),
        // Cloud metadata only for pods that say they need it.
        1 => gnp(
            "!has(metadata-access)",
            None,
            &[],
            &[s(
                "{action: Deny, protocol: TCP, destination: {nets: [169.254.169.254/32], ports: [80]}}",
            )],
        ),
        // Production namespaces of a team take no traffic from outside the cluster.
        _ if k.is_multiple_of(4) => gnp(
            "all()",
            Some(&format!("env == 'prod' && team == 't{}'", k % 10)),
            &[
                s("{action: Deny, ipVersion: 4, source: {notNets: [10.0.0.0/8]}}"),
                s("{action: Deny, ipVersion: 6, source: {notNets: [\"fd00::/16\"]}}"),
            ],
            &[],
        ),
        // Web never reaches databases directly.
        _ if k % 4 == 1 => gnp(
            &format!("tier == 'db' && app == 'app-{}'", k % 20),
            None,
            &[
                s("{action: Log, source: {selector: \"tier == 'web'\"}}"),
                s("{action: Deny, source: {selector: \"tier == 'web'\"}}"),
                s("{action: Pass}"),
            ],
            &[],
        ),
        // No UDP to a lab network; everything outside 192.168/16 goes on to the platform.
        _ if k % 4 == 2 => gnp(
            &format!("app in {{'app-{}', 'app-{}'}}", k % 20, (k + 7) % 20),
            None,
            &[],
            &[
                format!(
                    "{{action: Deny, protocol: UDP, destination: {{nets: [192.168.{k}.0/24], ports: [\"5000:5999\"]}}}}"
                ),
                s("{action: Pass, destination: {notNets: [192.168.0.0/16]}}"),
            ],
        ),
        // Monitoring scrapes metrics in production; prod APIs are left to the platform.
        _ => gnp(
            "has(version) && !has(canary)",
            Some("env == 'prod'"),
            &[s(
                "{action: Allow, protocol: TCP, source: {serviceAccounts: {names: [monitoring]}, namespaceSelector: \"projectcalico.org/name == 'ns-0'\"}, destination: {ports: [metrics]}}",
            )],
            &[s(
                "{action: Pass, protocol: TCP, destination: {selector: \"tier == 'api'\", namespaceSelector: \"env == 'prod'\", ports: [\"8000:8999\"]}}",
            )],
        ),
    }
}

fn platform_policy(k: usize) -> String {
    let name = format!("platform.plat-{k}");
    let ns = k % NAMESPACES;
    let x = (k * 7) % 20;
    let own_ns = format!("projectcalico.org/name == 'ns-{ns}'");
    let gnp = |selector: &str, ns: Option<&str>, ingress: &[String], egress: &[String]| {
        policy_yaml(
            "GlobalNetworkPolicy",
            &name,
            None,
            k as f64,
            selector,
            ns,
            ingress,
            egress,
        )
    };
    let s = |text: &str| text.to_owned();
    match k % 5 {
        // An app's front door, and its calls out to partners.
        0 => gnp(
            &format!("app == 'app-{x}'"),
            Some(&own_ns),
            &[s(
                "{action: Allow, protocol: TCP, source: {selector: \"tier in {'web', 'api'}\"}, destination: {ports: [http, \"9000:9100\"]}}",
            )],
            &[s(
                "{action: Allow, protocol: TCP, destination: {selector: \"feed == 'partners'\", ports: [443]}}",
            )],
        ),
        // Web tiers of a team: DNS by named port, HTTPS to the partners' range.
        1 => gnp(
            "tier == 'web'",
            Some(&format!("team == 't{}'", k % 10)),
            &[],
            &[
                s(
                    "{action: Allow, protocol: UDP, destination: {selector: \"app == 'app-0'\", namespaceSelector: all(), ports: [dns]}}",
                ),
                s(
                    "{action: Allow, protocol: TCP, destination: {nets: [11.0.0.0/12], ports: [443]}}",
                ),
            ],
        ),
        // IPv6 node ports, the rest left to the next tier.
        2 => gnp(
            &format!("app == 'app-{x}' && has(version)"),
            None,
            &[
                s(
                    "{action: Allow, ipVersion: 6, protocol: TCP, source: {nets: [\"fd00::/16\"]}, destination: {ports: [\"30000:32767\"]}}",
                ),
                s("{action: Pass}"),
            ],
            &[],
        ),
        // Dev APIs take frontend's service account on http, nothing else over TCP.
        3 => gnp(
            &format!("tier == 'api' && version == 'v{}'", k % 2),
            Some("env == 'dev'"),
            &[
                s(
                    "{action: Allow, protocol: TCP, source: {serviceAccounts: {names: [frontend]}}, destination: {ports: [8080]}}",
                ),
                s("{action: Deny, protocol: TCP, destination: {notPorts: [8080, \"9090:9091\"]}}"),
            ],
            &[],
        ),
        // Everything but databases: log, databases to the app owners, SCTP out.
        _ => gnp(
            "!(tier == 'db')",
            Some(&own_ns),
            &[],
            &[
                s("{action: Log}"),
                s("{action: Pass, destination: {selector: \"tier == 'db'\"}}"),
                s("{action: Allow, protocol: SCTP}"),
            ],
        ),
    }
}

fn default_policy(k: usize) -> String {
    if k == DEFAULT_POLICIES - 1 {
        // Cluster-wide default deny, after the Kubernetes policies (order 1000).
        return policy_yaml(
            "GlobalNetworkPolicy",
            "default.default-deny",
            None,
            10_000.0,
            "projectcalico.org/namespace != 'kube-system'",
            None,
            &[],
            &[],
        );
    }
    let name = format!("default.app-{k}");
    let ns = k % NAMESPACES;
    let x = (k * 3 + k / NAMESPACES) % 20;
    let y = (x + 1) % 20;
    let tier = ["web", "api", "db"][k % 3];
    let gnp = |selector: &str, ns: Option<&str>, ingress: &[String], egress: &[String]| {
        policy_yaml(
            "GlobalNetworkPolicy",
            &name,
            None,
            (100 + k) as f64,
            selector,
            ns,
            ingress,
            egress,
        )
    };
    let s = |text: &str| text.to_owned();
    let own_ns = format!("projectcalico.org/name == 'ns-{ns}'");
    match k % 4 {
        0 => gnp(
            &format!("app == 'app-{x}' && tier == '{tier}'"),
            Some(&own_ns),
            &[format!(
                "{{action: Allow, protocol: TCP, source: {{selector: \"app == 'app-{y}'\"}}, destination: {{ports: [8080]}}}}"
            )],
            &[],
        ),
        1 => gnp(
            &format!("app == 'app-{x}'"),
            Some(&format!("team == 't{}'", k % 10)),
            &[],
            &[format!(
                "{{action: Allow, protocol: TCP, destination: {{namespaceSelector: \"team == 't{}'\", selector: \"tier == 'api'\", ports: [metrics]}}}}",
                (k + 1) % 10
            )],
        ),
        2 => gnp(
            &format!("app in {{'app-{x}', 'app-{y}'}}"),
            None,
            &[s(
                "{action: Allow, protocol: TCP, source: {serviceAccounts: {selector: \"projectcalico.org/name in {'frontend', 'backend'}\"}}, destination: {ports: [\"8000:8100\"]}}",
            )],
            &[],
        ),
        _ => gnp(
            &format!("tier == 'db' && !has(canary) && app != 'app-{y}'"),
            Some("env == 'prod'"),
            &[
                s("{action: Deny, protocol: UDP}"),
                format!(
                    "{{action: Allow, protocol: TCP, source: {{selector: \"tier == 'api'\", namespaceSelector: \"{own_ns}\"}}, destination: {{ports: [5432]}}}}"
                ),
            ],
            &[],
        ),
    }
}

/// A few namespaced Calico NetworkPolicies (tier `default`), one in the local pods'
/// namespace ns-7.
fn namespaced_policies() -> Vec<String> {
    [7, 17, 27, 37, 47]
        .into_iter()
        .map(|ns| {
            policy_yaml(
                "NetworkPolicy",
                "default.same-namespace",
                Some(&format!("ns-{ns}")),
                500.0,
                "all()",
                None,
                &["{action: Allow, source: {selector: all()}}".to_owned()],
                &[
                    "{action: Allow, protocol: UDP, destination: {namespaceSelector: \"projectcalico.org/name == 'ns-0'\", selector: \"app == 'app-0'\", ports: [53]}}".to_owned(),
                ],
            )
        })
        .collect()
}

/// The extra GlobalNetworkPolicy of the incremental change: ns-7's app-7 (pod-7 of ns-7 is on
/// node-7) opens one more port.
pub fn extra_policy() -> String {
    policy_yaml(
        "GlobalNetworkPolicy",
        "platform.extra",
        None,
        5.0,
        "app == 'app-7'",
        Some("projectcalico.org/name == 'ns-7'"),
        &["{action: Allow, protocol: TCP, destination: {ports: [8081]}}".to_owned()],
        &[],
    )
}

/// Parses `documents` as one calicoctl file; panics on any resource that Calico would reject
/// or that Palisade cannot enforce.
pub fn parse(documents: &[String]) -> Vec<CalicoResource> {
    let text = documents.join("---\n");
    parse_documents(&text)
        .into_iter()
        .map(|result| {
            let resource = result.unwrap_or_else(|e| panic!("{e}"));
            let errors = unsupported(&resource);
            assert!(
                errors.is_empty(),
                "{} {}: {errors:?}",
                resource.kind(),
                resource.name()
            );
            resource
        })
        .collect()
}

pub fn calico_documents() -> Vec<String> {
    let mut documents = tiers_yaml();
    documents.extend(network_sets_yaml(0));
    documents.extend((0..SECURITY_POLICIES).map(security_policy));
    documents.extend((0..PLATFORM_POLICIES).map(platform_policy));
    documents.extend((0..DEFAULT_POLICIES).map(default_policy));
    documents.extend(namespaced_policies());
    documents
}

/// `shared/cluster.rs`'s cluster with the Calico resources.
pub fn cluster() -> Cluster {
    let mut cluster = kubernetes_cluster();
    let started = Instant::now();
    let resources = parse(&calico_documents());
    let parsed = resources.len();
    for resource in resources {
        cluster.calico.insert(resource);
    }
    eprintln!(
        "parsed {parsed} Calico resources in {:?}",
        started.elapsed()
    );
    cluster
}
