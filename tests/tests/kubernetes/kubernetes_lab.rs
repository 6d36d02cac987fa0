//! The seed scenario (examples/seed/) and a Services scenario (examples/services/
//! single-node.yaml: ClusterIPs of both families, a NodePort, a named targetPort, hairpin
//! with and without policy)
//! through the netns lab with the real agent on real traffic, their objects (Services and
//! the lab's EndpointSlices too) published through the stand-in Kubernetes API server
//! instead of the file datastore: the agent runs `--datastore kubernetes` in the lab's node
//! namespace, where the stand-in listens on loopback; each step waits until the agent's
//! status names exactly the server's object versions, then the probes run. One stand-in per
//! scenario, one scenario after the other (a process has one publisher).
//!
//! Privileged (namespaces, BPF): needs root, a failure under CI=true.

use crate::kubernetes_apiserver;

use std::{
    ffi::OsString,
    fs::File,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
};

use anyhow::Context as _;
use kubernetes_apiserver::{ApiServer, Kind};
use palisade_tests::lab::{
    LabOptions, Scenario,
    datastore::{self, Publisher},
    run_scenario,
    scenario::ObjectKey,
};
use policy_agent::datastore::kubernetes::digest_versions;
use serde_json::{Value, json};

/// The node every lab pod is scheduled to, and the agent's `--node-name`.
const NODE: &str = "lab-node";

/// The API server of the scenario running now (a new one for each scenario).
type Current = Arc<Mutex<ApiServer>>;

struct StandIn {
    server: Current,
    runtime: tokio::runtime::Runtime,
    kubeconfig: PathBuf,
}

impl StandIn {
    fn server(&self) -> std::sync::MutexGuard<'_, ApiServer> {
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Publisher for StandIn {
    fn apply(&self, manifest: &Value) {
        let mut object = manifest.clone();
        if object["kind"] == "Pod" {
            object["spec"]["nodeName"] = json!(NODE);
        }
        self.server().apply(object);
    }

    fn delete(&self, key: &ObjectKey) {
        let kind = match key.kind.as_str() {
            "Namespace" => Kind::Namespace,
            "Pod" => Kind::Pod,
            "NetworkPolicy" => Kind::NetworkPolicy,
            "Service" => Kind::Service,
            "EndpointSlice" => Kind::EndpointSlice,
            other => panic!("the stand-in does not serve {other}"),
        };
        let namespace = key.namespace.as_deref().unwrap_or_default();
        self.server().delete(kind, namespace, &key.name);
    }

    fn digest(&self) -> String {
        let versions = self.server().versions();
        digest_versions(
            versions
                .iter()
                .map(|(k, ns, n, v)| (k.as_str(), ns.as_str(), n.as_str(), v.as_str())),
        )
    }

    fn agent_args(&self, node: &File) -> anyhow::Result<Vec<OsString>> {
        // Bound in the node namespace (where the agent runs) by a thread that enters it.
        let node = node.try_clone()?;
        let listener = std::thread::spawn(move || -> anyhow::Result<std::net::TcpListener> {
            nix::sched::setns(&node, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("entering the node namespace")?;
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the binding thread panicked"))??;
        {
            let _runtime = self.runtime.enter();
            self.server().listen(listener);
        }
        std::fs::write(&self.kubeconfig, self.server().kubeconfig())?;
        Ok(vec![
            "--datastore".into(),
            "kubernetes".into(),
            "--kubeconfig".into(),
            self.kubeconfig.clone().into(),
            "--node-name".into(),
            NODE.into(),
        ])
    }
}

#[test]
fn scenarios_are_enforced_through_the_api_server() -> anyhow::Result<()> {
    let Some(_turn) = crate::agent_turn_blocking("scenarios_are_enforced_through_the_api_server")
    else {
        return Ok(());
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let kubeconfig = std::env::temp_dir().join(format!(
        "palisade-kubernetes-lab-{}-{}.kubeconfig",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let current: Current = Arc::new(Mutex::new(ApiServer::unbound()));
    let stand_in = StandIn {
        server: current.clone(),
        runtime,
        kubeconfig: kubeconfig.clone(),
    };
    if datastore::publish_through(Box::new(stand_in)).is_err() {
        anyhow::bail!("another lab in this process publishes already");
    }
    let result = ["seed/scenario.yaml", "services/single-node.yaml"]
        .iter()
        .try_for_each(|file| {
            *current.lock().unwrap_or_else(PoisonError::into_inner) = ApiServer::unbound();
            run_through_the_api_server(file)
        });
    let _ = std::fs::remove_file(&kubeconfig);
    result
}

/// Runs `examples/<file>` with every object published through the current stand-in.
fn run_through_the_api_server(file: &str) -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    let scenario = Scenario::from_file(&path)?;
    let options = LabOptions {
        agent: Some(crate::agent_binary()),
        no_agent: false,
    };
    let report = run_scenario(&scenario, &options).with_context(|| file.to_owned())?;
    for step in &report.steps {
        eprintln!("{}", step.render_table());
    }
    assert_eq!(report.steps.len(), scenario.steps.len(), "{file}");
    // Programmed means the agent's status carried the digest of the server's object versions,
    // which only the Kubernetes datastore reports: the agent read the API server.
    assert!(
        report.steps.iter().all(|s| s.programmed_ms.is_some()),
        "{file}: every step must be programmed by the agent"
    );
    assert!(
        report.all_ok(),
        "{file}: mismatches:\n{}\nagent log:\n{}",
        report.mismatches().join("\n"),
        report.agent_log_tail.join("\n")
    );
    Ok(())
}
