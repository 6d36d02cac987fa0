//! `policy-agent explain` as a user runs it: a datastore directory with Calico and Kubernetes
//! resources, a packet named by pods, the walk in text and in JSON.

use std::process::Command;

use palisade_tests::scratch::Scratch;

const RESOURCES: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.42.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.21}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: blocked, labels: {list: blocked}}
spec: {nets: [192.0.2.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.block-list}
spec:
  tier: security
  selector: all()
  types: [Egress]
  egress:
    - action: Deny
      destination: {selector: list == 'blocked'}
    - action: Pass
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-shop, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from: [{podSelector: {}}]
      ports: [{port: http}]
"#;

fn explain(dir: &Scratch, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_policy-agent"))
        .arg("explain")
        .arg("--datastore")
        .arg(&dir.manifests)
        .args(args)
        .output()
        .expect("running policy-agent explain");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn scratch(test: &str) -> Scratch {
    let scratch = Scratch::new("explain", test);
    scratch.write("resources.yaml", RESOURCES);
    scratch
}

#[test]
fn explains_tiers_passes_and_the_deciding_rule() {
    let dir = scratch("walk");
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "shop/client",
            "--to",
            "shop/web",
            "--port",
            "8080",
        ],
    );
    assert!(ok, "{text}");
    for line in [
        "egress of shop/client:",
        "  tier security",
        "    GlobalNetworkPolicy security.block-list",
        "      egress[0] Deny  no match (the peer's side)",
        "      egress[1] Pass  matches",
        "    -> passed to the next tier",
        "  allow: the profile (no tier decided)",
        "ingress of shop/web:",
        "      ingress[0] Allow matches",
        "  allow: NetworkPolicy shop/web-from-shop ingress[0] (Allow)",
        "verdict: allow",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    // The block list denies, and the JSON says which rule.
    let (ok, json) = explain(
        &dir,
        &[
            "--from",
            "shop/client",
            "--to",
            "192.0.2.9",
            "--port",
            "443",
            "--json",
        ],
    );
    assert!(ok, "{json}");
    let value: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(value["allowed"], false);
    assert_eq!(
        value["egress"]["decided_by"],
        "GlobalNetworkPolicy security.block-list egress[0] (Deny)"
    );
    assert_eq!(value["ingress"]["checked"], false);

    // A port web does not name: its ingress tier ends in the default Deny.
    let (_, text) = explain(
        &dir,
        &["--from", "shop/client", "--to", "shop/web", "--port", "81"],
    );
    assert!(
        text.contains("deny: the default action of tier default"),
        "{text}"
    );
    assert!(text.contains("verdict: deny"), "{text}");
}

#[test]
fn bad_arguments_name_what_is_wrong() {
    let dir = scratch("errors");
    let (ok, text) = explain(
        &dir,
        &["--from", "shop/nope", "--to", "shop/web", "--port", "1"],
    );
    assert!(!ok);
    assert!(
        text.contains("--from") && text.contains("no pod shop/nope"),
        "{text}"
    );
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "shop/client",
            "--to",
            "shop/web",
            "--port",
            "1",
            "--family",
            "6",
        ],
    );
    assert!(!ok);
    assert!(text.contains("no IPv6 address"), "{text}");
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "shop/client",
            "--to",
            "shop/web",
            "--port",
            "1",
            "--protocol",
            "BOGUS",
        ],
    );
    assert!(!ok);
    assert!(text.contains("--protocol BOGUS"), "{text}");
}
