//! Every ported `f.It(...)` of upstream's `network_policy.go`, in upstream's order, translated
//! call for call: the policies as the Go builders make them, the changes between checks, and
//! each `ValidateOrFail` with its `Reachability` as upstream constructs it.
//!
//! Upstream names namespaces `nsX`, `nsY`, `nsZ` (the generated names of `x`, `y`, `z`); here
//! they are `X`, `Y`, `Z`. Pod addresses used by ipBlock cases come from [`pod_ip`], standing
//! for upstream's `pod.Status.PodIP`.

use super::model::{
    Case, Change, Context, Peer, Policy, Reachability, Set, create, egress_rule, empty_selector,
    gen_with_pod_match_label, gen_with_pod_selector, ingress_rule, ip_block_peer, match_expression,
    match_labels, peer, pod, pod_ip, port_name, port_number, port_protocol, sctp, tcp, udp, update,
};
use super::yaml::Yaml;
use crate::lab::scenario::Protocol::{Sctp as SCTP, Tcp as TCP, Udp as UDP};

const X: &str = "x";
const Y: &str = "y";
const Z: &str = "z";
const NS_LABEL: &str = super::model::NAMESPACE_NAME_LABEL;

/// `NewReachability(k8s.AllPodStrings(), true)`
fn all_true() -> Reachability {
    Reachability::new(true)
}

/// `{matchLabels: {kubernetes.io/metadata.name: ns}}`
fn ns_named(ns: &str) -> Yaml {
    match_labels(&[(NS_LABEL, ns)])
}

/// `{matchLabels: {pod: name}}`
fn pod_labelled(name: &str) -> Yaml {
    match_labels(&[("pod", name)])
}

/// `GenNetworkPolicyWithNameAndPodMatchLabel(name, {"pod": target}, SetSpecIngressRules(rule))`
fn ingress_to_pod(name: &str, target: &str, rule: Yaml) -> Policy {
    gen_with_pod_match_label(name, &[("pod", target)], vec![Set::Ingress(vec![rule])])
}

/// `GenNetworkPolicyWithNameAndPodMatchLabel(name, {"pod": target}, SetSpecEgressRules(rule))`
fn egress_from_pod(name: &str, target: &str, rule: Yaml) -> Policy {
    gen_with_pod_match_label(name, &[("pod", target)], vec![Set::Egress(vec![rule])])
}

fn cidr32(p: super::model::PodStr) -> String {
    format!("{}/32", pod_ip(p))
}

/// All ported cases, in upstream's order. The SCTP-context ones are BPF-only
/// ([`Case::bpf_only`](super::model::Case::bpf_only)).
pub fn all() -> Vec<Case> {
    let mut cases = tcp_cases();
    cases.extend(udp_cases());
    cases.extend(sctp_cases());
    cases
}

#[allow(clippy::too_many_lines)]
fn tcp_cases() -> Vec<Case> {
    let xa = pod(X, "a");
    let xb = pod(X, "b");
    let xc = pod(X, "c");
    let ya = pod(Y, "a");
    let yb = pod(Y, "b");
    let zb = pod(Z, "b");
    let za = pod(Z, "a");
    let allow_port_81 = ingress_to_pod(
        "allow-client-a-via-ns-selector",
        "a",
        ingress_rule(
            vec![peer(None, Some(ns_named(Y)))],
            vec![port_number(Some("TCP"), 81)],
        ),
    );
    let reachability_allow = all_true()
        .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
        .expect_peer(Peer::ns(Y), Peer::pod(X, "a"), true)
        .expect_peer(Peer::ns(Z), Peer::pod(X, "a"), false);

    let mutate = gen_with_pod_match_label(
        "allow-all-mutate-to-deny-all",
        &[],
        vec![Set::Ingress(vec![ingress_rule(vec![], vec![])])],
    );
    let mut mutated = mutate.clone();
    // policy.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
    mutated.ingress = Some(Vec::new());
    let mut together = ingress_to_pod(
        "allow-client-a-via-pod-selector",
        "a",
        ingress_rule(vec![peer(Some(pod_labelled("b")), None)], vec![]),
    );
    // add an egress rule on to it... (don't use named ports)
    together.egress = Some(vec![egress_rule(vec![], vec![port_number(None, 80)])]);
    together.policy_types = vec!["Egress", "Ingress"];
    let from_xa = ingress_rule(
        vec![peer(Some(pod_labelled("a")), Some(ns_named(X)))],
        vec![],
    );
    // podServerAllowCIDR := fmt.Sprintf("%s/4", podA.Status.PodIP): x/a's address with /4
    // (host bits set, as upstream writes it); except x/b's podIP/32.
    let cidr_except = egress_from_pod(
        "allow-client-a-via-cidr-egress-rule",
        "a",
        egress_rule(
            vec![ip_block_peer(&format!("{}/4", pod_ip(xa)), &[&cidr32(xb)])],
            vec![],
        ),
    );
    vec![
        Case::new(
            "should support a 'default-deny-ingress' policy",
            &[TCP],
            &[80],
        )
        .step(
            "create x/deny-ingress",
            vec![create(
                X,
                gen_with_pod_selector("deny-ingress", empty_selector(), vec![Set::Ingress(vec![])]),
            )],
            vec![tcp(
                80,
                all_true().expect_peer(Peer::any(), Peer::ns(X), false),
            )],
        ),

        Case::new("should support a 'default-deny-all' policy", &[TCP], &[80]).step(
            "create x/deny-all",
            vec![create(
                X,
                gen_with_pod_selector(
                    "deny-all",
                    empty_selector(),
                    vec![Set::Ingress(vec![]), Set::Egress(vec![])],
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_peer(Peer::any(), Peer::ns(X), false)
                    .expect_peer(Peer::ns(X), Peer::any(), false),
            )],
        ),

        Case::new(
            "should enforce policy to allow traffic from pods within server namespace based on PodSelector",
            &[TCP],
            &[80],
        )
        .step(
            "create x/x-a-allows-x-b",
            vec![create(
                X,
                ingress_to_pod(
                    "x-a-allows-x-b",
                    "a",
                    ingress_rule(vec![peer(Some(pod_labelled("b")), None)], vec![]),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(xb, xa, true),
            )],
        ),

        Case::new(
            "should enforce policy to allow ingress traffic for a target",
            &[TCP],
            &[80],
        )
        .step(
            "having a deny all ingress policy; create x/deny-all and x/allow-all-to-a",
            vec![
                create(
                    X,
                    gen_with_pod_selector("deny-all", empty_selector(), vec![Set::Ingress(vec![])]),
                ),
                create(
                    X,
                    ingress_to_pod(
                        "allow-all-to-a",
                        "a",
                        ingress_rule(
                            vec![peer(Some(empty_selector()), Some(empty_selector()))],
                            vec![],
                        ),
                    ),
                ),
            ],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, true)
                    .expect_all_ingress(xb, false)
                    .expect_all_ingress(xc, false),
            )],
        ),

        Case::new(
            "should enforce policy to allow ingress traffic from pods in all namespaces",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-from-another-ns",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-from-another-ns",
                    "a",
                    // NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{}}
                    ingress_rule(vec![peer(None, Some(match_labels(&[])))], vec![]),
                ),
            )],
            vec![tcp(80, all_true())],
        ),

        Case::new(
            "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-client-a-via-ns-selector",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-client-a-via-ns-selector",
                    "a",
                    ingress_rule(vec![peer(None, Some(ns_named(Y)))], vec![]),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
                    .expect_peer(Peer::ns(Z), Peer::pod(X, "a"), false),
            )],
        ),

        Case::new(
            "should enforce policy based on PodSelector with MatchExpressions",
            &[TCP],
            &[80],
        )
        .step(
            "create x/x-a-allows-x-b",
            vec![create(
                X,
                ingress_to_pod(
                    "x-a-allows-x-b",
                    "a",
                    ingress_rule(
                        vec![peer(Some(match_expression("pod", "In", &["b"])), None)],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(xb, xa, true),
            )],
        ),

        Case::new(
            "should enforce policy based on NamespaceSelector with MatchExpressions",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-ns-y-match-selector",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-ns-y-match-selector",
                    "a",
                    ingress_rule(
                        vec![peer(None, Some(match_expression(NS_LABEL, "In", &[Y])))],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
                    .expect_peer(Peer::ns(Z), Peer::pod(X, "a"), false),
            )],
        ),

        Case::new(
            "should enforce policy based on PodSelector or NamespaceSelector",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-ns-y-match-selector",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-ns-y-match-selector",
                    "a",
                    ingress_rule(
                        vec![
                            peer(None, Some(match_expression(NS_LABEL, "NotIn", &[X]))),
                            peer(Some(pod_labelled("b")), None),
                        ],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(
                80,
                all_true().expect(xa, xa, false).expect(xc, xa, false),
            )],
        ),

        Case::new(
            "should enforce policy based on PodSelector and NamespaceSelector",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-ns-y-podselector-and-nsselector",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-ns-y-podselector-and-nsselector",
                    "a",
                    ingress_rule(
                        vec![peer(
                            Some(pod_labelled("b")),
                            Some(match_expression(NS_LABEL, "NotIn", &[X])),
                        )],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(yb, xa, true)
                    .expect(zb, xa, true),
            )],
        ),

        Case::new(
            "should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-ns-y-z-pod-b-c",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-ns-y-z-pod-b-c",
                    "a",
                    ingress_rule(
                        vec![peer(
                            Some(match_expression("pod", "In", &["b", "c"])),
                            Some(match_expression(NS_LABEL, "NotIn", &[X])),
                        )],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
                    .expect(ya, xa, false)
                    .expect(za, xa, false),
            )],
        ),

        Case::new(
            "should enforce policy based on any PodSelectors",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-ns-x-pod-b-c",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-ns-x-pod-b-c",
                    "a",
                    ingress_rule(
                        vec![
                            peer(Some(pod_labelled("b")), None),
                            peer(Some(pod_labelled("c")), None),
                        ],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(xb, xa, true)
                    .expect(xc, xa, true),
            )],
        ),

        Case::new(
            "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-ns-y-pod-a-via-namespace-pod-selector",
            vec![create(X, allow_ns_y_pod_a())],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(ya, xa, true),
            )],
        ),


        Case::new("should enforce policy based on Ports", &[TCP], &[81]).step(
            "Creating a network allowPort81Policy which only allows allow listed namespaces (y) to connect on exactly one port (81)",
            vec![create(X, allow_port_81.clone())],
            vec![tcp(81, reachability_allow.clone())],
        ),
        Case::new(
            "should enforce multiple, stacked policies with overlapping podSelectors",
            &[TCP],
            &[80, 81],
        )
        .step(
            "Creating a network allowPort81Policy which only allows allow listed namespaces (y) to connect on exactly one port (81); Verifying traffic on port 81.",
            vec![create(X, allow_port_81)],
            vec![tcp(81, reachability_allow.clone())],
        )
        .step(
            "Verifying traffic on port 80.",
            vec![],
            vec![tcp(80, all_true().expect_all_ingress(xa, false))],
        )
        .step(
            "create x/allow-client-a-via-ns-selector-80; Verifying that we can add a policy to unblock port 80",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-client-a-via-ns-selector-80",
                    "a",
                    ingress_rule(
                        vec![peer(None, Some(ns_named(Y)))],
                        vec![port_number(Some("TCP"), 80)],
                    ),
                ),
            )],
            vec![tcp(80, reachability_allow)],
        ),

        Case::new("should support allow-all policy", &[TCP], &[80, 81])
            .step(
                "Creating a network policy which allows all traffic.; Testing pods can connect to both ports when an 'allow-all' policy is present. (port 80)",
                vec![create(
                    X,
                    gen_with_pod_match_label("allow-all", &[], vec![Set::Ingress(vec![ingress_rule(vec![], vec![])])]),
                )],
                vec![tcp(80, all_true())],
            )
            .step("port 81", vec![], vec![tcp(81, all_true())]),

        Case::new("should allow ingress access on one named port", &[TCP], &[80, 81])
            .step(
                "create x/allow-all (named port serve-81-tcp); Blocking all ports other then 81 in the entire namespace (port 81)",
                vec![create(
                    X,
                    gen_with_pod_match_label(
                        "allow-all",
                        &[],
                        vec![Set::Ingress(vec![ingress_rule(vec![], vec![port_name(None, "serve-81-tcp")])])],
                    ),
                )],
                vec![tcp(81, all_true())],
            )
            .step(
                "disallow all traffic to the x namespace (port 80)",
                vec![],
                vec![tcp(80, all_true().expect_peer(Peer::any(), Peer::ns(X), false))],
            ),

        Case::new("should allow ingress access from namespace on one named port", &[TCP], &[80, 81])
            .step(
                "create x/allow-client-a-via-ns-selector-80; Verify that port 80 is allowed for namespace y",
                vec![create(
                    X,
                    ingress_to_pod(
                        "allow-client-a-via-ns-selector-80",
                        "a",
                        ingress_rule(
                            vec![peer(None, Some(ns_named(Y)))],
                            vec![port_name(Some("TCP"), "serve-80-tcp")],
                        ),
                    ),
                )],
                vec![tcp(
                    80,
                    all_true()
                        .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
                        .expect_peer(Peer::ns(Z), Peer::pod(X, "a"), false),
                )],
            )
            .step(
                "Verify that port 81 is blocked for all namespaces including y",
                vec![],
                vec![tcp(81, all_true().expect_all_ingress(xa, false))],
            ),

        Case::new(
            "should allow egress access on one named port",
            &[TCP],
            &[80, 81],
        )
        .step(
            "validating egress from port 81 to port 80; create x/allow-egress (port 80)",
            vec![create(
                X,
                gen_with_pod_match_label(
                    "allow-egress",
                    &[],
                    vec![Set::Egress(vec![egress_rule(
                        vec![],
                        vec![port_name(None, "serve-80-tcp")],
                    )])],
                ),
            )],
            vec![tcp(80, all_true())],
        )
        .step(
            "meanwhile no traffic over 81 should work, since our egress policy is on 80",
            vec![],
            vec![tcp(
                81,
                all_true().expect_peer(Peer::ns(X), Peer::any(), false),
            )],
        ),

        Case::new("should enforce updated policy", &[TCP], &[81])
            .step(
                "Using the simplest possible mutation: start with allow all, then switch to deny all; part 1) allow all",
                vec![create(X, mutate)],
                vec![tcp(81, all_true())],
            )
            .step(
                "part 2) update the policy to deny all",
                vec![update(X, mutated)],
                vec![tcp(81, all_true().expect_peer(Peer::any(), Peer::ns(X), false))],
            ),

        Case::new(
            "should allow ingress access from updated namespace",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-client-a-via-ns-selector (namespaceSelector ns2=updated)",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-client-a-via-ns-selector",
                    "a",
                    ingress_rule(
                        vec![peer(None, Some(match_labels(&[("ns2", "updated")])))],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(80, all_true().expect_all_ingress(xa, false))],
        )
        .step(
            "add a new label: namespace y gets ns2=updated",
            vec![Change::AddNamespaceLabel {
                namespace: Y,
                key: "ns2",
                value: "updated",
            }],
            vec![tcp(
                80,
                all_true().expect_all_ingress(xa, false).expect_peer(
                    Peer::ns(Y),
                    Peer::any(),
                    true,
                ),
            )],
        ),

        Case::new(
            "should allow ingress access from updated pod",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-client-a-via-pod-selector (podSelector pod=b, pod2=updated)",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-client-a-via-pod-selector",
                    "a",
                    ingress_rule(
                        vec![peer(
                            Some(match_labels(&[("pod", "b"), ("pod2", "updated")])),
                            None,
                        )],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(80, all_true().expect_all_ingress(xa, false))],
        )
        .step(
            "add a new label to x/b; x/b is able to reach x/a when label is updated",
            vec![Change::AddPodLabels {
                pod: xb,
                labels: vec![("pod", "b"), ("pod2", "updated")],
            }],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(xb, xa, true),
            )],
        ),

        Case::new(
            "should deny ingress from pods on other namespaces",
            &[TCP],
            &[80],
        )
        .step(
            "create x/deny-empty-policy",
            vec![create(
                X,
                gen_with_pod_selector(
                    "deny-empty-policy",
                    empty_selector(),
                    vec![Set::Ingress(vec![ingress_rule(
                        // PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{}}
                        vec![peer(Some(match_labels(&[])), None)],
                        vec![],
                    )])],
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_peer(Peer::ns(Y), Peer::ns(X), false)
                    .expect_peer(Peer::ns(Z), Peer::ns(X), false),
            )],
        ),

        Case::new("should deny ingress access to updated pod", &[TCP], &[80])
            .step(
                "create x/deny-ingress-via-label-selector; Verify that everything can reach x/a",
                vec![create(
                    X,
                    gen_with_pod_selector(
                        "deny-ingress-via-label-selector",
                        match_labels(&[("target", "isolated")]),
                        vec![Set::Ingress(vec![])],
                    ),
                )],
                vec![tcp(80, all_true())],
            )
            .step(
                "add label target=isolated to x/a",
                vec![Change::AddPodLabels {
                    pod: xa,
                    labels: vec![("target", "isolated")],
                }],
                vec![tcp(80, all_true().expect_all_ingress(xa, false))],
            ),

        Case::new(
            "should deny egress from pods based on PodSelector",
            &[TCP],
            &[80],
        )
        .step(
            "create x/deny-egress-pod-a",
            vec![create(
                X,
                gen_with_pod_selector(
                    "deny-egress-pod-a",
                    pod_labelled("a"),
                    vec![Set::Egress(vec![])],
                ),
            )],
            vec![tcp(80, all_true().expect_all_egress(xa, false))],
        ),

        Case::new(
            "should deny egress from all pods in a namespace",
            &[TCP],
            &[80],
        )
        .step(
            "create x/deny-egress-ns-x",
            vec![create(
                X,
                gen_with_pod_selector(
                    "deny-egress-ns-x",
                    empty_selector(),
                    vec![Set::Egress(vec![])],
                ),
            )],
            vec![tcp(
                80,
                all_true().expect_peer(Peer::ns(X), Peer::any(), false),
            )],
        ),

        Case::new(
            "should work with Ingress, Egress specified together",
            &[TCP],
            &[80, 81],
        )
        .step(
            "create x/allow-client-a-via-pod-selector (port 80)",
            vec![create(X, together)],
            vec![tcp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(xb, xa, true),
            )],
        )
        .step(
            "validating that port 81 doesn't work",
            vec![],
            vec![tcp(
                81,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect_all_egress(xa, false)
                    .expect(xb, xa, true),
            )],
        ),

        Case::new(
            "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-to-ns-y-pod-a, y/allow-from-xa-on-ya-match-selector, y/allow-from-xa-on-yb-match-selector",
            vec![
                create(
                    X,
                    egress_from_pod(
                        "allow-to-ns-y-pod-a",
                        "a",
                        egress_rule(vec![peer(Some(pod_labelled("a")), Some(ns_named(Y)))], vec![]),
                    ),
                ),
                create(Y, ingress_to_pod("allow-from-xa-on-ya-match-selector", "a", from_xa.clone())),
                create(Y, ingress_to_pod("allow-from-xa-on-yb-match-selector", "b", from_xa)),
            ],
            vec![tcp(
                80,
                all_true()
                    .expect_peer(Peer::pod(X, "a"), Peer::any(), false)
                    .expect_peer(Peer::any(), Peer::pod(Y, "a"), false)
                    .expect_peer(Peer::pod(X, "a"), Peer::pod(Y, "a"), true)
                    .expect_peer(Peer::any(), Peer::pod(Y, "b"), false),
            )],
        ),

        Case::new(
            "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-to-ns-y-pod-a",
            vec![create(
                X,
                egress_from_pod(
                    "allow-to-ns-y-pod-a",
                    "a",
                    egress_rule(vec![peer(Some(pod_labelled("a")), Some(ns_named(Y)))], vec![]),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_all_egress(xa, false)
                    .expect(xa, ya, true),
            )],
        ),

        Case::new(
            "should enforce ingress policy allowing any port traffic to a server on a specific protocol",
            &[TCP, UDP],
            &[80],
        )
        .step(
            "create x/allow-ingress-by-proto (TCP)",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-ingress-by-proto",
                    "a",
                    ingress_rule(vec![], vec![port_protocol("TCP")]),
                ),
            )],
            vec![tcp(80, all_true())],
        )
        .step(
            "UDP",
            vec![],
            vec![udp(
                80,
                all_true().expect_peer(Peer::any(), Peer::pod(X, "a"), false),
            )],
        ),

        Case::new(
            "should enforce multiple ingress policies with ingress allow-all policy taking precedence",
            &[TCP],
            &[81],
        )
        .step(
            "create x/allow-ingress-port-80; The policy targets port 80 -- so let's make sure traffic on port 81 is blocked",
            vec![create(
                X,
                gen_with_pod_match_label(
                    "allow-ingress-port-80",
                    &[],
                    vec![Set::Ingress(vec![ingress_rule(vec![], vec![port_number(None, 80)])])],
                ),
            )],
            vec![tcp(81, all_true().expect_peer(Peer::any(), Peer::ns(X), false))],
        )
        .step(
            "Allowing all ports",
            vec![create(
                X,
                gen_with_pod_match_label(
                    "allow-ingress",
                    &[],
                    vec![Set::Ingress(vec![ingress_rule(vec![], vec![])])],
                ),
            )],
            vec![tcp(81, all_true())],
        ),

        Case::new(
            "should enforce multiple egress policies with egress allow-all policy taking precedence",
            &[TCP],
            &[81],
        )
        .step(
            "create x/allow-egress-port-80; Making sure ingress doesn't work other than port 80",
            vec![create(
                X,
                gen_with_pod_match_label(
                    "allow-egress-port-80",
                    &[],
                    vec![Set::Egress(vec![egress_rule(vec![], vec![port_number(None, 80)])])],
                ),
            )],
            vec![tcp(81, all_true().expect_peer(Peer::ns(X), Peer::any(), false))],
        )
        .step(
            "Allowing all ports",
            vec![create(
                X,
                gen_with_pod_match_label(
                    "allow-egress",
                    &[],
                    vec![Set::Egress(vec![egress_rule(vec![], vec![])])],
                ),
            )],
            vec![tcp(81, all_true())],
        ),

        Case::new("should stop enforcing policies after they are deleted", &[TCP], &[80])
            .step(
                "Creating a network policy for the server which denies all traffic.",
                vec![create(
                    X,
                    gen_with_pod_selector(
                        "deny-all",
                        empty_selector(),
                        vec![Set::Ingress(vec![]), Set::Egress(vec![])],
                    ),
                )],
                vec![tcp(
                    80,
                    all_true()
                        .expect_peer(Peer::ns(X), Peer::any(), false)
                        .expect_peer(Peer::any(), Peer::ns(X), false),
                )],
            )
            .step(
                "cleanNetworkPolicies: Now the policy is deleted, we expect all connectivity to work again.",
                vec![Change::CleanPolicies],
                vec![tcp(80, all_true())],
            ),

        Case::new(
            "should allow egress access to server in CIDR block",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-client-a-via-cidr-egress-rule (y/b's podIP/32)",
            vec![create(
                X,
                egress_from_pod(
                    "allow-client-a-via-cidr-egress-rule",
                    "a",
                    egress_rule(vec![ip_block_peer(&cidr32(yb), &[])], vec![]),
                ),
            )],
            vec![tcp(
                80,
                all_true().expect_all_egress(xa, false).expect(xa, yb, true),
            )],
        ),

        Case::new(
            "should enforce except clause while egress access to server in CIDR block",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-client-a-via-cidr-egress-rule (x/a's podIP/4 except x/b's podIP/32)",
            vec![create(X, cidr_except.clone())],
            vec![tcp(80, all_true().expect(xa, xb, false))],
        ),

        Case::new(
            "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-client-a-via-cidr-egress-rule (x/a's podIP/4 except x/b's podIP/32)",
            vec![create(X, cidr_except)],
            vec![tcp(80, all_true().expect(xa, xb, false))],
        )
        .step(
            "update x/allow-client-a-via-cidr-egress-rule to allow x/b's podIP/32 only",
            vec![update(
                X,
                egress_from_pod(
                    "allow-client-a-via-cidr-egress-rule",
                    "a",
                    egress_rule(vec![ip_block_peer(&cidr32(xb), &[])], vec![]),
                ),
            )],
            vec![tcp(
                80,
                all_true().expect_all_egress(xa, false).expect(xa, xb, true),
            )],
        ),

        Case::new(
            "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
            &[TCP],
            &[80],
        )
        .step(
            "Creating a network policy for pod-a which allows Egress traffic to pod-b.",
            vec![create(
                X,
                gen_with_pod_selector(
                    "allow-egress-for-target",
                    pod_labelled("a"),
                    vec![Set::Egress(vec![egress_rule(vec![], vec![])])],
                ),
            )],
            vec![tcp(80, all_true())],
        )
        .step(
            "Creating a network policy for pod-a that denies traffic from pod-b.",
            vec![create(
                X,
                gen_with_pod_selector(
                    "deny-ingress-via-label-selector",
                    pod_labelled("a"),
                    vec![Set::Ingress(vec![])],
                ),
            )],
            vec![tcp(80, all_true().expect_all_ingress(xa, false))],
        ),

        Case::new(
            "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
            &[TCP],
            &[81],
        )
        .step(
            "Creating a default-deny ingress policy.; Creating a network policy for the server which allows traffic only via SCTP on port 81.; Trying to connect to TCP port 81, which should be blocked by the deny-ingress policy.",
            vec![
                create(
                    X,
                    gen_with_pod_selector("deny-ingress", empty_selector(), vec![Set::Ingress(vec![])]),
                ),
                create(
                    X,
                    ingress_to_pod(
                        "allow-only-sctp-ingress-on-port-81",
                        "a",
                        ingress_rule(vec![], vec![port_number(Some("SCTP"), 81)]),
                    ),
                ),
            ],
            vec![tcp(81, all_true().expect_peer(Peer::any(), Peer::ns(X), false))],
        ),

        Case::new(
            "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
            &[TCP],
            &[81],
        )
        .step(
            "Creating a network policy for the server which allows traffic only via SCTP on port 80.; Trying to connect to TCP port 81, which should be blocked by implicit isolation.",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-only-sctp-ingress-on-port-80",
                    "a",
                    ingress_rule(vec![], vec![port_number(Some("SCTP"), 80)]),
                ),
            )],
            vec![tcp(81, all_true().expect_all_ingress(xa, false))],
        ),

        Case::new("should not allow access by TCP when a policy specifies only UDP", &[TCP], &[81])
            .step(
                "Creating a network policy for the server which allows traffic only via UDP on port 81.; Probing with TCP, so all traffic should be dropped.",
                vec![create(
                    X,
                    ingress_to_pod(
                        "allow-only-udp-ingress-on-port-81",
                        "a",
                        ingress_rule(vec![], vec![port_number(Some("UDP"), 81)]),
                    ),
                )],
                vec![tcp(81, all_true().expect_all_ingress(xa, false))],
            ),

        Case::new(
            "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-client-a-via-ns-selector-for-immutable-ns-label",
            vec![create(
                X,
                ingress_to_pod(
                    "allow-client-a-via-ns-selector-for-immutable-ns-label",
                    "a",
                    ingress_rule(vec![peer(None, Some(ns_named(Y)))], vec![]),
                ),
            )],
            vec![tcp(
                80,
                all_true()
                    .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
                    .expect_peer(Peer::ns(Z), Peer::pod(X, "a"), false),
            )],
        ),

        Case::new(
            "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
            &[TCP],
            &[80],
        )
        .step(
            "create x/allow-ns-y-match-selector-for-immutable-ns-label",
            vec![create(
                X,
                egress_from_pod(
                    "allow-ns-y-match-selector-for-immutable-ns-label",
                    "a",
                    egress_rule(
                        vec![peer(None, Some(match_expression(NS_LABEL, "NotIn", &[Y])))],
                        vec![],
                    ),
                ),
            )],
            vec![tcp(
                80,
                all_true().expect_peer(Peer::pod(X, "a"), Peer::ns(Y), false),
            )],
        ),
    ]
}

/// `allow-ns-y-pod-a-via-namespace-pod-selector`: x/a admits y/a only (TCP, UDP and SCTP
/// cases).
fn allow_ns_y_pod_a() -> Policy {
    ingress_to_pod(
        "allow-ns-y-pod-a-via-namespace-pod-selector",
        "a",
        ingress_rule(
            vec![peer(Some(pod_labelled("a")), Some(ns_named(Y)))],
            vec![],
        ),
    )
}

fn udp_cases() -> Vec<Case> {
    let xa = pod(X, "a");
    let ya = pod(Y, "a");
    vec![
        Case::new("should support a 'default-deny-ingress' policy", &[UDP], &[80])
            .in_context(Context::Udp)
            .step(
                "create x/deny-all",
                vec![create(
                    X,
                    gen_with_pod_selector("deny-all", empty_selector(), vec![Set::Ingress(vec![])]),
                )],
                vec![udp(
                    80,
                    all_true().expect_peer(Peer::any(), Peer::ns(X), false),
                )],
            ),
        Case::new("should enforce policy based on Ports", &[UDP], &[81])
            .in_context(Context::Udp)
            .step(
                "Creating a network policy allowPort81Policy which only allows allow listed namespaces (y) to connect on exactly one port (81)",
                vec![create(
                    X,
                    ingress_to_pod(
                        "allow-ingress-on-port-81-ns-x",
                        "a",
                        ingress_rule(
                            vec![peer(None, Some(ns_named(Y)))],
                            vec![port_number(Some("UDP"), 81)],
                        ),
                    ),
                )],
                vec![udp(
                    81,
                    all_true()
                        .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
                        .expect_peer(Peer::ns(Z), Peer::pod(X, "a"), false),
                )],
            ),
        Case::new(
            "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
            &[UDP],
            &[80],
        )
        .in_context(Context::Udp)
        .step(
            "create x/allow-ns-y-pod-a-via-namespace-pod-selector",
            vec![create(X, allow_ns_y_pod_a())],
            vec![udp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(ya, xa, true),
            )],
        ),
    ]
}

/// `SIGDescribe("Netpol", feature.SCTPConnectivity, "[LinuxOnly]")` /
/// `Context("NetworkPolicy between server and client using SCTP")`: the pods serve SCTP only
/// (`agnhost porter` with `SERVE_SCTP_PORT_<port>`), and every check probes SCTP.
fn sctp_cases() -> Vec<Case> {
    let xa = pod(X, "a");
    let ya = pod(Y, "a");
    vec![
        Case::new("should support a 'default-deny-ingress' policy", &[SCTP], &[80])
            .in_context(Context::Sctp)
            .step(
                "create x/deny-all",
                vec![create(
                    X,
                    gen_with_pod_selector("deny-all", empty_selector(), vec![Set::Ingress(vec![])]),
                )],
                vec![sctp(
                    80,
                    all_true().expect_peer(Peer::any(), Peer::ns(X), false),
                )],
            ),
        Case::new("should enforce policy based on Ports", &[SCTP], &[81])
            .in_context(Context::Sctp)
            .step(
                "Creating a network allowPort81Policy which only allows allow listed namespaces (y) to connect on exactly one port (81)",
                vec![create(
                    X,
                    ingress_to_pod(
                        "allow-ingress-on-port-81-ns-x",
                        "a",
                        ingress_rule(
                            vec![peer(None, Some(ns_named(Y)))],
                            vec![port_number(Some("SCTP"), 81)],
                        ),
                    ),
                )],
                vec![sctp(
                    81,
                    all_true()
                        .expect_peer(Peer::ns(X), Peer::pod(X, "a"), false)
                        .expect_peer(Peer::ns(Z), Peer::pod(X, "a"), false),
                )],
            ),
        Case::new(
            "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
            &[SCTP],
            &[80],
        )
        .in_context(Context::Sctp)
        .step(
            "create x/allow-ns-y-pod-a-via-namespace-pod-selector",
            vec![create(X, allow_ns_y_pod_a())],
            vec![sctp(
                80,
                all_true()
                    .expect_all_ingress(xa, false)
                    .expect(ya, xa, true),
            )],
        ),
    ]
}
