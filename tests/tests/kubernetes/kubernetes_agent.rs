//! The real `policy-agent` binary with `--datastore kubernetes`, against the in-process
//! stand-in API server (see `kubernetes_apiserver`): not ready while the API server is
//! unreachable, ready once the first full list is in the kernel's maps, following changes,
//! still ready and enforcing while the API server is away, and leaving its pinned maps in
//! place on SIGTERM. Its health and metrics endpoints are checked over real HTTP.
//!
//! Privileged (loads BPF programs, pins maps): needs root, a failure under CI=true. The agent
//! attaches to no interface (its prefix matches none), so it changes nothing on the machine
//! besides its own pin directory; its only network use is loopback.

use crate::kubernetes_apiserver;

use palisade_tests::require_root;
use std::{
    collections::BTreeSet,
    fs,
    net::{IpAddr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use aya::maps::{HashMap, MapData};
use kubernetes_apiserver::{ApiServer, Kind};
use policy_agent::{datastore::kubernetes::digest_versions, status::Status};
use policy_common::endpoint::{EndpointKey, EndpointPolicy};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Every wait ends by this, loudly.
const WAIT: Duration = Duration::from_secs(30);

/// The agent process and its files; killed and removed on drop (also on a failed assertion).
struct Agent {
    child: Child,
    dir: PathBuf,
    pins: PathBuf,
    port: u16,
}

impl Agent {
    fn start(server: &ApiServer) -> Agent {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("palisade-kubernetes-agent-{id}"));
        let pins = PathBuf::from(format!("/sys/fs/bpf/palisade-kubernetes-agent-{id}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch directory");
        let kubeconfig = dir.join("kubeconfig");
        fs::write(&kubeconfig, server.kubeconfig()).expect("kubeconfig");
        // A free loopback port for the health endpoint.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(crate::agent_binary())
            .args(["run", "--datastore", "kubernetes", "--node-name", "node-a"])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--bpffs")
            .arg(&pins)
            .args(["--interface-pattern", "palisade-test-no-such-interface"])
            // This test runs in the machine's own namespace: leave its interfaces alone.
            .args(["--uplinks", ""])
            .arg("--status-file")
            .arg(dir.join("status.json"))
            .args(["--metrics-port", &port.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting policy-agent");
        Agent {
            child,
            dir,
            pins,
            port,
        }
    }

    fn status(&self) -> Option<Status> {
        Status::read(&self.dir.join("status.json")).expect("status file")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// GET `path` on the agent's health endpoint: status code and body.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .ok()?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await.ok()?;
            let code = response.split(' ').nth(1)?.parse().ok()?;
            let body = response.split_once("\r\n\r\n")?.1.to_owned();
            Some((code, body))
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .ok()
            .flatten()
    }

    /// Waits until `check` holds, or fails with the agent's log.
    async fn wait_for<F: AsyncFnMut(&Agent) -> bool>(&mut self, what: &str, mut check: F) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if check(self).await {
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({exit}) waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; agent log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

fn server_digest(server: &ApiServer) -> String {
    let versions = server.versions();
    digest_versions(
        versions
            .iter()
            .map(|(k, ns, n, v)| (k.as_str(), ns.as_str(), n.as_str(), v.as_str())),
    )
}

/// The addresses in the pinned endpoints map.
fn pinned_endpoints(pins: &Path) -> BTreeSet<IpAddr> {
    let map = MapData::from_pin(pins.join(policy_common::map_names::ENDPOINTS))
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

fn pod(name: &str, labels: serde_json::Value, ip: &str, node: &str) -> serde_json::Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip},
    })
}

fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_ready_only_once_the_api_servers_state_is_programmed() {
    if !require_root("the_agent_is_ready_only_once_the_api_servers_state_is_programmed") {
        return;
    }
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
    let mut agent = Agent::start(&server);

    agent
        .wait_for("/healthz", async |a| {
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
        .wait_for("/readyz", async |a| {
            a.get("/readyz").await.is_some_and(|(code, _)| code == 200)
        })
        .await;
    let status = agent.status().expect("status after the first sync");
    assert_eq!(status.digest, server_digest(&server));
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
    let expected = server_digest(&server);
    agent
        .wait_for("the new pod", async |a| {
            a.status().is_some_and(|s| s.digest == expected)
        })
        .await;
    assert!(pinned_endpoints(&agent.pins).contains(&"10.42.0.12".parse().expect("address")));

    // The API server goes away: still ready, still enforcing the same maps.
    server.stop();
    server.delete(Kind::Pod, "default", "new");
    agent
        .wait_for("watch errors", async |a| {
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
