//! The real `policy-agent` binary with `--datastore kubernetes`, against the in-process
//! stand-in API server (see `kubernetes_apiserver`): not ready while the API server is
//! unreachable, ready once the first full list is in the kernel's maps, following changes,
//! still ready and enforcing while the API server is away, and leaving its pinned maps in
//! place on SIGTERM. Its health and metrics endpoints are checked over real HTTP.
//!
//! Privileged (loads BPF programs, pins maps): needs root, a failure under CI=true. The agent
//! attaches to no interface (its prefix matches none), so it changes nothing on the machine
//! besides its own pin directory; its only network use is loopback.

use crate::{
    harness::{Agent, digest_of, metric, pinned_endpoints},
    kubernetes_apiserver,
};

use std::{collections::BTreeSet, net::IpAddr, time::Duration};

use kubernetes_apiserver::{ApiServer, Kind};
use serde_json::json;

/// Every wait ends by this, loudly.
const WAIT: Duration = Duration::from_secs(30);

fn pod(name: &str, labels: serde_json::Value, ip: &str, node: &str) -> serde_json::Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_ready_only_once_the_api_servers_state_is_programmed() {
    let Some(_turn) =
        crate::agent_turn("the_agent_is_ready_only_once_the_api_servers_state_is_programmed").await
    else {
        return;
    };
    let server = ApiServer::start().await;
    server.apply(json!({"kind": "Namespace", "metadata": {"name": "default"}}));
    server.apply(pod(
        "frontend",
        json!({"app": "frontend"}),
        "10.42.0.10",
        "node-a",
    ));
    server.apply(pod(
        "backend",
        json!({"app": "backend"}),
        "10.42.0.11",
        "node-a",
    ));
    server.apply(pod(
        "elsewhere",
        json!({"app": "frontend"}),
        "10.42.1.10",
        "node-b",
    ));
    // Unreachable when the agent starts.
    server.stop();
    let mut agent = Agent::start(&server, "kubernetes-agent", &[]);

    agent
        .wait_for("/healthz", WAIT, async |a| {
            a.get("/healthz").await.is_some_and(|(code, _)| code == 200)
        })
        .await;
    let (code, _) = agent.get("/readyz").await.expect("readyz");
    assert_eq!(code, 503, "ready before the first list");
    assert!(agent.status().is_none(), "nothing programmed yet");
    assert!(
        !agent
            .pins
            .join(policy_common::map_names::ENDPOINTS)
            .exists()
    );

    server.restart().await;
    agent
        .wait_for("/readyz", WAIT, async |a| {
            a.get("/readyz").await.is_some_and(|(code, _)| code == 200)
        })
        .await;
    let status = agent.status().expect("status after the first sync");
    assert_eq!(status.digest, digest_of(&server));
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    let local: BTreeSet<IpAddr> = ["10.42.0.10", "10.42.0.11"]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    assert_eq!(pinned_endpoints(&agent.pins), local);

    let (code, metrics) = agent.get("/metrics").await.expect("metrics");
    assert_eq!(code, 200);
    assert_eq!(metric(&metrics, "palisade_ready"), Some(1.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "palisade_map_entries{map=\"endpoints\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "palisade_datastore_lists_total{resource=\"pods\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // A change on the API server reaches the maps.
    server.apply(pod("new", json!({}), "10.42.0.12", "node-a"));
    let expected = digest_of(&server);
    agent
        .wait_for("the new pod", WAIT, async |a| {
            a.status().is_some_and(|s| s.digest == expected)
        })
        .await;
    assert!(pinned_endpoints(&agent.pins).contains(&"10.42.0.12".parse().expect("address")));

    // The API server goes away: still ready, still enforcing the same maps.
    server.stop();
    server.delete(Kind::Pod, "default", "new");
    agent
        .wait_for("watch errors", WAIT, async |a| {
            a.get("/metrics").await.is_some_and(|(_, m)| {
                metric(
                    &m,
                    "palisade_datastore_watch_errors_total{resource=\"pods\"}",
                )
                .is_some_and(|v| v > 0.0)
            })
        })
        .await;
    assert_eq!(agent.get("/readyz").await.map(|r| r.0), Some(200));
    assert_eq!(pinned_endpoints(&agent.pins).len(), 3);

    // SIGTERM: a clean exit that leaves the pinned maps in place.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = agent.child.try_wait().expect("waiting for the agent") {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit {exit}:\n{}", agent.log());
    assert_eq!(pinned_endpoints(&agent.pins).len(), 3);
}
