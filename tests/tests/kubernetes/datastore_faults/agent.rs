//! End to end: the real agent binary against the stand-in and on a ConfigMap volume.

use crate::kubernetes_apiserver;

use std::{
    collections::BTreeSet,
    fs,
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aya::maps::{HashMap, MapData};
use kubernetes_apiserver::{ApiServer, Kind};
use palisade_tests::scratch::Scratch;
use policy_agent::{datastore::digest::dir_digest, status::Status};
use policy_common::endpoint::{EndpointKey, EndpointPolicy};

use super::configmap_volume::ConfigMapVolume;
use super::fixtures::{NODE, WAIT, small_cluster};
use super::server_scenario::{
    burst_changes, gone_during_relist, local_burst_ips, seed_server, server_digest,
};

/// The real agent binary and its files; killed and removed on drop.
struct Agent {
    child: Child,
    dir: PathBuf,
    pins: PathBuf,
}

impl Agent {
    fn start(test: &str, datastore: &[&str]) -> Agent {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("palisade-faults-agent-{id}-{test}"));
        let pins = PathBuf::from(format!("/sys/fs/bpf/palisade-faults-{id}-{test}"));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&pins);
        fs::create_dir_all(&dir).expect("agent directory");
        let log = fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(crate::agent_binary())
            .arg("run")
            .args(datastore)
            .args(["--node-name", NODE])
            .arg("--bpffs")
            .arg(&pins)
            .args(["--interface-pattern", "palisade-test-no-such-interface"])
            // The machine's own namespace: leave its interfaces alone.
            .args(["--uplinks", ""])
            .arg("--status-file")
            .arg(dir.join("status.json"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting policy-agent");
        Agent { child, dir, pins }
    }

    fn status(&self) -> Option<Status> {
        Status::read(&self.dir.join("status.json")).expect("status file")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Waits until the status file's digest is `digest`; how long it took.
    async fn converged(&mut self, digest: &str, what: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.status().is_some_and(|s| s.digest == digest) {
                return started.elapsed();
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({exit}) waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < WAIT,
                "timed out waiting for {what}; agent log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The addresses in the pinned endpoints map.
    fn endpoints(&self) -> BTreeSet<IpAddr> {
        let map = MapData::from_pin(self.pins.join(policy_common::map_names::ENDPOINTS))
            .expect("opening the pinned endpoints map");
        let map: HashMap<MapData, EndpointKey, EndpointPolicy> =
            HashMap::try_from(aya::maps::Map::HashMap(map)).expect("endpoints map type");
        map.keys()
            .map(|k| {
                let v6 = Ipv6Addr::from(k.expect("reading a key").addr);
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            })
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.pins);
    }
}

/// End to end: the real agent against the stand-in; 10,000 objects appear behind expired
/// watches, the server goes away during the relist and comes back compacted. The agent keeps
/// enforcing the last state meanwhile and converges: its status names the server's exact
/// state and its pinned endpoints are the new local pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_converges_after_the_api_server_goes_away_during_a_relist() {
    let Some(_turn) =
        crate::agent_turn("the_agent_converges_after_the_api_server_goes_away_during_a_relist")
            .await
    else {
        return;
    };
    let server = ApiServer::start().await;
    seed_server(&server);
    let scratch = Scratch::new("datastore-faults", "agent-kubernetes");
    let kubeconfig = scratch.manifests.join("kubeconfig");
    fs::write(&kubeconfig, server.kubeconfig()).expect("kubeconfig");
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path").to_owned();
    let mut agent = Agent::start(
        "kubernetes",
        &["--datastore", "kubernetes", "--kubeconfig", &kubeconfig],
    );
    agent
        .converged(&server_digest(&server), "the first list")
        .await;
    let seeded: BTreeSet<IpAddr> = ["10.42.0.10", "10.42.0.11"]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    assert_eq!(agent.endpoints(), seeded);
    let deadline = Instant::now() + WAIT;
    while server.open_watches() < Kind::ALL.len() {
        assert!(
            Instant::now() < deadline,
            "the agent's watches did not open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.go_away_on_next_list();
    let burst = burst_changes();
    let local = local_burst_ips(&burst);
    server.expire_watches(burst);
    gone_during_relist(&server).await;
    server.compact();
    // Away: the agent keeps what it enforced.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        agent.endpoints(),
        seeded,
        "the maps changed while the server was away"
    );

    server.restart().await;
    let took = agent
        .converged(&server_digest(&server), "the compacted server's state")
        .await;
    let endpoints = agent.endpoints();
    assert_eq!(
        endpoints,
        seeded.union(&local).copied().collect::<BTreeSet<_>>()
    );
    let status = agent.status().expect("status");
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    println!(
        "agent: {} objects after the API server came back compacted; converged in {took:?}, \
         {} endpoints, {} rules",
        server.versions().len(),
        endpoints.len(),
        status.rules
    );
}

/// End to end: the real agent on a ConfigMap-shaped directory, through two `..data` swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_a_configmap_volume() {
    let Some(_turn) = crate::agent_turn("the_agent_follows_a_configmap_volume").await else {
        return;
    };
    let scratch = Scratch::new("datastore-faults", "agent-configmap");
    let mut volume = ConfigMapVolume::new(scratch.manifests.join("policies"));
    volume.update(&[("cluster.yaml", small_cluster(0))]);
    let dir = volume.dir.to_str().expect("UTF-8 path").to_owned();
    let mut agent = Agent::start("configmap", &["--datastore", &dir]);
    let digest = dir_digest(&volume.dir).expect("digest");
    agent
        .converged(&digest, "the ConfigMap's first contents")
        .await;
    assert_eq!(
        agent.endpoints().len(),
        3,
        "the ConfigMap's pods are endpoints"
    );
    for generation in 1..=2u16 {
        volume.update(&[("cluster.yaml", small_cluster(generation))]);
        let digest = dir_digest(&volume.dir).expect("digest");
        let took = agent.converged(&digest, "the ConfigMap update").await;
        let expected: IpAddr = format!("10.42.0.{}", 20 + generation)
            .parse()
            .expect("address");
        assert!(
            agent.endpoints().contains(&expected),
            "generation {generation}"
        );
        assert!(agent.status().is_some_and(|s| s.errors.is_empty()));
        println!("agent: ConfigMap swap {generation} converged in {took:?}");
    }
}
