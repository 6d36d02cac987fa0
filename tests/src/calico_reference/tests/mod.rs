//! Tests of the Calico reference model, one module per subject: `tiers.rs` (the tier walk,
//! the profile and the trace), `kubernetes.rs` (NetworkPolicies in tier `default`),
//! `selectors.rs` (rule and policy selectors, network sets, namespaces, service accounts),
//! `rule_fields.rs` (nets, ports, ICMP, ipVersion), `endpoints.rs` (node traffic and
//! addresses that are not endpoints), `services.rs` (`services` matches),
//! `cluster_policy.rs` (administrators' policy) and `staged.rs` (staged policies and the
//! pending world). This file holds the world and the helpers
//! they share.

mod cluster_policy;
mod endpoints;
mod kubernetes;
mod rule_fields;
mod selectors;
mod services;
mod staged;
mod tiers;

use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Pod, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use policy_agent::calico::resources::parse_documents;

use super::*;

const WEB: &str = "10.1.0.1";
const DB: &str = "10.1.0.2";
const CLIENT: &str = "10.2.0.1";
const NODE: &str = "10.0.0.1";
const EXTERNAL: &str = "192.0.2.1";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    })
}

fn namespace(name: &str, pairs: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: labels(pairs),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn pod(ns: &str, name: &str, addr: &str, pairs: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            labels: labels(pairs),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            pod_ip: Some(addr.to_owned()),
            pod_ips: Some(vec![PodIP {
                ip: addr.to_owned(),
            }]),
            ..Default::default()
        }),
    }
}

/// prod (team=a): web (app=web, named port http = 8080/TCP), db (app=db);
/// dev (team=b): client (app=client, service account `builder`). One node address.
fn base() -> CalicoWorld {
    let mut web = pod("prod", "web", WEB, &[("app", "web")]);
    if let Some(spec) = web.spec.as_mut() {
        spec.containers[0].ports = Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: 8080,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]);
    }
    let mut client = pod("dev", "client", CLIENT, &[("app", "client")]);
    if let Some(spec) = client.spec.as_mut() {
        spec.service_account_name = Some("builder".to_owned());
    }
    CalicoWorld {
        namespaces: vec![
            namespace("prod", &[("team", "a")]),
            namespace("dev", &[("team", "b")]),
        ],
        pods: vec![web, pod("prod", "db", DB, &[("app", "db")]), client],
        node_addrs: vec![ip(NODE)],
        ..CalicoWorld::default()
    }
}

fn with(yaml: &str) -> CalicoWorld {
    let mut world = base();
    load(&mut world, yaml);
    world
}

/// Adds the Calico resources of `yaml`, read by the model from the YAML as written (after
/// the agent's validation has accepted them).
fn load(world: &mut CalicoWorld, yaml: &str) {
    for resource in parse_documents(yaml) {
        resource.unwrap_or_else(|e| panic!("test resource rejected: {e}"));
    }
    world
        .extend_from_yaml(yaml)
        .unwrap_or_else(|e| panic!("test resource unreadable: {e}"));
}

fn tcp(src: &str, dst: &str, port: u16) -> Packet {
    Packet::tcp(ip(src), ip(dst), port)
}

fn allowed(world: &CalicoWorld, packet: Packet) -> bool {
    world.verdict(&packet).allowed
}

/// `(tier, policy name, rule)` of the rule that decided `direction`.
fn decider(decision: &Decision, direction: Direction) -> Option<(String, String, usize)> {
    match decision.decided_by(direction)? {
        DecidedBy::Rule {
            tier, policy, rule, ..
        } => Some((tier.clone(), policy.name.clone(), *rule)),
        _ => None,
    }
}

fn tier_names(decision: &Decision, direction: Direction) -> Vec<String> {
    decision
        .side(direction)
        .trace()
        .map(|t| t.tiers.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default()
}

const TIERS: &str = "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: first}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: second}
spec: {order: 200}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: unused}
spec: {order: 50}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: unused.other}
spec:
  tier: unused
  selector: app == 'nothing'
  ingress: [{action: Deny}]
";

const SETS: &str = "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: wide, labels: {role: wide, kind: ext}}
spec: {nets: [192.0.2.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: narrow, labels: {role: narrow, kind: ext}}
spec: {nets: [192.0.2.0/28]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: prod, labels: {kind: ext}}
spec: {nets: [203.0.113.0/24]}
";

fn web_ingress(rules: &str) -> String {
    format!(
        "{SETS}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: web-in}}
spec:
  selector: app == 'web'
  ingress:
{rules}
  - action: Deny
"
    )
}
