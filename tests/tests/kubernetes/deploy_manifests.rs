//! Every manifest in deploy/, parsed into the typed k8s-openapi objects, and checked for what
//! matters: each file round-trips through its type (no misspelled or misplaced field is
//! silently dropped), kustomize lists every file, the ClusterRole grants exactly the requests
//! the real watchers make (recorded by the stand-in API server), the binding names the
//! DaemonSet's service account, and the DaemonSet has its mounts, capabilities, downward-API
//! node name, and probes on the port the agent is told to serve. The optional Calico CRDs
//! (`calico-crds.yaml`, not in the kustomization) define exactly the resources the watchers
//! request from `crd.projectcalico.org`.

use crate::kubernetes_apiserver;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::PathBuf,
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::DaemonSet,
        core::v1::{Container, Namespace, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::util::intstr::IntOrString,
};
use kubernetes_apiserver::{ApiServer, Kind};
use policy_agent::datastore::kubernetes::{self, KubernetesDatastore};
use serde::{Deserialize as _, Serialize, de::DeserializeOwned};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Optional, for clusters without Calico: not applied by the kustomization (it would replace a
/// Calico install's own CRDs); several documents.
const CALICO_CRDS: &str = "calico-crds.yaml";

/// Every YAML file in deploy/ but [`CALICO_CRDS`] as JSON values, by file name.
fn manifests() -> BTreeMap<String, Value> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(deploy_dir()).expect("deploy/") {
        let path = entry.expect("deploy/ entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned();
        if !name.ends_with(".yaml") || name == CALICO_CRDS {
            continue;
        }
        let text = fs::read_to_string(&path).expect("manifest");
        let value: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} is not one YAML document: {e}"));
        files.insert(name, value);
    }
    files
}

/// Parses `value` as `T`, and checks that nothing was lost on the way: serialized back, it is
/// the same document.
fn typed<T: DeserializeOwned + Serialize>(name: &str, value: &Value) -> T {
    let object: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{name} does not parse as its type: {e}"));
    let back = serde_json::to_value(&object).expect("serializing");
    assert_eq!(
        &back, value,
        "{name}: fields the type does not know were dropped"
    );
    object
}

struct Deploy {
    namespace: Namespace,
    service_account: ServiceAccount,
    role: ClusterRole,
    binding: ClusterRoleBinding,
    daemonset: DaemonSet,
    kustomize_namespace: String,
}

fn deploy() -> Deploy {
    let files = manifests();
    let mut namespace = None;
    let mut service_account = None;
    let mut role = None;
    let mut binding = None;
    let mut daemonset = None;
    let mut kustomization = None;
    for (name, value) in &files {
        match value["kind"].as_str() {
            Some("Namespace") => namespace = Some(typed::<Namespace>(name, value)),
            Some("ServiceAccount") => service_account = Some(typed(name, value)),
            Some("ClusterRole") => role = Some(typed(name, value)),
            Some("ClusterRoleBinding") => binding = Some(typed(name, value)),
            Some("DaemonSet") => daemonset = Some(typed(name, value)),
            Some("Kustomization") => kustomization = Some(value.clone()),
            other => panic!("{name}: unexpected kind {other:?}"),
        }
    }
    let kustomization = kustomization.expect("kustomization.yaml");
    let listed: BTreeSet<&str> = kustomization["resources"]
        .as_array()
        .expect("kustomization resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let files: BTreeSet<&str> = files
        .keys()
        .map(String::as_str)
        .filter(|n| *n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files, "kustomization.yaml lists every manifest");
    Deploy {
        namespace: namespace.expect("a Namespace"),
        service_account: service_account.expect("a ServiceAccount"),
        role: role.expect("a ClusterRole"),
        binding: binding.expect("a ClusterRoleBinding"),
        daemonset: daemonset.expect("a DaemonSet"),
        kustomize_namespace: kustomization["namespace"]
            .as_str()
            .expect("kustomization namespace")
            .to_owned(),
    }
}

/// What the real watchers request, recorded by the stand-in API server.
async fn watcher_requests() -> BTreeSet<(String, String, String)> {
    let server = ApiServer::start().await;
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let store = KubernetesDatastore::start(server.client(), kubernetes::Options::default(), tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !store.is_synced() || server.open_watches() < Kind::ALL.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watchers did not start"
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), changes.recv()).await;
    }
    server.requests()
}

#[tokio::test]
async fn the_cluster_role_grants_exactly_what_the_watchers_request() {
    let d = deploy();
    let mut granted = BTreeSet::new();
    for rule in d.role.rules.as_deref().unwrap_or_default() {
        assert!(rule.resource_names.is_none(), "no per-object rules");
        assert!(rule.non_resource_urls.is_none());
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let requested = watcher_requests().await;
    assert_eq!(granted, requested);
    // And that is read-only.
    assert!(granted.iter().all(|(_, _, v)| v == "list" || v == "watch"));

    let role_ref = &d.binding.role_ref;
    assert_eq!(role_ref.kind, "ClusterRole");
    assert_eq!(Some(&role_ref.name), d.role.metadata.name.as_ref());
    let subjects = d.binding.subjects.as_deref().unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(
        Some(&subjects[0].name),
        d.service_account.metadata.name.as_ref()
    );
    assert_eq!(subjects[0].namespace.as_ref(), Some(&d.kustomize_namespace));
    assert_eq!(
        d.service_account.metadata.namespace.as_ref(),
        Some(&d.kustomize_namespace)
    );
    assert_eq!(
        d.namespace.metadata.name.as_ref(),
        Some(&d.kustomize_namespace)
    );
}

#[test]
fn the_optional_calico_crds_define_what_the_watchers_read_and_are_not_kustomized() {
    let text = fs::read_to_string(deploy_dir().join(CALICO_CRDS)).expect(CALICO_CRDS);
    let mut defined = BTreeSet::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).expect("a YAML document");
        let crd: CustomResourceDefinition = typed(CALICO_CRDS, &value);
        let spec = &crd.spec;
        assert_eq!(spec.group, "crd.projectcalico.org");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{}.{}", spec.names.plural, spec.group).as_str())
        );
        assert_eq!(spec.versions.len(), 1);
        let version = &spec.versions[0];
        assert_eq!(version.name, "v1");
        assert!(version.served && version.storage);
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("a schema");
        let spec_schema = schema
            .properties
            .as_ref()
            .and_then(|p| p.get("spec"))
            .expect("a spec schema");
        assert_eq!(spec_schema.x_kubernetes_preserve_unknown_fields, Some(true));
        defined.insert((
            spec.names.kind.clone(),
            spec.names.plural.clone(),
            spec.scope == "Namespaced",
        ));
    }
    let watched: BTreeSet<_> = Kind::CALICO
        .into_iter()
        .map(|k| {
            (
                k.name().to_owned(),
                k.rbac().1.to_owned(),
                k.is_namespaced(),
            )
        })
        .collect();
    assert_eq!(defined, watched);

    let kustomization = &manifests()["kustomization.yaml"];
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("kustomization resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!listed.contains(&CALICO_CRDS));
}

fn agent_container(d: &Deploy) -> Container {
    let spec = d
        .daemonset
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_eq!(spec.containers.len(), 1);
    spec.containers[0].clone()
}

/// The value following `flag` in the container's arguments.
fn arg<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

#[test]
fn the_daemonset_runs_the_agent_with_what_it_needs_and_no_more() {
    let d = deploy();
    let spec = d
        .daemonset
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_eq!(spec.host_network, Some(true));
    assert_eq!(
        spec.service_account_name.as_ref(),
        d.service_account.metadata.name.as_ref()
    );
    assert_eq!(
        d.daemonset.metadata.namespace.as_ref(),
        Some(&d.kustomize_namespace)
    );
    // Tolerates every taint: an operator Exists without a key or effect.
    assert!(
        spec.tolerations
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|t| {
                t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()
            })
    );

    let container = agent_container(&d);
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("run"));
    assert_eq!(arg(&args, "--datastore"), Some("kubernetes"));
    // The node name from the downward API.
    assert_eq!(arg(&args, "--node-name"), Some("$(NODE_NAME)"));
    let env = container.env.clone().unwrap_or_default();
    let field = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(field("NODE_NAME").as_deref(), Some("spec.nodeName"));
    assert_eq!(arg(&args, "--metrics-host"), Some("$(HOST_IP)"));
    assert_eq!(field("HOST_IP").as_deref(), Some("status.hostIP"));

    // Capabilities instead of privileged.
    let security = container.security_context.clone().expect("securityContext");
    assert_ne!(security.privileged, Some(true));
    let capabilities = security.capabilities.expect("capabilities");
    let added: BTreeSet<String> = capabilities.add.unwrap_or_default().into_iter().collect();
    let expected: BTreeSet<String> = ["BPF", "NET_ADMIN", "SYS_ADMIN", "PERFMON"]
        .map(String::from)
        .into();
    assert_eq!(added, expected);
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]));

    // bpffs and BTF from the host, where the agent looks for them.
    let volumes = spec.volumes.clone().unwrap_or_default();
    let mounts = container.volume_mounts.clone().unwrap_or_default();
    let host_mount = |host: &str| {
        let volume = volumes
            .iter()
            .find(|v| v.host_path.as_ref().is_some_and(|h| h.path == host))
            .unwrap_or_else(|| panic!("a hostPath volume for {host}"));
        mounts
            .iter()
            .find(|m| m.name == volume.name)
            .unwrap_or_else(|| panic!("{host} mounted"))
            .clone()
    };
    let bpffs = host_mount("/sys/fs/bpf");
    assert_eq!(bpffs.mount_path, "/sys/fs/bpf");
    assert_ne!(bpffs.read_only, Some(true), "the agent pins maps there");
    let pins = arg(&args, "--bpffs").expect("--bpffs");
    assert!(
        pins.starts_with("/sys/fs/bpf/"),
        "{pins} is on the host's bpffs"
    );
    let btf = host_mount("/sys/kernel/btf");
    assert_eq!(btf.mount_path, "/sys/kernel/btf");
    assert_eq!(btf.read_only, Some(true));
    // With a read-only root, the status file needs a writable mount.
    if security.read_only_root_filesystem == Some(true)
        && let Some(status) = arg(&args, "--status-file")
    {
        assert!(
            mounts
                .iter()
                .any(|m| status.starts_with(&format!("{}/", m.mount_path))),
            "{status} is on a writable mount"
        );
    }

    // Probes on the port the agent serves, at the paths it answers.
    let port: i32 = arg(&args, "--metrics-port")
        .expect("--metrics-port")
        .parse()
        .expect("a port number");
    let ports = container.ports.clone().unwrap_or_default();
    let resolve = |p: &IntOrString| match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            ports
                .iter()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    };
    for (probe, path) in [
        (container.liveness_probe.clone(), "/healthz"),
        (container.readiness_probe.clone(), "/readyz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get)
            .unwrap_or_else(|| panic!("an httpGet probe for {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(resolve(&get.port), port, "{path} probes the agent's port");
        assert!(
            get.host.is_none(),
            "probes go to the node's address, where the agent binds"
        );
    }

    let resources = container.resources.clone().expect("resources");
    let requests = resources.requests.unwrap_or_default();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    assert!(resources.limits.unwrap_or_default().contains_key("memory"));
}

#[test]
fn the_dockerfile_builds_the_ebpf_object_and_the_agent_in_stages() {
    let dockerfile = fs::read_to_string(deploy_dir().join("Dockerfile")).expect("Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "multi-stage");
    // The eBPF toolchain (policy-agent's build.rs builds and embeds the object with it).
    assert!(dockerfile.contains("bpf-linker"));
    assert!(dockerfile.contains("rust-src"));
    assert!(dockerfile.contains("-p policy-agent"));
    assert!(dockerfile.contains("COPY --from=build"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/policy-agent\"]"));
    // The image's binary is what the DaemonSet's arguments are given to.
    let container = agent_container(&deploy());
    assert!(container.command.is_none(), "the entrypoint is the agent");
}
