//! The walk through tiers and policies, the pending walk of staged policies, bad arguments.

use tempfile::TempDir;

use crate::scratch_dir;

use super::command::explain;

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

fn scratch(test: &str) -> TempDir {
    let scratch = scratch_dir(&format!("explain-{test}"));
    std::fs::write(scratch.path().join("resources.yaml"), RESOURCES).expect("writing a manifest");
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

/// A staged Delete of web's only policy, and a staged deny in front of it: the enforced walk
/// is unchanged, the pending one is the cluster with them applied.
const STAGED: &str = r#"
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: web-from-shop, namespace: shop}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: quarantine-web}
spec:
  order: 10
  selector: app == 'web'
  types: [Ingress]
  ingress:
    - action: Deny
      protocol: TCP
      destination: {ports: [8080]}
"#;

#[test]
fn staged_policies_give_a_pending_walk_beside_the_enforced_one() {
    let dir = scratch("staged");
    std::fs::write(dir.path().join("staged.yaml"), STAGED).expect("writing a manifest");
    let args = [
        "--from",
        "shop/client",
        "--to",
        "shop/web",
        "--port",
        "8080",
    ];
    // Without --staged, the enforced walk only: staged policies change nothing.
    let (ok, text) = explain(&dir, &args);
    assert!(ok, "{text}");
    assert!(text.contains("verdict: allow"), "{text}");
    assert!(!text.contains("quarantine-web"), "{text}");

    let (ok, text) = explain(&dir, &[&args[..], &["--staged"]].concat());
    assert!(ok, "{text}");
    let (enforced, pending) = text
        .split_once("pending (with the 2 staged policies applied; not enforced):")
        .expect("a pending section");
    assert!(enforced.contains("verdict: allow"), "{text}");
    assert!(
        pending.contains("deny: GlobalNetworkPolicy quarantine-web ingress[0] (Deny)"),
        "{text}"
    );
    assert!(pending.contains("verdict: deny"), "{text}");
    assert!(!pending.contains("web-from-shop"), "{text}");

    let (ok, json) = explain(&dir, &[&args[..], &["--staged", "--json"]].concat());
    assert!(ok, "{json}");
    let value: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(value["enforced"]["allowed"], true);
    assert_eq!(value["pending"]["allowed"], false);
    assert_eq!(value["staged_policies"], 2);
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
        text.contains("--from") && text.contains("shop/nope: no such pod"),
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
