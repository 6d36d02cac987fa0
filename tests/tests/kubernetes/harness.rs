//! What the tests of this binary share: the Kubernetes datastore started against the stand-in
//! API server with a file datastore beside it for comparison ([`Datastore`]), the real agent
//! binary run against the stand-in ([`Agent`]), and reading what they produced.

use std::{
    collections::BTreeSet,
    fs,
    net::{IpAddr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use aya::maps::{HashMap, MapData};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    datastore::{
        Snapshot,
        file::FileDatastore,
        kubernetes::{self, KubernetesDatastore, digest_versions},
    },
    status::Status,
};
use policy_common::endpoint::{EndpointKey, EndpointPolicy};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    sync::mpsc,
};

use crate::kubernetes_apiserver::{ApiServer, Kind};

/// The node the datastore tests compile for and the agent runs as.
pub const NODE: &str = "node-a";
/// Every wait for the datastore ends by this, loudly.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The server's objects, at exactly the versions it holds, as the datastore digests them.
pub fn digest_of(server: &ApiServer) -> String {
    let versions = server.versions();
    digest_versions(
        versions
            .iter()
            .map(|(k, ns, n, v)| (k.as_str(), ns.as_str(), n.as_str(), v.as_str())),
    )
}

/// The Kubernetes datastore watching `server`, and a file datastore fed the same objects on
/// demand, for comparison; its directory is removed on drop.
pub struct Datastore {
    pub server: ApiServer,
    pub store: KubernetesDatastore,
    pub changes: mpsc::UnboundedReceiver<()>,
    /// The file datastore fed the same objects after every step, for comparison.
    pub files: FileDatastore,
    pub dir: PathBuf,
}

impl Datastore {
    /// `name` names the scratch directory; `rediscover` is how often the datastore looks for
    /// custom resources that were not served. Retries are short: tests take the API server
    /// away on purpose.
    pub fn start(server: ApiServer, name: &str, rediscover: Duration) -> Datastore {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "palisade-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("scratch directory");
        let (tx, changes) = mpsc::unbounded_channel();
        let options = kubernetes::Options {
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            rediscover,
        };
        let store = KubernetesDatastore::start(server.client(), options, tx);
        Datastore {
            server,
            store,
            changes,
            files: FileDatastore::new(&dir),
            dir,
        }
    }

    /// The server's objects, at exactly the versions it holds, as the datastore digests them.
    pub fn server_digest(&self) -> String {
        digest_of(&self.server)
    }

    /// Waits until the datastore is synced and its snapshot satisfies `done`.
    pub async fn until(&mut self, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            if self.store.is_synced() {
                let snapshot = self.store.snapshot();
                if done(&snapshot) {
                    return snapshot;
                }
            }
            match tokio::time::timeout_at(deadline, self.changes.recv()).await {
                Ok(Some(())) => {}
                Ok(None) => panic!("the datastore's watchers stopped"),
                Err(_) => panic!(
                    "{what}: not reached in {SETTLE_TIMEOUT:?} (synced: {})",
                    self.store.is_synced()
                ),
            }
        }
    }

    /// Waits until the datastore holds exactly what the server holds; returns its snapshot.
    pub async fn settled(&mut self) -> Snapshot {
        let expected = self.server_digest();
        self.until("the server's state", |s| s.digest == expected)
            .await
    }

    /// Waits until every watcher has its watch open (a synced store may still be between its
    /// list and its watch).
    pub async fn watching(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while self.server.open_watches() < Kind::ALL.len() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watches did not open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Settles, checks that the file datastore reading the same objects yields the same
    /// cluster and the same maps, and returns the snapshot and the maps compiled for [`NODE`].
    pub async fn compiled(&mut self) -> (Snapshot, MapContents) {
        let snapshot = self.settled().await;
        fs::write(self.dir.join("cluster.yaml"), self.server.manifests()).expect("manifests");
        let from_files = self.files.load().expect("file datastore");
        assert_eq!(
            snapshot.cluster, from_files.cluster,
            "the Kubernetes and file datastores disagree on the same objects"
        );
        let scope = Scope {
            node_name: Some(NODE.to_owned()),
            host_addrs: Vec::new(),
        };
        let maps = Compiler::new().compile(&snapshot.cluster, &scope).maps;
        assert_eq!(
            maps,
            Compiler::new().compile(&from_files.cluster, &scope).maps
        );
        (snapshot, std::sync::Arc::unwrap_or_clone(maps))
    }
}

impl Drop for Datastore {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The real agent binary against the stand-in, in the machine's own namespace; killed and its
/// files removed on drop (also on a failed assertion).
pub struct Agent {
    pub child: Child,
    pub dir: PathBuf,
    pub pins: PathBuf,
    port: u16,
}

impl Agent {
    /// `name` names its directory and pin directory; `args` go after the usual ones.
    pub fn start(server: &ApiServer, name: &str, args: &[&str]) -> Agent {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("palisade-{name}-{id}"));
        let pins = PathBuf::from(format!("/sys/fs/bpf/palisade-{name}-{id}"));
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
            .args(["run", "--datastore", "kubernetes", "--node-name", NODE])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--bpffs")
            .arg(&pins)
            .args(["--interface-pattern", "palisade-test-no-such-interface"])
            // These tests run in the machine's own namespace: leave its interfaces alone.
            .args(["--uplinks", ""])
            .args(args)
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

    pub fn status(&self) -> Option<Status> {
        Status::read(&self.dir.join("status.json")).expect("status file")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// GET `path` on the agent's health endpoint: status code and body.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
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

    /// Waits up to `within` until `check` holds, or fails with the agent's log.
    pub async fn wait_for<F: AsyncFnMut(&Agent) -> bool>(
        &mut self,
        what: &str,
        within: Duration,
        mut check: F,
    ) {
        let deadline = tokio::time::Instant::now() + within;
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

/// The addresses in the pinned endpoints map.
pub fn pinned_endpoints(pins: &Path) -> BTreeSet<IpAddr> {
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

/// A metric's value in the agent's Prometheus text.
pub fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
