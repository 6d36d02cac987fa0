//! `policy-agent compile` prints the same maps from the stand-in as from files.

use crate::{
    harness::{Datastore, NODE},
    kubernetes_apiserver,
};

use std::{fs, path::PathBuf, time::Duration};

use kubernetes_apiserver::ApiServer;

use super::fixtures::seed;

#[tokio::test]
async fn compile_prints_the_same_maps_from_the_api_server_as_from_files() {
    let server = ApiServer::start().await;
    seed(&server);
    let h = Datastore::start(server, "kubernetes-test", Duration::from_millis(200));
    let kubeconfig = h.dir.join("kubeconfig");
    fs::write(&kubeconfig, h.server.kubeconfig()).expect("kubeconfig");
    let files = h.dir.join("manifests");
    fs::create_dir_all(&files).expect("manifest directory");
    fs::write(files.join("cluster.yaml"), h.server.manifests()).expect("manifests");

    let compile = |datastore: PathBuf| {
        let kubeconfig = kubeconfig.clone();
        // The server runs on this test's runtime: the binary is waited for off it.
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::agent_binary())
                .arg("compile")
                .arg("--datastore")
                .arg(datastore)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--node-name", NODE])
                .output()
                .expect("running policy-agent compile")
        })
    };
    let from_api = compile(PathBuf::from("kubernetes"))
        .await
        .expect("compile task");
    let from_files = compile(files).await.expect("compile task");
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        from_api.status.success(),
        "{}",
        String::from_utf8_lossy(&from_api.stderr)
    );
    assert!(from_files.status.success());
    assert!(
        stdout(&from_api).contains("endpoints (4):"),
        "{}",
        stdout(&from_api)
    );
    assert!(
        stdout(&from_api).contains("NetworkPolicy default/allow-frontend-to-backend ingress[0]")
    );
    assert_eq!(stdout(&from_api), stdout(&from_files));
}
