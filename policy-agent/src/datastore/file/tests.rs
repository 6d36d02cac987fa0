use std::fs;

use super::*;
use crate::model::TargetPort;

const POLICY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{protocol: TCP, port: 80}]
"#;

fn scratch(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("palisade-datastore-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn an_invalid_object_is_reported_with_file_object_and_field_and_the_rest_loads() {
    let dir = scratch("invalid");
    fs::write(dir.join("good.yaml"), POLICY).expect("write");
    fs::write(
        dir.join("bad.yaml"),
        POLICY
            .replace("name: web", "name: bad")
            .replace("protocol: TCP", "protocol: ICMP"),
    )
    .expect("write");
    let snapshot = FileDatastore::new(&dir).load().expect("load");
    assert_eq!(snapshot.cluster.policies.len(), 1);
    assert!(
        snapshot
            .cluster
            .policies
            .contains_key(&("default".into(), "web".into()))
    );
    assert_eq!(snapshot.errors.len(), 1);
    let error = &snapshot.errors[0];
    assert_eq!(error.source, "bad.yaml");
    assert_eq!(error.object.as_deref(), Some("NetworkPolicy default/bad"));
    assert_eq!(
        error.field.as_deref(),
        Some("spec.ingress[0].ports[0].protocol")
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn type_errors_name_the_field() {
    let dir = scratch("types");
    fs::write(
        dir.join("bad.yaml"),
        POLICY.replace("port: 80", "port: [80]"),
    )
    .expect("write");
    let snapshot = FileDatastore::new(&dir).load().expect("load");
    assert!(snapshot.cluster.policies.is_empty());
    assert_eq!(
        snapshot.errors[0].field.as_deref(),
        Some("spec.ingress[0].ports[0].port")
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_edit_keeps_the_previously_accepted_version() {
    let dir = scratch("keep");
    let mut store = FileDatastore::new(&dir);
    fs::write(dir.join("web.yaml"), POLICY).expect("write");
    let before = store.load().expect("load");
    assert_eq!(before.cluster.policies.len(), 1);

    // The object becomes invalid: the old version stays.
    fs::write(
        dir.join("web.yaml"),
        POLICY.replace("port: 80", "port: 70000"),
    )
    .expect("write");
    let invalid = store.load().expect("load");
    assert_eq!(invalid.cluster.policies, before.cluster.policies);
    assert!(invalid.errors[0].message.contains("previously accepted"));

    // The file stops being YAML: everything it held stays.
    fs::write(dir.join("web.yaml"), "spec: [").expect("write");
    let garbage = store.load().expect("load");
    assert_eq!(garbage.cluster.policies, before.cluster.policies);
    assert!(garbage.errors[0].message.contains("not valid YAML"));

    // Deleting the file deletes its objects.
    fs::remove_file(dir.join("web.yaml")).expect("remove");
    assert!(store.load().expect("load").cluster.policies.is_empty());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn duplicates_and_unknown_kinds_are_reported() {
    let dir = scratch("dupes");
    fs::write(dir.join("a.yaml"), POLICY).expect("write");
    fs::write(
        dir.join("b.yaml"),
        format!("{POLICY}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n"),
    )
    .expect("write");
    fs::write(dir.join(".hidden.yaml"), "not: [even yaml").expect("write");
    let snapshot = FileDatastore::new(&dir).load().expect("load");
    assert_eq!(snapshot.cluster.policies.len(), 1);
    let messages: Vec<String> = snapshot.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("b.yaml") && m.contains("duplicate"))
    );
    assert!(messages.iter().any(|m| m.contains("ConfigMap")
        && m.contains("v1 Service")
        && m.contains("discovery.k8s.io/v1 EndpointSlice")));
    let _ = fs::remove_dir_all(&dir);
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [10.42.0.11], nodeName: node-a}]
ports: [{name: http, port: 8080}]
"#;

#[test]
fn services_and_endpoint_slices_load_and_a_broken_edit_keeps_the_accepted_version() {
    let dir = scratch("services");
    let mut store = FileDatastore::new(&dir);
    fs::write(dir.join("web.yaml"), SERVICES).expect("write");
    let before = store.load().expect("load");
    assert!(before.errors.is_empty(), "{:?}", before.errors);
    let key = ("shop".to_owned(), "web".to_owned());
    let service = &before.cluster.services[&key];
    assert_eq!(
        service.ports[0].target_port,
        TargetPort::Name("http".into())
    );
    let slice = &before.cluster.endpoint_slices[&("shop".to_owned(), "web-1".to_owned())];
    assert_eq!(slice.service.as_deref(), Some("web"));
    assert_eq!(slice.ports[0].port, 8080);

    fs::write(
        dir.join("web.yaml"),
        SERVICES
            .replace("targetPort: http}", "targetPort: http_x}")
            .replace("[10.42.0.11]", "[fd00::11]"),
    )
    .expect("write");
    let invalid = store.load().expect("load");
    assert_eq!(invalid.cluster.services, before.cluster.services);
    assert_eq!(
        invalid.cluster.endpoint_slices,
        before.cluster.endpoint_slices
    );
    let rejected: Vec<_> = invalid
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [
            (Some("Service shop/web"), Some("spec.ports[0].targetPort")),
            (
                Some("EndpointSlice shop/web-1"),
                Some("endpoints[0].addresses[0]")
            ),
        ]
    );
    assert!(invalid.errors.iter().all(|e| {
        e.message
            .ends_with("the previously accepted version stays in force")
    }));
    let _ = fs::remove_dir_all(&dir);
}

const CALICO: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: default-deny}
spec:
  selector: all()
  types: [Ingress]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: broken}
spec:
  selector: "app =="
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: default}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    source: {ports: [1024, client]}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
"#;

#[test]
fn calico_resources_load_beside_kubernetes_ones_and_errors_name_the_field() {
    let dir = scratch("calico");
    fs::write(dir.join("k8s.yaml"), POLICY).expect("write");
    fs::write(dir.join("calico.yaml"), CALICO).expect("write");
    let snapshot = FileDatastore::new(&dir).load().expect("load");
    // The Kubernetes NetworkPolicy default/web and nothing of Calico's by that key.
    assert_eq!(snapshot.cluster.policies.len(), 1);
    let calico = &snapshot.cluster.calico;
    assert_eq!(
        calico.policies.keys().collect::<Vec<_>>(),
        vec![&(String::new(), "default-deny".to_owned())]
    );
    assert!(calico.tiers.contains_key("security"));
    let messages: Vec<String> = snapshot.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let broken = &snapshot.errors[0];
    assert_eq!(
        broken.object.as_deref(),
        Some("GlobalNetworkPolicy (projectcalico.org/v3) broken")
    );
    assert_eq!(broken.field.as_deref(), Some("spec.selector"));
    assert!(broken.message.contains("(at "), "{}", broken.message);
    let unsupported = &snapshot.errors[1];
    assert_eq!(
        unsupported.object.as_deref(),
        Some("NetworkPolicy (projectcalico.org/v3) default/web")
    );
    assert_eq!(
        unsupported.field.as_deref(),
        Some("spec.ingress[0].source.ports[1]")
    );
    let _ = fs::remove_dir_all(&dir);
}

const CNP: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard, namespace: ignored}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{networks: [10.9.0.0/16]}]}]
"#;

#[test]
fn cluster_policies_are_cluster_scoped_and_a_broken_edit_keeps_the_accepted_one() {
    let dir = scratch("cnp");
    let mut store = FileDatastore::new(&dir);
    fs::write(dir.join("guard.yaml"), CNP).expect("write");
    let before = store.load().expect("load");
    assert!(before.errors.is_empty(), "{:?}", before.errors);
    let key = (ApiKind::ClusterNetworkPolicy, "guard".to_owned());
    assert!(before.cluster.cluster_policies.contains_key(&key));
    // Its translation is what the compiler reads.
    assert!(
        before
            .cluster
            .calico
            .policies
            .contains_key(&(String::new(), "kcnp.kube-admin.guard".to_owned()))
    );

    fs::write(
        dir.join("guard.yaml"),
        CNP.replace("priority: 10", "priority: 1001"),
    )
    .expect("write");
    let after = store.load().expect("load");
    assert_eq!(
        after.cluster.cluster_policies,
        before.cluster.cluster_policies
    );
    let error = &after.errors[0];
    assert_eq!(error.object.as_deref(), Some("ClusterNetworkPolicy guard"));
    assert_eq!(error.field.as_deref(), Some("spec.priority"));

    let states = crate::status::cluster_policy_states(&after.cluster, &after.errors);
    assert_eq!(states.len(), 1);
    assert!(!states[0].accepted && states[0].enforced);
    assert_eq!(states[0].priority, Some(10));
    assert!(
        states[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("field spec.priority"))
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_file_past_the_size_cap_keeps_what_it_held() {
    let dir = scratch("huge");
    let mut store = FileDatastore::new(&dir);
    let path = dir.join("web.yaml");
    fs::write(&path, POLICY).expect("write");
    let before = store.load().expect("load");
    assert_eq!(before.cluster.policies.len(), 1);
    // A runaway writer: the file grows past the cap (sparse, so the test writes nothing).
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(digest::MAX_FILE_BYTES + 1))
        .expect("grow");
    let after = store.load().expect("load");
    assert_eq!(after.cluster.policies, before.cluster.policies);
    assert_eq!(after.errors.len(), 1);
    assert_eq!(after.errors[0].source, "web.yaml");
    assert!(after.errors[0].message.starts_with("larger than 64 MiB"));
    let _ = fs::remove_dir_all(&dir);
}
