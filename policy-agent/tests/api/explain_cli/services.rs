//! Packets to Services: judged on each backend and its target port, and bad destinations.

use super::command::explain;
use super::service_manifests::services;

fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in\n{text}"
    );
}

#[test]
fn service_is_judged_on_the_target_port_not_the_service_port() {
    let dir = services("svc-target-port");
    // A rule on the target port (8000) allows the connection to the Service port 80.
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/api",
            "--port",
            "80",
        ],
    );
    assert!(ok, "{text}");
    for line in [
        "service app/api port 80/TCP: cluster IP 10.96.1.30, targetPort 8000",
        "backend 1 of 1: pod app/api (10.42.1.30) port 8000",
        "packet: protocol 6 10.42.1.10 -> 10.42.1.30 port 8000 (source port 32768)",
        "egress of app/client:",
        "      egress[0] Allow matches",
        "  allow: NetworkPolicy app/client-egress egress[0] (Allow)",
        "ingress of app/api:",
        "  allow: NetworkPolicy app/api-ingress ingress[0] (Allow)",
        "verdict: allow",
        "summary: allow for all 1 backend(s)",
    ] {
        has_line(&text, line);
    }
    // The heading comes first, then the backend's walk, then the summary.
    assert!(text.starts_with("service app/api port 80/TCP"), "{text}");
    assert!(
        text.ends_with("summary: allow for all 1 backend(s)\n"),
        "{text}"
    );

    // A rule on the Service port alone (80) allows nothing: the datapath sees port 8000.
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "app/client80",
            "--to",
            "service/app/api",
            "--port",
            "80",
        ],
    );
    assert!(ok, "{text}");
    for line in [
        "packet: protocol 6 10.42.1.11 -> 10.42.1.30 port 8000 (source port 32768)",
        "egress of app/client80:",
        "      egress[0] Allow no match (protocol or port)",
        "  deny: the default action of tier default",
        "verdict: deny",
        "summary: deny for all 1 backend(s)",
    ] {
        has_line(&text, line);
    }

    // The same in JSON: the Service, its port, and the backend's walk in explain's shape.
    let (ok, json) = explain(
        &dir,
        &[
            "--from",
            "app/client80",
            "--to",
            "service/app/api",
            "--port",
            "80",
            "--json",
        ],
    );
    assert!(ok, "{json}");
    let value: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(value["service"], "app/api");
    assert_eq!(value["cluster_ip"], "10.96.1.30");
    assert_eq!(value["port"], 80);
    assert_eq!(value["protocol"], "TCP");
    assert_eq!(value["target_port"], 8000);
    assert_eq!(value["summary"], "deny");
    let backends = value["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 1);
    let backend = &backends[0];
    assert_eq!(backend["backend"]["address"], "10.42.1.30");
    assert_eq!(backend["backend"]["port"], 8000);
    assert_eq!(backend["backend"]["pod"], "app/api");
    assert_eq!(backend["dst"], "10.42.1.30");
    assert_eq!(backend["port"], 8000);
    assert_eq!(backend["allowed"], false);
    assert_eq!(backend["egress"]["endpoint"], "app/client80");
    assert_eq!(
        backend["egress"]["decided_by"],
        "the default action of tier default"
    );
    assert_eq!(backend["ingress"]["allowed"], true);
}

#[test]
fn named_target_port_is_resolved_per_backend_pod() {
    let dir = services("svc-named-port");
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/web",
            "--port",
            "80",
        ],
    );
    assert!(ok, "{text}");
    for line in [
        "service app/web port 80/TCP (http): cluster IP 10.96.1.20, targetPort http",
        "backend 1 of 2: pod app/web-a (10.42.1.20) port 8080",
        "packet: protocol 6 10.42.1.10 -> 10.42.1.20 port 8080 (source port 32768)",
        "backend 2 of 2: pod app/web-b (10.42.1.21) port 9090",
        "packet: protocol 6 10.42.1.10 -> 10.42.1.21 port 9090 (source port 32768)",
        "ingress of app/web-a:",
        "ingress of app/web-b:",
        "summary: differs per backend: allow for app/web-a:8080; deny for app/web-b:9090",
    ] {
        has_line(&text, line);
    }
    // Each backend's walk ends in its own verdict: web-a's rule (8080) allows, web-b's port
    // (9090) is not in the egress policy.
    let verdicts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("verdict: "))
        .collect();
    assert_eq!(verdicts, ["verdict: allow", "verdict: deny"], "{text}");

    let (ok, json) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/web",
            "--port",
            "80",
            "--json",
        ],
    );
    assert!(ok, "{json}");
    let value: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(value["summary"], "differs");
    assert_eq!(value["port_name"], "http");
    assert_eq!(value["target_port"], "http");
    let backends = value["backends"].as_array().expect("backends");
    let got: Vec<(&str, u64, bool)> = backends
        .iter()
        .map(|b| {
            (
                b["backend"]["pod"].as_str().unwrap_or_default(),
                b["backend"]["port"].as_u64().unwrap_or_default(),
                b["allowed"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(got, [("app/web-a", 8080, true), ("app/web-b", 9090, false)]);
}

#[test]
fn selector_less_service_backends_are_addresses_matched_by_ip_block() {
    let dir = services("svc-selectorless");
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/external",
            "--port",
            "443",
        ],
    );
    assert!(ok, "{text}");
    for line in [
        "service app/external port 443/TCP (https): cluster IP 10.96.1.40, targetPort 6443",
        "backend 1 of 2: 192.0.2.10 port 6443 (not a pod)",
        "packet: protocol 6 10.42.1.10 -> 192.0.2.10 port 6443 (source port 32768)",
        "  allow: NetworkPolicy app/client-egress egress[2] (Allow)",
        "backend 2 of 2: 198.51.100.10 port 6443 (not a pod)",
        "ingress: not a local endpoint (not checked here)",
        "summary: differs per backend: allow for 192.0.2.10:6443; deny for 198.51.100.10:6443",
    ] {
        has_line(&text, line);
    }
    // The endpoint that is not ready is no backend.
    assert!(!text.contains("198.51.100.11"), "{text}");
}

#[test]
fn service_without_backends_has_no_verdict() {
    let dir = services("svc-empty");
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/empty",
            "--port",
            "80",
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(
        text,
        "service app/empty port 80/TCP: cluster IP 10.96.1.50, targetPort 80\n\
         no ready backends: kube-proxy rejects connections to 10.96.1.50 port 80 (no policy verdict)\n\
         summary: no backends: kube-proxy rejects the connection\n"
    );
    let (ok, json) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/empty",
            "--port",
            "80",
            "--json",
        ],
    );
    assert!(ok, "{json}");
    let value: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(value["summary"], "no backends");
    assert_eq!(value["backends"], serde_json::json!([]));
}

#[test]
fn bad_service_destinations_name_what_is_wrong() {
    let dir = services("svc-errors");
    let fails = |to: &str, port: &str, extra: &[&str], want: &str| {
        // An IPv6 client for --family 6 (app/client has no IPv6 address).
        let from = if extra.contains(&"6") {
            "fd00:42::10"
        } else {
            "app/client"
        };
        let mut args = vec!["--from", from, "--to", to, "--port", port];
        args.extend_from_slice(extra);
        let (ok, text) = explain(&dir, &args);
        assert!(!ok, "{to} {port} {extra:?} succeeded:\n{text}");
        assert!(
            text.contains("Error: --to"),
            "{to}: not about --to:\n{text}"
        );
        assert!(
            text.contains(want),
            "{to} {port} {extra:?}: want {want:?} in\n{text}"
        );
    };
    fails(
        "service/app/nope",
        "80",
        &[],
        "service/app/nope: no Service app/nope in the datastore",
    );
    fails(
        "service/app/web",
        "8080",
        &[],
        "service/app/web: no port 8080/TCP (its ports: 80/TCP (http), 53/UDP (dns))",
    );
    // The port exists, for another protocol.
    fails(
        "service/app/web",
        "53",
        &[],
        "no port 53/TCP (its ports: 80/TCP (http), 53/UDP (dns))",
    );
    fails(
        "service/app/api",
        "80",
        &["--family", "6"],
        "service/app/api: no IPv6 cluster IP (it has 10.96.1.30)",
    );
    fails(
        "service/app/headless",
        "80",
        &[],
        "service/app/headless: no cluster IP (a headless Service",
    );
    fails(
        "service/app/alias",
        "80",
        &[],
        "service/app/alias: an ExternalName Service",
    );
    fails(
        "service/app/api",
        "80",
        &["--protocol", "ICMP"],
        "--protocol 1: Services carry TCP, UDP and SCTP only",
    );

    // UDP to the Service's UDP port is explained (no slice names `dns`: no backends).
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/web",
            "--port",
            "53",
            "--protocol",
            "UDP",
        ],
    );
    assert!(ok, "{text}");
    has_line(
        &text,
        "service app/web port 53/UDP (dns): cluster IP 10.96.1.20, targetPort 53",
    );
    has_line(
        &text,
        "summary: no backends: kube-proxy rejects the connection",
    );
}

#[test]
fn local_internal_traffic_policy_uses_the_clients_node() {
    let dir = services("svc-local");
    // client runs on n1: kube-proxy there sends web-local's traffic to web-a only.
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "app/client",
            "--to",
            "service/app/web-local",
            "--port",
            "80",
        ],
    );
    assert!(ok, "{text}");
    has_line(
        &text,
        "internalTrafficPolicy Local: only endpoints on the client's node n1 are used",
    );
    has_line(
        &text,
        "backend 1 of 1: pod app/web-a (10.42.1.20) port 8080",
    );
    has_line(&text, "summary: allow for all 1 backend(s)");
    assert!(!text.contains("web-b"), "{text}");

    // A client that is no pod has no node, so no local endpoint.
    let (ok, text) = explain(
        &dir,
        &[
            "--from",
            "10.0.0.1",
            "--to",
            "service/app/web-local",
            "--port",
            "80",
        ],
    );
    assert!(ok, "{text}");
    has_line(
        &text,
        "summary: no backends: kube-proxy rejects the connection",
    );
}
