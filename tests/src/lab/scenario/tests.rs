use super::*;

const SEED: &str = include_str!("../../../../examples/seed/scenario.yaml");

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_yaml(text)
}

const TWO_PODS: &str = r#"
resources:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, labels: {app: a}}
    spec: {containers: [{name: c, image: x, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: b, namespace: default}
    spec: {containers: [{name: c, image: x}]}
    status: {podIP: 10.42.0.99, podIPs: [{ip: 10.42.0.99}, {ip: "fd00:42::99"}]}
"#;

fn with_steps(steps: &str) -> String {
    format!("{TWO_PODS}steps:\n{steps}")
}

#[test]
fn seed_parses() -> anyhow::Result<()> {
    let scenario = parse(SEED)?;
    let pods = scenario.pods()?;
    let names: Vec<_> = pods.iter().map(|p| p.pod.to_string()).collect();
    assert_eq!(
        names,
        ["default/frontend", "default/backend", "default/other"]
    );
    assert_eq!(scenario.steps.len(), 3);
    let ports = scenario.served_ports()?;
    let backend = PodRef::from_str("default/backend")?;
    assert_eq!(ports.get(&backend), Some(&BTreeSet::from([80, 8000])));
    let third = &scenario.steps[2];
    assert_eq!(third.apply.len(), 1);
    assert_eq!(
        third.apply[0].key.file_name(),
        "networkpolicy-default-allow-frontend-to-backend.yaml"
    );
    assert!(third.probes.iter().all(|p| p.protocol == Protocol::Tcp));
    Ok(())
}

#[test]
fn pod_details_are_read() -> anyhow::Result<()> {
    let scenario = parse(TWO_PODS)?;
    let pods = scenario.pods()?;
    assert_eq!(pods[0].ips, Vec::<IpAddr>::new());
    assert_eq!(
        pods[0].ports,
        BTreeSet::from([(53, Protocol::Udp), (80, Protocol::Tcp)])
    );
    assert_eq!(
        pods[1].ips,
        vec![
            IpAddr::from_str("10.42.0.99")?,
            IpAddr::from_str("fd00:42::99")?
        ]
    );
    Ok(())
}

#[test]
fn probe_defaults_and_fields() -> anyhow::Result<()> {
    let scenario = parse(&with_steps(
        r#"
  - probes:
      - {from: a, to: default/b, port: 8000, expect: allow}
      - {from: b, to: a, port: 53, protocol: UDP, family: 4, expect: deny, timeoutMs: 300}
      - {from: b, to: a, port: 80, protocol: SCTP, expect: allow}
"#,
    ))?;
    let probes = &scenario.steps[0].probes;
    assert_eq!(probes[0].protocol, Protocol::Tcp);
    assert_eq!(probes[0].family, Family::V4);
    assert_eq!(probes[0].timeout_ms(), DEFAULT_PROBE_TIMEOUT_MS);
    assert_eq!(probes[0].from, PodRef::from_str("default/a")?);
    assert_eq!(probes[1].protocol, Protocol::Udp);
    assert_eq!(probes[1].expect, Verdict::Deny);
    assert_eq!(probes[1].timeout_ms(), 300);
    assert_eq!(probes[2].protocol, Protocol::Sctp);
    assert_eq!(probes[2].protocol.number(), 132);
    assert_eq!(scenario.steps[0].display_name(1), "step 1");
    Ok(())
}

#[test]
fn unknown_fields_are_errors_with_their_path() {
    let err = parse(&with_steps(
        "  - probes: [{from: a, to: b, port: 1, expect: allow, protocl: UDP}]\n",
    ))
    .err()
    .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("parsing scenario at steps[0].probes[0].protocl")
    );
    let err = parse(&with_steps(
        "  - probes: [{from: a, to: b, port: 1, expect: maybe}]\n",
    ));
    assert!(
        matches!(err, Err(ScenarioError::Parse { at, .. }) if at == "steps[0].probes[0].expect")
    );
}

#[test]
fn references_are_checked() {
    let cases = [
        "  - probes: [{from: a, to: c, port: 1, expect: allow}]\n",
        "  - probes: [{from: a, to: b, port: 0, expect: allow}]\n",
        "  - probes: [{from: a, to: b, port: 1, expect: allow, family: 6}]\n",
        "  - probes: [{from: a, to: b, port: 1, expect: allow, timeoutMs: 0}]\n",
        "  - delete: [{kind: NetworkPolicy, name: nope}]\n",
        "  - removeFiles: [nope.yaml]\n",
        "  - writeFiles: [{name: ../x.yaml, content: ''}]\n",
        "  - writeFiles: [{name: .hidden.yaml, content: ''}]\n",
        "  - expectErrors: ['']\n",
        "  - apply: [{apiVersion: v1, kind: Pod, metadata: {name: new}, spec: {containers: []}}]\n",
    ];
    for case in cases {
        let result = parse(&with_steps(case));
        assert!(result.is_err(), "accepted: {case}");
    }
}

#[test]
fn family_must_be_4_or_6() {
    let result = parse(&with_steps(
        "  - probes: [{from: a, to: b, port: 1, expect: allow, family: 5}]\n",
    ));
    assert!(matches!(result, Err(ScenarioError::Parse { .. })));
}

#[test]
fn ipv6_probe_needs_both_ends() {
    let scenario = r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a}, status: {podIPs: [{ip: "fd00:42::1"}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: b}, status: {podIPs: [{ip: 10.42.0.5}, {ip: "fd00:42::2"}]}}
steps:
  - probes: [{from: a, to: b, port: 1, expect: allow, family: 6}]
"#;
    assert!(parse(scenario).is_ok());
    let v4 = scenario.replace("family: 6", "family: 4");
    assert!(matches!(parse(&v4), Err(ScenarioError::NoIpv4 { .. })));
}

#[test]
fn delete_and_files_follow_the_steps() -> anyhow::Result<()> {
    parse(&with_steps(
        r#"
  - apply: [{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p}, spec: {podSelector: {}}}]
    writeFiles: [{name: broken.yaml, content: "not: [valid"}]
  - delete: [{kind: NetworkPolicy, namespace: default, name: p}]
    removeFiles: [broken.yaml]
"#,
    ))?;
    Ok(())
}

#[test]
fn duplicates_and_undeclared_namespaces_are_errors() {
    let dup = format!(
        "{TWO_PODS}  - {{apiVersion: v1, kind: Pod, metadata: {{name: a}}, spec: {{containers: []}}}}\n"
    );
    assert!(matches!(parse(&dup), Err(ScenarioError::Duplicate { .. })));
    let undeclared =
        "resources:\n  - {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: prod}}\n";
    assert!(matches!(
        parse(undeclared),
        Err(ScenarioError::UndeclaredNamespace { .. })
    ));
    let declared =
        format!("{undeclared}  - {{apiVersion: v1, kind: Namespace, metadata: {{name: prod}}}}\n");
    assert!(parse(&declared).is_ok());
    let same_ip = "resources:\n  - {apiVersion: v1, kind: Pod, metadata: {name: a}, status: {podIP: 10.42.0.7}}\n  - {apiVersion: v1, kind: Pod, metadata: {name: b}, status: {podIP: 10.42.0.7}}\n";
    assert!(matches!(
        parse(same_ip),
        Err(ScenarioError::DuplicateAddress { .. })
    ));
}

#[test]
fn nodes_come_from_pods_and_host_endpoints() -> anyhow::Result<()> {
    let scenario = parse(
        r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: node-a, containers: []}}
  - {apiVersion: v1, kind: Pod, metadata: {name: b}, spec: {containers: []}}
  - {apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: h}, spec: {node: node-h, interfaceName: eth0, expectedIPs: [10.99.0.1]}}
steps:
  - apply:
      - {apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: g}, spec: {node: gw.example, expectedIPs: [10.99.0.2]}}
      - {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {x: y}}, spec: {containers: []}}
"#,
    )?;
    let pods = scenario.pods()?;
    assert_eq!(pods[0].node.as_deref(), Some("node-a"));
    assert_eq!(pods[1].node, None);
    let nodes: Vec<_> = scenario.nodes()?.into_iter().collect();
    assert_eq!(nodes, ["gw.example", "node-a", "node-h"]);
    Ok(())
}

#[test]
fn node_names_and_moves_are_checked() {
    let bad_names = [
        "resources: [{apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: Node_A}}]",
        "resources: [{apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: ../x}}]",
        "resources: [{apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: h}, spec: {node: -x}}]",
        "resources: [{apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {name: h}, spec: {node: 3}}]",
    ];
    for bad in bad_names {
        assert!(
            matches!(parse(bad), Err(ScenarioError::BadNodeName { .. })),
            "accepted: {bad}"
        );
    }
    let moved = r#"
resources:
  - {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: node-a}}
steps:
  - apply: [{apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {nodeName: node-b}}]
"#;
    assert!(matches!(
        parse(moved),
        Err(ScenarioError::PodNodeChanged { .. })
    ));
    let many: String = (0..=MAX_NODES)
            .map(|i| format!("  - {{apiVersion: v1, kind: Pod, metadata: {{name: p{i}}}, spec: {{nodeName: n{i}}}}}\n"))
            .collect();
    assert!(matches!(
        parse(&format!("resources:\n{many}")),
        Err(ScenarioError::TooManyNodes { .. })
    ));
}

/// Two pods (one dual-stack at 10.44.0.5 / fd00:44::5), then `extra` under `resources`.
fn with_host_endpoints(extra: &str) -> String {
    format!(
        r#"
resources:
  - {{apiVersion: v1, kind: Pod, metadata: {{name: a}}, spec: {{containers: []}}}}
  - {{apiVersion: v1, kind: Pod, metadata: {{name: b}}, spec: {{containers: []}}, status: {{podIPs: [{{ip: 10.44.0.5}}, {{ip: "fd00:44::5"}}]}}}}
{extra}"#
    )
}

fn hep(name: &str, spec: &str) -> String {
    format!(
        "  - {{apiVersion: projectcalico.org/v3, kind: HostEndpoint, metadata: {{name: {name}}}, spec: {spec}}}\n"
    )
}

#[test]
fn host_endpoints_are_read() -> anyhow::Result<()> {
    let text = with_host_endpoints(
        r#"  - apiVersion: projectcalico.org/v3
    kind: HostEndpoint
    metadata: {name: bm1}
    spec: {node: bm1, expectedIPs: [10.99.0.10, "fd00:99::10", 10.99.0.10]}
  - apiVersion: projectcalico.org/v3
    kind: HostEndpoint
    metadata: {name: bm1-lo}
    spec: {node: bm1, interfaceName: eth0, expectedIPs: [10.99.0.11]}
steps:
  # Re-applied unchanged but for labels, and a host endpoint only a step declares.
  - apply:
      - apiVersion: projectcalico.org/v3
        kind: HostEndpoint
        metadata: {name: bm1, labels: {x: y}}
        spec: {node: bm1, expectedIPs: [10.99.0.10, "fd00:99::10"]}
      - apiVersion: projectcalico.org/v3
        kind: HostEndpoint
        metadata: {name: gw}
        spec: {node: gw, interfaceName: bond0.7, expectedIPs: [10.98.0.1]}
    probes:
      - {from: a, to: hep/bm1, port: 22, expect: allow}
      - {from: hep/bm1, to: b, port: 53, protocol: UDP, family: 6, expect: allow}
      - {from: hep/gw, to: a, protocol: ICMP, expect: allow}
"#,
    );
    let scenario = parse(&text)?;
    let heps = scenario.host_endpoints()?;
    let summary: Vec<(&str, &str, &str, Vec<String>)> = heps
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.node.as_str(),
                h.interface.as_str(),
                h.ips.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "bm1",
                "bm1",
                "eth0",
                vec!["10.99.0.10".to_owned(), "fd00:99::10".to_owned()]
            ),
            ("bm1-lo", "bm1", "eth0", vec!["10.99.0.11".to_owned()]),
            ("gw", "gw", "bond0.7", vec!["10.98.0.1".to_owned()]),
        ]
    );
    assert_eq!(heps[0].reference().to_string(), "hep/bm1");
    assert_eq!(
        heps[0].ip(Family::V6),
        Some(IpAddr::from_str("fd00:99::10")?)
    );
    let nodes: Vec<_> = scenario.nodes()?.into_iter().collect();
    assert_eq!(nodes, ["bm1", "gw"]);
    let served = scenario.served_ports()?;
    assert_eq!(
        served.get(&PodRef::from_str("hep/bm1")?),
        Some(&BTreeSet::from([22]))
    );
    Ok(())
}

/// Every way a host endpoint cannot be built in the lab is refused before anything is
/// created, with the host endpoint named.
#[test]
fn unusable_host_endpoints_are_refused() {
    let refused = [
        ("no expectedIPs", hep("h", "{node: bm1}")),
        (
            "empty expectedIPs",
            hep("h", "{node: bm1, expectedIPs: []}"),
        ),
        ("no node", hep("h", "{expectedIPs: [10.99.0.1]}")),
        (
            "not an address",
            hep("h", "{node: bm1, expectedIPs: [10.99.0]}"),
        ),
        (
            "loopback",
            hep("h", "{node: bm1, expectedIPs: [127.0.0.1]}"),
        ),
        (
            "the lab's pod range",
            hep("h", "{node: bm1, expectedIPs: [10.42.0.200]}"),
        ),
        (
            "a pod's /24",
            hep("h", "{node: bm1, expectedIPs: [10.44.0.99]}"),
        ),
        (
            "a pod's /64",
            hep("h", "{node: bm1, expectedIPs: [\"fd00:44::99\"]}"),
        ),
        (
            "the IPv4 fabric",
            hep("h", "{node: bm1, expectedIPs: [198.18.0.9]}"),
        ),
        (
            "the IPv6 fabric",
            hep("h", "{node: bm1, expectedIPs: [\"fd00:fab::9\"]}"),
        ),
        (
            "`*`",
            hep(
                "h",
                "{node: bm1, interfaceName: \"*\", expectedIPs: [10.99.0.1]}",
            ),
        ),
        (
            "a pod's interface",
            hep(
                "h",
                "{node: bm1, interfaceName: plh0, expectedIPs: [10.99.0.1]}",
            ),
        ),
        (
            "too long",
            hep(
                "h",
                "{node: bm1, interfaceName: abcdefghijklmnop, expectedIPs: [10.99.0.1]}",
            ),
        ),
        (
            "a slash",
            hep(
                "h",
                "{node: bm1, interfaceName: a/b, expectedIPs: [10.99.0.1]}",
            ),
        ),
        (
            "two interfaces on one node",
            hep(
                "h",
                "{node: bm1, interfaceName: eth0, expectedIPs: [10.99.0.1]}",
            ) + &hep(
                "g",
                "{node: bm1, interfaceName: eth1, expectedIPs: [10.99.0.2]}",
            ),
        ),
        (
            "one address for two",
            hep("h", "{node: bm1, expectedIPs: [10.99.0.1]}")
                + &hep("g", "{node: bm2, expectedIPs: [10.99.0.1]}"),
        ),
    ];
    for (why, resources) in refused {
        let result = parse(&with_host_endpoints(&resources));
        let Err(e) = result else {
            panic!("accepted a host endpoint with {why}");
        };
        let message = e.to_string();
        assert!(
            message.contains("HostEndpoint"),
            "{why}: the error does not name the host endpoint: {message}"
        );
        let expected = match why {
            "no expectedIPs" | "empty expectedIPs" => {
                matches!(e, ScenarioError::HostEndpointNoAddresses { .. })
            }
            "no node" => matches!(e, ScenarioError::HostEndpointNoNode { .. }),
            "two interfaces on one node" => {
                matches!(e, ScenarioError::HostEndpointInterfaceClash { .. })
                    && message.contains("eth0")
                    && message.contains("eth1")
                    && message.contains("bm1")
            }
            "`*`" | "a pod's interface" | "too long" | "a slash" => {
                matches!(e, ScenarioError::HostEndpointBadInterface { .. })
            }
            _ => matches!(e, ScenarioError::HostEndpointBadAddress { .. }),
        };
        assert!(expected, "{why}: unexpected error {message}");
    }
}

#[test]
fn host_endpoint_changes_and_probes_are_checked() {
    let h = hep("h", "{node: bm1, expectedIPs: [10.99.0.1]}");
    let steps = |rest: &str| with_host_endpoints(&format!("{h}steps:\n{rest}"));
    let moved = steps(&format!(
        "  - apply:\n{}",
        hep("h", "{node: bm2, expectedIPs: [10.99.0.1]}").replace("  - ", "      - ")
    ));
    assert!(matches!(
        parse(&moved),
        Err(ScenarioError::HostEndpointChanged { .. })
    ));
    let readdressed = steps(&format!(
        "  - apply:\n{}",
        hep("h", "{node: bm1, expectedIPs: [10.99.0.2]}").replace("  - ", "      - ")
    ));
    assert!(matches!(
        parse(&readdressed),
        Err(ScenarioError::HostEndpointChanged { .. })
    ));
    let no_v6 = steps("  - probes: [{from: hep/h, to: b, port: 53, family: 6, expect: allow}]\n");
    assert!(matches!(
        parse(&no_v6),
        Err(ScenarioError::HostEndpointNoAddress { family: 6, .. })
    ));
    let unknown = steps("  - probes: [{from: a, to: hep/nope, port: 22, expect: allow}]\n");
    assert!(matches!(
        parse(&unknown),
        Err(ScenarioError::UnknownHostEndpoint { .. })
    ));
    // A pod hep/h beside HostEndpoint h: `hep/h` in a probe could be either.
    let ambiguous = format!(
        "{}  - {{apiVersion: v1, kind: Namespace, metadata: {{name: hep}}}}\n  - {{apiVersion: v1, kind: Pod, metadata: {{name: h, namespace: hep}}, spec: {{containers: []}}}}\nsteps:\n  - probes: [{{from: a, to: hep/h, port: 22, expect: allow}}]\n",
        with_host_endpoints(&h)
    );
    assert!(matches!(
        parse(&ambiguous),
        Err(ScenarioError::AmbiguousEndpoint { .. })
    ));
}

#[test]
fn manifests_need_kind_and_name() {
    for bad in [
        "resources: [{kind: Pod, metadata: {name: a}}]",
        "resources: [{apiVersion: v1, metadata: {name: a}}]",
        "resources: [{apiVersion: v1, kind: Pod, metadata: {}}]",
        "resources: [{apiVersion: v1, kind: Pod, metadata: {name: 3}}]",
        "resources: [[1, 2]]",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn network_policy_api_kinds_are_cluster_scoped() -> anyhow::Result<()> {
    for (api_version, kind) in [
        ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy"),
        ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy"),
        (
            "policy.networking.k8s.io/v1alpha1",
            "BaselineAdminNetworkPolicy",
        ),
    ] {
        let object = Object::from_manifest(serde_json::json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": "default"},
            "spec": {},
        }))?;
        assert_eq!(object.key.namespace, None, "{kind}");
        assert_eq!(
            object.key.file_name(),
            format!("{}-default.yaml", kind.to_lowercase())
        );
        // A namespace given anyway is ignored, as the API server ignores it.
        let reference = ObjectRef {
            kind: kind.to_owned(),
            namespace: Some("prod".to_owned()),
            name: "default".to_owned(),
        };
        assert_eq!(reference.key(), object.key);
        let manifest = crate::lab::datastore::complete(&object, &[])?;
        assert!(manifest["metadata"].get("namespace").is_none(), "{kind}");
    }
    // The namespaced NetworkPolicy still defaults to `default`.
    assert_eq!(
        ObjectKey::new("NetworkPolicy", None, "p")
            .namespace
            .as_deref(),
        Some(DEFAULT_NAMESPACE)
    );
    Ok(())
}

#[test]
fn file_names_follow_the_datastore_convention() {
    assert_eq!(
        ObjectKey::new("Namespace", Some("ignored"), "Prod").file_name(),
        "namespace-prod.yaml"
    );
    assert_eq!(
        ObjectKey::new("NetworkPolicy", None, "Deny").file_name(),
        "networkpolicy-default-deny.yaml"
    );
}
