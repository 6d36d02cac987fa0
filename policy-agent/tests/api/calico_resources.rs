//! Calico v3 resources read from multi-document YAML files in `tests/data/calico/`: the valid
//! file covers every kind and checks what the compiler will see; the invalid file checks that
//! each error names its resource, field and (for selectors) position, and that no invalid
//! resource stops the others.

use std::{cmp::Ordering, net::IpAddr};

use ipnet::IpNet;
use policy_agent::{
    calico::{
        resources::{
            Action, CalicoResource, EndpointPort, IcmpMatch, IpVersion, Kind, NetworkSet, Policy,
            PolicyTypes, PortMatch, Protocol, ResourceError, TierAction, parse_documents,
        },
        selector::{Scope, Selector},
    },
    model::Labels,
};

fn load(file: &str) -> Vec<Result<CalicoResource, ResourceError>> {
    let path = format!("{}/tests/data/calico/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_documents(&text)
}

fn valid() -> Vec<CalicoResource> {
    load("valid.yaml")
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("valid.yaml: {e}")))
        .collect()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn selector(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn policy(resource: &CalicoResource) -> &Policy {
    match resource {
        CalicoResource::GlobalNetworkPolicy(p) | CalicoResource::NetworkPolicy(p) => p,
        other => panic!("not a policy: {other:?}"),
    }
}

fn set(resource: &CalicoResource) -> &NetworkSet {
    match resource {
        CalicoResource::GlobalNetworkSet(s) | CalicoResource::NetworkSet(s) => s,
        other => panic!("not a network set: {other:?}"),
    }
}

#[test]
fn valid_file_has_every_kind_in_order() {
    let resources = valid();
    let summary: Vec<(Kind, Option<&str>, &str)> = resources
        .iter()
        .map(|r| (r.kind(), r.namespace(), r.name()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Kind::Tier, None, "security"),
            (Kind::GlobalNetworkPolicy, None, "security.allow-db"),
            (Kind::GlobalNetworkPolicy, None, "host-ingress"),
            (Kind::NetworkPolicy, Some("prod"), "isolate"),
            (Kind::GlobalNetworkSet, None, "partners"),
            (Kind::NetworkSet, Some("ci"), "build-farm"),
            (Kind::HostEndpoint, None, "node1-eth0"),
            // From the `kind: List` document; a namespaced item without a namespace lands in
            // `default`, as with calicoctl.
            (Kind::NetworkPolicy, Some("default"), "egress-only"),
            (Kind::GlobalNetworkSet, None, "empty-set"),
        ]
    );
}

#[test]
fn tier() {
    let resources = valid();
    let CalicoResource::Tier(tier) = &resources[0] else {
        panic!("{:?}", resources[0]);
    };
    assert_eq!(tier.order, Some(100.0));
    assert_eq!(tier.default_action, TierAction::Pass);
}

#[test]
fn global_network_policy_in_a_tier() {
    let resources = valid();
    let p = policy(&resources[1]);
    assert_eq!(p.tier, "security");
    assert_eq!(p.order, Some(10.5));
    assert_eq!(p.selector, selector("role == 'db' && !has(canary)"));
    assert_eq!(
        p.namespace_selector,
        Some(selector("projectcalico.org/name in {'prod', 'staging'}"))
    );
    assert_eq!(p.service_account_selector, Some(selector("team == 'data'")));
    // No `types`: both directions, since both have rules.
    assert_eq!(
        p.types,
        PolicyTypes {
            ingress: true,
            egress: true
        }
    );
    assert!(!p.do_not_track && !p.pre_dnat && !p.apply_on_forward);
    assert_eq!(p.ingress.len(), 3);

    let allow = &p.ingress[0];
    assert_eq!(allow.action, Action::Allow);
    assert_eq!(allow.protocol, Some(Protocol::TCP));
    assert_eq!(allow.source.selector, Some(selector("role == 'api'")));
    assert_eq!(allow.source.namespace_selector, Some(Selector::Global));
    assert_eq!(allow.source.not_nets, vec![net("10.0.0.0/8")]);
    assert_eq!(
        allow.destination.ports,
        vec![
            PortMatch::Range {
                first: 6379,
                last: 6379
            },
            PortMatch::Range {
                first: 8000,
                last: 8080
            },
            PortMatch::Named("redis".to_owned()),
        ]
    );
    assert_eq!(
        allow.annotations.get("from").map(String::as_str),
        Some("api")
    );

    let log = &p.ingress[1];
    assert_eq!(log.action, Action::Log);
    assert_eq!(log.protocol, Some(Protocol::ICMP));
    assert_eq!(log.ip_version, Some(IpVersion::V4));
    assert_eq!(
        log.icmp,
        Some(IcmpMatch {
            icmp_type: Some(8),
            code: Some(0)
        })
    );

    let pass = &p.ingress[2];
    assert_eq!(pass.action, Action::Pass);
    assert_eq!(pass.not_protocol, Some(Protocol::UDP));
    assert_eq!(
        pass.not_icmp,
        Some(IcmpMatch {
            icmp_type: Some(3),
            code: None
        })
    );
    let accounts = pass.source.service_accounts.as_ref();
    assert_eq!(
        accounts.map(|a| a.names.clone()),
        Some(vec!["backup".to_owned()])
    );
    assert_eq!(
        accounts.and_then(|a| a.selector.clone()),
        Some(selector("app starts with 'backup-'"))
    );

    let deny = &p.egress[0];
    assert_eq!(deny.action, Action::Deny);
    // Host bits are cleared.
    assert_eq!(deny.destination.nets, vec![net("192.168.1.0/24")]);
    assert_eq!(
        deny.destination.not_ports,
        vec![PortMatch::Range {
            first: 53,
            last: 53
        }]
    );
}

#[test]
fn pre_dnat_host_policy_and_defaults() {
    let resources = valid();
    let p = policy(&resources[2]);
    assert_eq!(p.tier, "default");
    assert_eq!(p.order, None);
    assert!(p.pre_dnat && p.apply_on_forward && !p.do_not_track);
    assert_eq!(
        p.types,
        PolicyTypes {
            ingress: true,
            egress: false
        }
    );
    assert_eq!(p.ingress[0].protocol, Some(Protocol::SCTP));
    assert_eq!(
        p.ingress[0].destination.ports,
        vec![PortMatch::Range {
            first: 9000,
            last: 9000
        }]
    );

    // No rules at all: Ingress only. Empty selector: all().
    let isolate = policy(&resources[3]);
    assert_eq!(isolate.namespace.as_deref(), Some("prod"));
    assert_eq!(isolate.selector, Selector::All);
    assert_eq!(
        isolate.types,
        PolicyTypes {
            ingress: true,
            egress: false
        }
    );

    // Egress rules only: Egress only.
    let egress_only = policy(&resources[7]);
    assert_eq!(
        egress_only.types,
        PolicyTypes {
            ingress: false,
            egress: true
        }
    );
}

#[test]
fn policies_sort_by_order_then_name() {
    let resources = valid();
    let mut policies: Vec<&Policy> = resources
        .iter()
        .filter(|r| matches!(r.kind(), Kind::GlobalNetworkPolicy | Kind::NetworkPolicy))
        .map(policy)
        .collect();
    policies.sort_by(|a, b| a.cmp_order(b));
    let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    // 1, 10.5, then the two without an order by name.
    assert_eq!(
        names,
        vec![
            "egress-only",
            "security.allow-db",
            "host-ingress",
            "isolate"
        ]
    );
    assert_eq!(policies[2].cmp_order(policies[3]), Ordering::Less);
}

#[test]
fn network_sets_and_global_namespace_selector() {
    let resources = valid();
    let partners = set(&resources[4]);
    assert_eq!(partners.namespace, None);
    assert_eq!(
        partners.nets,
        vec![
            net("203.0.113.0/24"),
            net("198.51.100.9/32"),
            net("2001:db8::/32")
        ]
    );
    let farm = set(&resources[5]);
    assert_eq!(farm.namespace.as_deref(), Some("ci"));
    assert_eq!(
        farm.labels,
        Labels::from([("example.com/role".to_owned(), "builders".to_owned())])
    );
    assert!(set(&resources[8]).nets.is_empty());

    // `namespaceSelector: global()` picks the global set, not the namespaced one.
    let rule = &policy(&resources[1]).ingress[0];
    let global = rule.source.namespace_selector.as_ref();
    assert_eq!(
        global.map(|s| s.evaluate(&partners.labels, Scope::GLOBAL)),
        Some(true)
    );
    assert_eq!(
        global.map(|s| s.evaluate(&Labels::new(), Scope::NAMESPACED)),
        Some(false)
    );
}

#[test]
fn host_endpoint() {
    let resources = valid();
    let CalicoResource::HostEndpoint(hep) = &resources[6] else {
        panic!("{:?}", resources[6]);
    };
    assert_eq!(hep.node, "node1");
    assert_eq!(hep.interface_name.as_deref(), Some("eth0"));
    let ips: Vec<IpAddr> = ["192.0.2.10", "2001:db8::10"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_eq!(hep.expected_ips, ips);
    assert_eq!(
        hep.ports,
        vec![EndpointPort {
            name: "ssh".to_owned(),
            port: 22,
            protocol: Protocol::TCP
        }]
    );
    assert_eq!(
        hep.labels.get("host-endpoint").map(String::as_str),
        Some("true")
    );
    assert!(selector("has(host-endpoint)").evaluate(&hep.labels, Scope::GLOBAL));
}

/// `(document, resource, [(field, message, position)])` for an error; `Ok(name)` otherwise.
type Expected = Result<
    &'static str,
    (
        usize,
        &'static str,
        Vec<(&'static str, &'static str, Option<usize>)>,
    ),
>;

#[test]
fn invalid_file_reports_every_resource_and_stops_at_none() {
    let expected: Vec<Expected> = vec![
        Err((
            1,
            "GlobalNetworkPolicy bad-selector",
            vec![(
                "spec.ingress[2].source.selector",
                "at 8: expected a quoted string after '==', found 'f'",
                Some(8),
            )],
        )),
        Err((
            2,
            "GlobalNetworkPolicy bad-range",
            vec![(
                "spec.ingress[0].destination.ports[1]",
                "'90:80': the range starts at 90, after its end 80",
                None,
            )],
        )),
        Err((
            3,
            "GlobalNetworkPolicy prednat-egress",
            vec![
                (
                    "spec.preDNAT",
                    "preDNAT and doNotTrack cannot both be true",
                    None,
                ),
                (
                    "spec.egress",
                    "a preDNAT policy cannot have egress rules",
                    None,
                ),
                (
                    "spec.applyOnForward",
                    "must be true when preDNAT or doNotTrack is true",
                    None,
                ),
            ],
        )),
        Ok("ok-tier"),
        Err((
            5,
            "NetworkPolicy prod/unknown-field",
            vec![(
                "spec.doNotTrack",
                "unknown field `doNotTrack`, expected one of `tier`, `order`, `selector`, \
                 `serviceAccountSelector`, `types`, `ingress`, `egress`",
                None,
            )],
        )),
        Err((
            6,
            "GlobalNetworkPolicy wrong-prefix",
            vec![(
                "metadata.name",
                "a policy in tier 'security' must be named 'security.<name>', not 'wrong-prefix'",
                None,
            )],
        )),
        Err((
            7,
            "GlobalNetworkPolicy bad-rule",
            vec![
                ("spec.types[1]", "'Ingress' is listed more than once", None),
                (
                    "spec.ingress[0].action",
                    "'allow' is not an action (Allow, Deny, Log or Pass)",
                    None,
                ),
                (
                    "spec.ingress[0].protocol",
                    "'tcp' is not a protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number \
                     1-255)",
                    None,
                ),
                (
                    "spec.ingress[1].icmp.code",
                    "an ICMP code needs an ICMP type",
                    None,
                ),
                (
                    "spec.ingress[1].ipVersion",
                    "protocol ICMP needs ipVersion 4",
                    None,
                ),
                (
                    "spec.ingress[1].destination.ports",
                    "rules that match ports must set protocol to TCP, UDP, SCTP or UDPLite",
                    None,
                ),
                (
                    "spec.ingress[2].source.selector",
                    "global() can only be used in a rule's namespaceSelector",
                    None,
                ),
                (
                    "spec.ingress[2].source.namespaceSelector",
                    "global() cannot be combined with other selectors",
                    None,
                ),
                (
                    "spec.ingress[2].destination.nets[1]",
                    "'not-a-cidr' is not a CIDR",
                    None,
                ),
                (
                    "spec.ingress[2].destination.nets",
                    "2001:db8::/32: the rule mixes IPv4 and IPv6 CIDRs (see \
                     spec.ingress[2].source.nets)",
                    None,
                ),
            ],
        )),
        Err((
            8,
            "HostEndpoint lost",
            vec![
                ("spec.node", "required", None),
                (
                    "spec.interfaceName",
                    "a host endpoint needs an interfaceName or expectedIPs",
                    None,
                ),
                ("spec.ports[0].protocol", "must be TCP, UDP or SCTP", None),
            ],
        )),
        Err((
            9,
            "Tier loose",
            vec![(
                "spec.defaultAction",
                "'Allow' is not a tier default action (Deny or Pass)",
                None,
            )],
        )),
        Err((
            10,
            "(no kind) (no name)",
            vec![(
                "",
                "invalid YAML: did not find expected ',' or '}' at line 4 column 1, while \
                 parsing a flow mapping at line 3 column 11",
                None,
            )],
        )),
        Err((
            11,
            "WorkloadEndpoint pod",
            vec![(
                "kind",
                "unsupported kind 'WorkloadEndpoint' (expected one of GlobalNetworkPolicy, \
                 NetworkPolicy, Tier, GlobalNetworkSet, NetworkSet, HostEndpoint)",
                None,
            )],
        )),
        Err((
            12,
            "NetworkSet ci/old-api",
            vec![(
                "apiVersion",
                "'crd.projectcalico.org/v1' (expected 'projectcalico.org/v3')",
                None,
            )],
        )),
        Ok("still-read"),
    ];

    let results = load("invalid.yaml");
    assert_eq!(results.len(), expected.len(), "{results:#?}");
    for (i, (result, expected)) in results.iter().zip(&expected).enumerate() {
        match (result, expected) {
            (Ok(resource), Ok(name)) => assert_eq!(resource.name(), *name, "result {i}"),
            (Err(error), Err((document, resource, errors))) => {
                assert_eq!(error.document, *document, "result {i}: {error}");
                assert_eq!(error.resource.to_string(), *resource, "result {i}");
                let got: Vec<(&str, &str, Option<usize>)> = error
                    .errors
                    .iter()
                    .map(|e| (e.field.as_str(), e.message.as_str(), e.position))
                    .collect();
                assert_eq!(&got, errors, "result {i}");
            }
            (got, want) => panic!("result {i}: got {got:?}, expected {want:?}"),
        }
    }
}

#[test]
fn error_display_names_document_resource_field_and_position() {
    let results = load("invalid.yaml");
    let first = results.first().and_then(|r| r.as_ref().err());
    assert_eq!(
        first.map(ToString::to_string).as_deref(),
        Some(
            "document 1 (line 1): GlobalNetworkPolicy bad-selector: \
             spec.ingress[2].source.selector: at 8: expected a quoted string after '==', \
             found 'f'"
        )
    );
    let range = results.get(1).and_then(|r| r.as_ref().err());
    assert_eq!(range.map(|e| e.line), Some(14));
}

/// The fields and messages of the errors of a one-resource document.
fn errors_of(yaml: &str) -> Vec<(String, String)> {
    let mut results = parse_documents(yaml);
    assert_eq!(results.len(), 1, "{yaml}");
    match results.remove(0) {
        Ok(resource) => panic!("accepted: {resource:?}"),
        Err(e) => e.errors.into_iter().map(|f| (f.field, f.message)).collect(),
    }
}

fn fields_of(yaml: &str) -> Vec<String> {
    errors_of(yaml)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

#[test]
fn services_match_defaults_its_namespace_and_keeps_source_ports() {
    let yaml = r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: svc, namespace: prod}
spec:
  ingress:
  - action: Allow
    protocol: TCP
    source:
      services: {name: frontend}
      ports: [1024]
    destination:
      ports: [8080]
  egress:
  - action: Allow
    destination:
      services: {name: db, namespace: data}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: gsvc}
spec:
  egress:
  - action: Deny
    protocol: UDP
    source:
      selector: app == 'x'
    destination:
      services: {name: dns, namespace: kube-system}
"#;
    let resources: Vec<CalicoResource> = parse_documents(yaml)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let np = policy(&resources[0]);
    let source = np.ingress[0]
        .source
        .services
        .as_ref()
        .expect("source.services");
    assert_eq!(
        (source.name.as_str(), source.namespace.as_str()),
        ("frontend", "prod")
    );
    assert_eq!(
        np.ingress[0].source.ports,
        vec![PortMatch::Range {
            first: 1024,
            last: 1024
        }]
    );
    let destination = np.egress[0]
        .destination
        .services
        .as_ref()
        .expect("services");
    assert_eq!(
        (destination.name.as_str(), destination.namespace.as_str()),
        ("db", "data")
    );
    let gnp = policy(&resources[1]);
    let destination = gnp.egress[0]
        .destination
        .services
        .as_ref()
        .expect("services");
    assert_eq!(
        (destination.name.as_str(), destination.namespace.as_str()),
        ("dns", "kube-system")
    );
}

#[test]
fn services_match_restrictions_name_the_field() {
    let np = |rules: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p, \
             namespace: prod}}\nspec:\n{rules}"
        )
    };
    // Only on the peer side.
    assert_eq!(
        errors_of(&np(
            "  egress:\n  - action: Allow\n    source: {services: {name: a}}\n"
        )),
        vec![(
            "spec.egress[0].source.services".to_owned(),
            "not allowed in an egress rule's source".to_owned()
        )]
    );
    assert_eq!(
        fields_of(&np(
            "  ingress:\n  - action: Allow\n    destination: {services: {name: a}}\n"
        )),
        vec!["spec.ingress[0].destination.services"]
    );
    // A name is required.
    assert_eq!(
        fields_of(&np(
            "  egress:\n  - action: Allow\n    destination: {services: {}}\n"
        )),
        vec!["spec.egress[0].destination.services.name"]
    );
    assert_eq!(
        fields_of(&np(
            "  egress:\n  - action: Allow\n    destination: {services: {name: Bad_Name}}\n"
        )),
        vec!["spec.egress[0].destination.services.name"]
    );
    // Nothing else that matches addresses on the same side.
    for (field, value) in [
        ("selector", "\"app == 'a'\""),
        ("notSelector", "\"app == 'a'\""),
        ("namespaceSelector", "all()"),
        ("nets", "[10.0.0.0/8]"),
        ("notNets", "[10.0.0.0/8]"),
        ("serviceAccounts", "{names: [a]}"),
    ] {
        let errors = errors_of(&np(&format!(
            "  ingress:\n  - action: Allow\n    source: {{services: {{name: a}}, {field}: \
             {value}}}\n"
        )));
        assert_eq!(
            errors,
            vec![(
                format!("spec.ingress[0].source.{field}"),
                "cannot be specified with services on the same side of a rule".to_owned()
            )],
            "{field}"
        );
    }
    // A destination Service brings its ports.
    for field in ["ports", "notPorts"] {
        assert_eq!(
            fields_of(&np(&format!(
                "  egress:\n  - action: Allow\n    protocol: TCP\n    destination: {{services: \
                 {{name: a}}, {field}: [80]}}\n"
            ))),
            vec![format!("spec.egress[0].destination.{field}")],
            "{field}"
        );
    }
    // A GlobalNetworkPolicy has no namespace to default to.
    let gnp = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\n\
               spec:\n  ingress:\n  - action: Allow\n    source: {services: {name: a}}\n";
    assert_eq!(
        errors_of(gnp),
        vec![(
            "spec.ingress[0].source.services.namespace".to_owned(),
            "must specify a namespace (a GlobalNetworkPolicy has none of its own)".to_owned()
        )]
    );
    // Unknown fields are refused as the schema refuses them.
    let unknown = errors_of(&np(
        "  egress:\n  - action: Allow\n    destination: {services: {name: a, port: 80}}\n",
    ));
    assert_eq!(unknown.len(), 1);
    assert!(unknown[0].1.contains("unknown field `port`"), "{unknown:?}");
}
