//! The stand-in API server's scenario: its seed, the burst behind the watches, its digest.

use crate::kubernetes_apiserver;

use std::{
    collections::BTreeSet,
    net::IpAddr,
    time::{Duration, Instant},
};

use kubernetes_apiserver::{ApiServer, Change, Kind};
use policy_agent::datastore::kubernetes::digest_versions;

use super::fixtures::{BURST, NODE, WAIT, namespace, pod, policy};

/// The stand-in's objects at exactly their versions, as the Kubernetes datastore digests them.
pub(super) fn server_digest(server: &ApiServer) -> String {
    let versions = server.versions();
    digest_versions(
        versions
            .iter()
            .map(|(k, ns, n, v)| (k.as_str(), ns.as_str(), n.as_str(), v.as_str())),
    )
}

/// The objects the API server scenarios start with (API-server form: no `apiVersion` needed).
pub(super) fn seed_server(server: &ApiServer) {
    server.apply(namespace("shop"));
    server.apply(pod("shop", "web", "web", "10.42.0.10", NODE));
    server.apply(pod("shop", "db", "db", "10.42.0.11", NODE));
    server.apply(policy("shop", "db-from-web", "db", "web", 5432));
}

/// [`BURST`] changes made behind the watches' backs: new namespaces, pods (one in ten on this
/// node) and policies, and the seed's policy deleted.
pub(super) fn burst_changes() -> Vec<Change> {
    let mut changes = vec![Change::Delete(Kind::NetworkPolicy, "shop", "db-from-web")];
    for n in 0..50 {
        changes.push(Change::Apply(namespace(&format!("burst-{n}"))));
    }
    let mut i = 0usize;
    while changes.len() < BURST {
        let ns = format!("burst-{}", i % 50);
        let ip = format!("10.{}.{}.{}", 64 + i / 65_536, (i / 256) % 256, i % 256);
        let node = if i.is_multiple_of(10) {
            NODE.to_owned()
        } else {
            format!("node-{}", i % 10)
        };
        changes.push(Change::Apply(pod(
            &ns,
            &format!("pod-{i}"),
            &format!("app-{}", i % 40),
            &ip,
            &node,
        )));
        if i.is_multiple_of(4) {
            changes.push(Change::Apply(policy(
                &ns,
                &format!("policy-{i}"),
                &format!("app-{}", i % 40),
                &format!("app-{}", (i + 1) % 40),
                8080,
            )));
        }
        i += 1;
    }
    changes
}

/// The burst's pods on this node: the endpoints the agent must end up with.
pub(super) fn local_burst_ips(changes: &[Change]) -> BTreeSet<IpAddr> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Apply(o) if o["kind"] == "Pod" && o["spec"]["nodeName"] == NODE => {
                o["status"]["podIP"].as_str()?.parse().ok()
            }
            _ => None,
        })
        .collect()
}

/// Waits until the stand-in has gone away in the middle of a relist, then closes its port.
pub(super) async fn gone_during_relist(server: &ApiServer) {
    let deadline = Instant::now() + WAIT;
    while !server.is_stopped() {
        assert!(Instant::now() < deadline, "no relist reached the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop();
}
