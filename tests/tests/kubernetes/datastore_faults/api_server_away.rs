//! The stand-in going away during a relist and returning compacted: the stores converge.

use crate::kubernetes_apiserver;

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv6Addr},
    time::{Duration, Instant},
};

use kubernetes_apiserver::{ApiServer, Change, Kind};
use policy_agent::{
    compiler::{Compiler, Scope},
    datastore::kubernetes::{self, KubernetesDatastore},
};
use tokio::sync::mpsc::unbounded_channel;

use super::fixtures::{NODE, WAIT, pod};
use super::server_scenario::{
    burst_changes, gone_during_relist, local_burst_ips, seed_server, server_digest,
};

/// The stand-in goes away while the watchers relist after a 410 Gone, changes land meanwhile
/// and its history is compacted; it comes back. Meanwhile the stores keep their last state;
/// afterwards they converge to the server's.
#[tokio::test]
async fn the_api_server_going_away_during_a_relist_and_returning_compacted() {
    let server = ApiServer::start().await;
    seed_server(&server);
    let (tx, mut changes) = unbounded_channel();
    let options = kubernetes::Options {
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        rediscover: Duration::from_millis(200),
    };
    let mut store = KubernetesDatastore::start(server.client(), options, tx);
    let deadline = Instant::now() + WAIT;
    let before = loop {
        let snapshot = store.snapshot();
        if store.is_synced() && snapshot.digest == server_digest(&server) {
            break snapshot;
        }
        assert!(Instant::now() < deadline, "the first list did not complete");
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.recv()).await;
    };
    let deadline = Instant::now() + WAIT;
    while server.open_watches() < Kind::ALL.len() {
        assert!(Instant::now() < deadline, "the watches did not open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The next list finds the server going away; then the watches expire with a change no
    // watch sees, so the relist is the only way to it, and it fails.
    server.go_away_on_next_list();
    server.expire_watches(vec![Change::Apply(pod(
        "shop",
        "late",
        "web",
        "10.42.0.12",
        NODE,
    ))]);
    gone_during_relist(&server).await;
    // Away: the burst lands, and etcd compacts.
    let burst = burst_changes();
    let local = local_burst_ips(&burst);
    server.expire_watches(burst);
    server.compact();
    // Meanwhile: the last state, whole.
    let lists_before = server.lists(Kind::Pod);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let meanwhile = store.snapshot();
    assert_eq!(
        meanwhile.cluster, before.cluster,
        "the state changed while the server was away"
    );
    assert!(store.is_synced());

    let started = Instant::now();
    server.restart().await;
    let expected = server_digest(&server);
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let snapshot = store.snapshot();
        if snapshot.digest == expected {
            break snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "not converged to the compacted server's state in {WAIT:?}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.recv()).await;
    };
    let converged = started.elapsed();
    assert!(
        server.lists(Kind::Pod) > lists_before,
        "the pods were relisted"
    );
    assert!(
        !after
            .cluster
            .policies
            .contains_key(&("shop".into(), "db-from-web".into()))
    );
    assert!(
        after
            .cluster
            .pods
            .contains_key(&("shop".into(), "late".into()))
    );
    let scope = Scope {
        node_name: Some(NODE.to_owned()),
        host_addrs: Vec::new(),
    };
    let maps = Compiler::new().compile(&after.cluster, &scope).maps;
    let endpoints: BTreeSet<IpAddr> = maps
        .endpoints
        .keys()
        .map(|k| {
            let v6 = Ipv6Addr::from(k.addr);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        })
        .collect();
    assert!(endpoints.is_superset(&local));
    println!(
        "API server away during a relist, back compacted with {} objects: converged {converged:?} \
         after its return, {} endpoints",
        server.versions().len(),
        endpoints.len()
    );
}
