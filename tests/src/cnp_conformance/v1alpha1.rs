//! The v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy conformance tests (upstream v0.1.8).
//!
//! Transcribed call for call from `conformance/tests/*.go` of kubernetes-sigs/network-policy-api at
//! `v0.1.8 (5a62954)` (in file-name order, the order Go runs their `init` functions and so the suite's
//! order; within a file, the order of `ConformanceTests = append(...)`): each `t.Run` with the
//! changes its Go code makes and its `PokeServer` calls, arguments in upstream's order
//! (client pod, protocol, server pod, port, shouldConnect). The expectations are upstream's.
//! Left out: AdminNetworkPolicyEgressNodePeers, BaselineAdminNetworkPolicyEgressNodePeers (see [`super::LEFT_OUT`]).

#![allow(clippy::too_many_lines)]

use super::model::*;
use crate::lab::scenario::Protocol::{Sctp as SCTP, Tcp as TCP, Udp as UDP};

const VERSION: Version = Version::V1alpha1;

/// Every ported test, in upstream's order.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            version: VERSION,
            file: "admin-network-policy-experimental-egress-rules.go",
            short_name: "AdminNetworkPolicyEgressNamedPort",
            manifests: vec!["base/admin_network_policy/standard-egress-tcp-rules.yaml"],
            subtests: vec![subtest(
                "Should support an 'allow-egress' policy for named port",
                vec![phase(
                    vec![set_named_port(anp("egress-tcp"), EGRESS, 5, "web")],
                    vec![
                        poke(HARRY_POTTER_0, TCP, CEDRIC_DIGGORY_1, 80, true),
                        poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_1, 8080, false),
                    ],
                )],
            )],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-experimental-ingress-rules.go",
            short_name: "AdminNetworkPolicyIngressNamedPort",
            manifests: vec!["base/admin_network_policy/standard-ingress-udp-rules.yaml"],
            subtests: vec![subtest(
                "Should support an 'allow-ingress' policy for named port",
                vec![phase(
                    vec![set_named_port(anp("ingress-udp"), INGRESS, 5, "dns")],
                    vec![
                        poke(HARRY_POTTER_0, UDP, CEDRIC_DIGGORY_1, 53, true),
                        poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_1, 5353, false),
                    ],
                )],
            )],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-egress-inline-cidr-rules.go",
            short_name: "AdminNetworkPolicyEgressInlineCIDRPeers",
            manifests: vec!["base/admin_network_policy/standard-egress-inline-cidr-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support a 'deny-egress' rule policy for egress-cidr-peer",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_0, 80, false),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_0, 53, false),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_0, 9003, false),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_0, 80, false),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_0, 53, false),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_0, 9003, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, DRACO_MALFOY_0, 53, true),
                            poke(HARRY_POTTER_1, SCTP, DRACO_MALFOY_0, 9003, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' rule policy for egress-cidr-peer",
                    vec![phase(
                        vec![prepend_networks(
                            anp("inline-cidr-as-peers-example"),
                            "allow-egress-to-specific-podIPs",
                            "Allow",
                            [LUNA_LOVEGOOD_0, CEDRIC_DIGGORY_0],
                        )],
                        vec![
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_0, 53, true),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_0, 53, true),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_0, 9003, true),
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_1, 80, false),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_1, 53, false),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_1, 9003, false),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_1, 80, false),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_1, 53, false),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_1, 9003, false),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-egress-sctp-rules.go",
            short_name: "AdminNetworkPolicyEgressSCTP",
            manifests: vec!["base/admin_network_policy/standard-egress-sctp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, HARRY_POTTER_0, 9003, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_0, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, CEDRIC_DIGGORY_1, 9003, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, CEDRIC_DIGGORY_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("egress-sctp"), EGRESS, 0, 1)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, HARRY_POTTER_1, 9003, false),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-egress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, DRACO_MALFOY_0, 9003, false),
                            poke(LUNA_LOVEGOOD_1, SCTP, DRACO_MALFOY_0, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'pass-egress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("egress-sctp"), EGRESS, 0, 2)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, HARRY_POTTER_1, 9003, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_1, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-egress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![swap(anp("egress-sctp"), EGRESS, 3, 4)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, DRACO_MALFOY_0, 9003, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, DRACO_MALFOY_0, 9005, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-egress-tcp-rules.go",
            short_name: "AdminNetworkPolicyEgressTCP",
            manifests: vec!["base/admin_network_policy/standard-egress-tcp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, CEDRIC_DIGGORY_1, 8080, true),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_1, 80, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("egress-tcp"), EGRESS, 0, 1)],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_1, 80, false),
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_1, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-egress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'pass-egress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("egress-tcp"), EGRESS, 0, 2)],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-egress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![swap(anp("egress-tcp"), EGRESS, 3, 4)],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, true),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-egress-udp-rules.go",
            short_name: "AdminNetworkPolicyEgressUDP",
            manifests: vec!["base/admin_network_policy/standard-egress-udp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, LUNA_LOVEGOOD_0, 53, true),
                            poke(CEDRIC_DIGGORY_1, UDP, LUNA_LOVEGOOD_0, 5353, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, HARRY_POTTER_1, 53, true),
                            poke(CEDRIC_DIGGORY_1, UDP, HARRY_POTTER_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("egress-udp"), EGRESS, 0, 1)],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, LUNA_LOVEGOOD_1, 53, false),
                            poke(CEDRIC_DIGGORY_1, UDP, LUNA_LOVEGOOD_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-egress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, DRACO_MALFOY_0, 5353, false),
                            poke(CEDRIC_DIGGORY_1, UDP, DRACO_MALFOY_0, 53, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'pass-egress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("egress-udp"), EGRESS, 0, 2)],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, LUNA_LOVEGOOD_1, 5353, true),
                            poke(CEDRIC_DIGGORY_1, UDP, LUNA_LOVEGOOD_1, 53, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-egress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![swap(anp("egress-udp"), EGRESS, 3, 4)],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, DRACO_MALFOY_0, 5353, true),
                            poke(CEDRIC_DIGGORY_1, UDP, DRACO_MALFOY_0, 53, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-gress-rules.go",
            short_name: "AdminNetworkPolicyGress",
            manifests: vec!["base/admin_network_policy/standard-gress-rules-combined.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-gress' policy across different protocols",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_0, 53, true),
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(LUNA_LOVEGOOD_1, UDP, HARRY_POTTER_0, 53, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_0, 9003, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-gress' policy across different protocols at the specified ports",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, CEDRIC_DIGGORY_1, 8080, true),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_1, 80, false),
                            poke(HARRY_POTTER_0, UDP, CEDRIC_DIGGORY_1, 5353, true),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_1, 53, false),
                            poke(HARRY_POTTER_0, SCTP, CEDRIC_DIGGORY_1, 9003, true),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_1, 9005, false),
                            poke(CEDRIC_DIGGORY_0, TCP, HARRY_POTTER_1, 80, true),
                            poke(CEDRIC_DIGGORY_1, TCP, HARRY_POTTER_1, 8080, false),
                            poke(CEDRIC_DIGGORY_0, UDP, HARRY_POTTER_1, 5353, true),
                            poke(CEDRIC_DIGGORY_1, UDP, HARRY_POTTER_1, 53, false),
                            poke(CEDRIC_DIGGORY_0, SCTP, HARRY_POTTER_1, 9003, true),
                            poke(CEDRIC_DIGGORY_1, SCTP, HARRY_POTTER_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-gress' policy across different protocols",
                    vec![phase(
                        vec![
                            swap(anp("gress-rules"), EGRESS, 0, 1),
                            swap(anp("gress-rules"), INGRESS, 0, 1),
                        ],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_1, 80, false),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_1, 53, false),
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_1, 9003, false),
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_1, 80, false),
                            poke(LUNA_LOVEGOOD_1, UDP, HARRY_POTTER_1, 53, false),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_1, 9003, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-gress' policy across different protocols at the specified ports",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                            poke(HARRY_POTTER_0, UDP, DRACO_MALFOY_0, 53, false),
                            poke(HARRY_POTTER_1, UDP, DRACO_MALFOY_0, 5353, true),
                            poke(HARRY_POTTER_0, SCTP, DRACO_MALFOY_0, 9003, false),
                            poke(HARRY_POTTER_1, SCTP, DRACO_MALFOY_0, 9005, true),
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, false),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                            poke(DRACO_MALFOY_0, UDP, HARRY_POTTER_0, 53, false),
                            poke(DRACO_MALFOY_1, UDP, HARRY_POTTER_0, 5353, true),
                            poke(DRACO_MALFOY_0, SCTP, HARRY_POTTER_0, 9003, false),
                            poke(DRACO_MALFOY_1, SCTP, HARRY_POTTER_0, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'pass-gress' policy across different protocols",
                    vec![phase(
                        vec![
                            swap(anp("gress-rules"), EGRESS, 0, 2),
                            swap(anp("gress-rules"), INGRESS, 0, 2),
                        ],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_0, UDP, LUNA_LOVEGOOD_0, 5353, true),
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(LUNA_LOVEGOOD_1, UDP, HARRY_POTTER_0, 53, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_0, 9003, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-gress' policy across different protocols at the specified ports",
                    vec![phase(
                        vec![
                            swap(anp("gress-rules"), EGRESS, 3, 4),
                            swap(anp("gress-rules"), INGRESS, 3, 4),
                        ],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, true),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                            poke(HARRY_POTTER_0, UDP, DRACO_MALFOY_0, 53, true),
                            poke(HARRY_POTTER_1, UDP, DRACO_MALFOY_0, 5353, true),
                            poke(HARRY_POTTER_0, SCTP, DRACO_MALFOY_0, 9003, true),
                            poke(HARRY_POTTER_1, SCTP, DRACO_MALFOY_0, 9005, true),
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                            poke(DRACO_MALFOY_0, UDP, HARRY_POTTER_0, 53, true),
                            poke(DRACO_MALFOY_1, UDP, HARRY_POTTER_0, 5353, true),
                            poke(DRACO_MALFOY_0, SCTP, HARRY_POTTER_0, 9003, true),
                            poke(DRACO_MALFOY_1, SCTP, HARRY_POTTER_0, 9005, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-ingress-sctp-rules.go",
            short_name: "AdminNetworkPolicyIngressSCTP",
            manifests: vec!["base/admin_network_policy/standard-ingress-sctp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_0, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-ingress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, SCTP, LUNA_LOVEGOOD_1, 9003, true),
                            poke(CEDRIC_DIGGORY_1, SCTP, LUNA_LOVEGOOD_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("ingress-sctp"), INGRESS, 0, 1)],
                        vec![
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_1, 9003, false),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-ingress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, SCTP, LUNA_LOVEGOOD_0, 9003, false),
                            poke(DRACO_MALFOY_1, SCTP, LUNA_LOVEGOOD_0, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'pass-ingress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("ingress-sctp"), INGRESS, 0, 2)],
                        vec![
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_1, 9003, true),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_1, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-ingress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![swap(anp("ingress-sctp"), INGRESS, 3, 4)],
                        vec![
                            poke(DRACO_MALFOY_0, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(DRACO_MALFOY_1, SCTP, LUNA_LOVEGOOD_0, 9005, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-ingress-tcp-rules.go",
            short_name: "AdminNetworkPolicyIngressTCP",
            manifests: vec!["base/admin_network_policy/standard-ingress-tcp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(LUNA_LOVEGOOD_1, TCP, HARRY_POTTER_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-ingress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, TCP, HARRY_POTTER_1, 80, true),
                            poke(CEDRIC_DIGGORY_1, TCP, HARRY_POTTER_1, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("ingress-tcp"), INGRESS, 0, 1)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_1, 80, false),
                            poke(LUNA_LOVEGOOD_1, TCP, HARRY_POTTER_1, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-ingress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, false),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'pass-ingress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("ingress-tcp"), INGRESS, 0, 2)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(LUNA_LOVEGOOD_1, TCP, HARRY_POTTER_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-ingress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![swap(anp("ingress-tcp"), INGRESS, 3, 4)],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-ingress-udp-rules.go",
            short_name: "AdminNetworkPolicyIngressUDP",
            manifests: vec!["base/admin_network_policy/standard-ingress-udp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, UDP, CEDRIC_DIGGORY_0, 53, true),
                            poke(LUNA_LOVEGOOD_1, UDP, CEDRIC_DIGGORY_0, 5353, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-ingress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, UDP, CEDRIC_DIGGORY_1, 53, true),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("ingress-udp"), INGRESS, 0, 1)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, UDP, CEDRIC_DIGGORY_1, 53, false),
                            poke(LUNA_LOVEGOOD_1, UDP, CEDRIC_DIGGORY_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-ingress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, UDP, CEDRIC_DIGGORY_0, 5353, false),
                            poke(DRACO_MALFOY_1, UDP, CEDRIC_DIGGORY_0, 53, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'pass-ingress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(anp("ingress-udp"), INGRESS, 0, 2)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, UDP, CEDRIC_DIGGORY_1, 5353, true),
                            poke(LUNA_LOVEGOOD_1, UDP, CEDRIC_DIGGORY_1, 53, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-ingress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![swap(anp("ingress-udp"), INGRESS, 3, 4)],
                        vec![
                            poke(DRACO_MALFOY_0, UDP, CEDRIC_DIGGORY_0, 5353, true),
                            poke(DRACO_MALFOY_1, UDP, CEDRIC_DIGGORY_0, 53, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-integration.go",
            short_name: "AdminNetworkPolicyIntegration",
            manifests: vec!["base/api_integration/standard-anp-np-banp.yaml"],
            subtests: vec![
                subtest(
                    "Should Deny traffic from slytherin to gryffindor respecting ANP",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, false),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should Deny traffic to slytherin from gryffindor respecting ANP",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-ingress' policy for ANP and respect the match for network policy",
                    vec![phase(
                        vec![set_action(anp("pass-example"), INGRESS, 0, "Pass")],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-egress' policy for ANP and respect the match for network policy",
                    vec![phase(
                        vec![set_action(anp("pass-example"), EGRESS, 0, "Pass")],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, true),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-ingress' policy for ANP and respect the match for baseline admin network policy",
                    vec![phase(
                        vec![delete_network_policy(
                            GRYFFINDOR,
                            "allow-gress-from-to-slytherin-to-gryffindor",
                        )],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, false),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'pass-egress' policy for ANP and respect the match for baseline admin network policy",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, false),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "admin-network-policy-standard-priority.go",
            short_name: "AdminNetworkPolicyPriorityField",
            manifests: vec!["base/admin_network_policy/standard-priority-field.yaml"],
            subtests: vec![
                subtest(
                    "Should Deny traffic from slytherin to gryffindor respecting ANP",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, false),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should Deny traffic to slytherin from gryffindor respecting ANP",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should respect ANP priority field; thus passing both ingress and egress traffic over to BANP",
                    vec![phase(
                        vec![set_priority(
                            anp("old-priority-60-new-priority-40-example"),
                            40,
                        )],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, true),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-experimental-egress-rules.go",
            short_name: "BaselineAdminNetworkPolicyEgressNamedPort",
            manifests: vec!["base/baseline_admin_network_policy/standard-egress-udp-rules.yaml"],
            subtests: vec![subtest(
                "Should support an 'allow-egress' policy for named port",
                vec![phase(
                    vec![set_named_port(banp("default"), EGRESS, 3, "dns")],
                    vec![
                        poke(CEDRIC_DIGGORY_0, UDP, HARRY_POTTER_1, 53, true),
                        poke(CEDRIC_DIGGORY_1, UDP, HARRY_POTTER_1, 5353, false),
                    ],
                )],
            )],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-experimental-ingress-rules.go",
            short_name: "BaselineAdminNetworkPolicyIngressNamedPort",
            manifests: vec!["base/baseline_admin_network_policy/standard-ingress-tcp-rules.yaml"],
            subtests: vec![subtest(
                "Should support an 'allow-ingress' policy for named port",
                vec![phase(
                    vec![set_named_port(banp("default"), INGRESS, 3, "web")],
                    vec![
                        poke(CEDRIC_DIGGORY_0, TCP, HARRY_POTTER_1, 80, true),
                        poke(CEDRIC_DIGGORY_1, TCP, HARRY_POTTER_1, 8080, false),
                    ],
                )],
            )],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-egress-inline-cidr-rules.go",
            short_name: "BaselineAdminNetworkPolicyEgressInlineCIDRPeers",
            manifests: vec![
                "base/baseline_admin_network_policy/standard-egress-inline-cidr-rules.yaml",
            ],
            subtests: vec![
                subtest(
                    "Should support a 'deny-egress' rule policy for egress-cidr-peer",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_0, 80, false),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_0, 53, false),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_0, 9003, false),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_0, 80, false),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_0, 53, false),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_0, 9003, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, DRACO_MALFOY_0, 53, true),
                            poke(HARRY_POTTER_1, SCTP, DRACO_MALFOY_0, 9003, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' rule policy for egress-cidr-peer",
                    vec![phase(
                        vec![prepend_networks(
                            banp("default"),
                            "allow-egress-to-specific-podIPs",
                            "Allow",
                            [LUNA_LOVEGOOD_0, CEDRIC_DIGGORY_0],
                        )],
                        vec![
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_0, 53, true),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_0, 53, true),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_0, 9003, true),
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_1, 80, false),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_1, 53, false),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_1, 9003, false),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_1, 80, false),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_1, 53, false),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_1, 9003, false),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-egress-sctp-rules.go",
            short_name: "BaselineAdminNetworkPolicyEgressSCTP",
            manifests: vec!["base/baseline_admin_network_policy/standard-egress-sctp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, HARRY_POTTER_0, 9003, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_0, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, CEDRIC_DIGGORY_1, 9003, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, CEDRIC_DIGGORY_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(banp("default"), EGRESS, 0, 1)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, HARRY_POTTER_1, 9003, false),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-egress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, SCTP, DRACO_MALFOY_0, 9003, false),
                            poke(LUNA_LOVEGOOD_1, SCTP, DRACO_MALFOY_0, 9005, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-egress-tcp-rules.go",
            short_name: "BaselineAdminNetworkPolicyEgressTCP",
            manifests: vec!["base/baseline_admin_network_policy/standard-egress-tcp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, CEDRIC_DIGGORY_1, 8080, true),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_1, 80, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(banp("default"), EGRESS, 0, 1)],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_1, 80, false),
                            poke(HARRY_POTTER_1, TCP, LUNA_LOVEGOOD_1, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-egress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-egress-udp-rules.go",
            short_name: "BaselineAdminNetworkPolicyEgressUDP",
            manifests: vec!["base/baseline_admin_network_policy/standard-egress-udp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, LUNA_LOVEGOOD_0, 53, true),
                            poke(CEDRIC_DIGGORY_1, UDP, LUNA_LOVEGOOD_0, 5353, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-egress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, HARRY_POTTER_1, 53, true),
                            poke(CEDRIC_DIGGORY_1, UDP, HARRY_POTTER_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(banp("default"), EGRESS, 0, 1)],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, LUNA_LOVEGOOD_1, 53, false),
                            poke(CEDRIC_DIGGORY_1, UDP, LUNA_LOVEGOOD_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-egress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, UDP, DRACO_MALFOY_0, 5353, false),
                            poke(CEDRIC_DIGGORY_1, UDP, DRACO_MALFOY_0, 53, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-gress-rules.go",
            short_name: "BaselineAdminNetworkPolicyGress",
            manifests: vec![
                "base/baseline_admin_network_policy/standard-gress-rules-combined.yaml",
            ],
            subtests: vec![
                subtest(
                    "Should support an 'allow-gress' policy across different protocols",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_0, 80, true),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_0, 53, true),
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(LUNA_LOVEGOOD_1, UDP, HARRY_POTTER_0, 53, true),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_0, 9003, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-gress' policy across different protocols at the specified ports",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, CEDRIC_DIGGORY_1, 8080, true),
                            poke(HARRY_POTTER_1, TCP, CEDRIC_DIGGORY_1, 80, false),
                            poke(HARRY_POTTER_0, UDP, CEDRIC_DIGGORY_1, 5353, true),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_1, 53, false),
                            poke(HARRY_POTTER_0, SCTP, CEDRIC_DIGGORY_1, 9003, true),
                            poke(HARRY_POTTER_1, SCTP, CEDRIC_DIGGORY_1, 9005, false),
                            poke(CEDRIC_DIGGORY_0, TCP, HARRY_POTTER_1, 80, true),
                            poke(CEDRIC_DIGGORY_1, TCP, HARRY_POTTER_1, 8080, false),
                            poke(CEDRIC_DIGGORY_0, UDP, HARRY_POTTER_1, 5353, true),
                            poke(CEDRIC_DIGGORY_1, UDP, HARRY_POTTER_1, 53, false),
                            poke(CEDRIC_DIGGORY_0, SCTP, HARRY_POTTER_1, 9003, true),
                            poke(CEDRIC_DIGGORY_1, SCTP, HARRY_POTTER_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-gress' policy across different protocols",
                    vec![phase(
                        vec![
                            swap(banp("default"), EGRESS, 0, 1),
                            swap(banp("default"), INGRESS, 0, 1),
                        ],
                        vec![
                            poke(HARRY_POTTER_0, TCP, LUNA_LOVEGOOD_1, 80, false),
                            poke(HARRY_POTTER_1, UDP, LUNA_LOVEGOOD_1, 53, false),
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_1, 9003, false),
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_1, 80, false),
                            poke(LUNA_LOVEGOOD_1, UDP, HARRY_POTTER_1, 53, false),
                            poke(LUNA_LOVEGOOD_1, SCTP, HARRY_POTTER_1, 9003, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-gress' policy across different protocols at the specified ports",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, TCP, DRACO_MALFOY_0, 80, false),
                            poke(HARRY_POTTER_1, TCP, DRACO_MALFOY_0, 8080, true),
                            poke(HARRY_POTTER_0, UDP, DRACO_MALFOY_0, 53, false),
                            poke(HARRY_POTTER_1, UDP, DRACO_MALFOY_0, 5353, true),
                            poke(HARRY_POTTER_0, SCTP, DRACO_MALFOY_0, 9003, false),
                            poke(HARRY_POTTER_1, SCTP, DRACO_MALFOY_0, 9005, true),
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, false),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                            poke(DRACO_MALFOY_0, UDP, HARRY_POTTER_0, 53, false),
                            poke(DRACO_MALFOY_1, UDP, HARRY_POTTER_0, 5353, true),
                            poke(DRACO_MALFOY_0, SCTP, HARRY_POTTER_0, 9003, false),
                            poke(DRACO_MALFOY_1, SCTP, HARRY_POTTER_0, 9005, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-ingress-sctp-rules.go",
            short_name: "BaselineAdminNetworkPolicyIngressSCTP",
            manifests: vec!["base/baseline_admin_network_policy/standard-ingress-sctp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_0, 9003, true),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_0, 9005, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-ingress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, SCTP, LUNA_LOVEGOOD_1, 9003, true),
                            poke(CEDRIC_DIGGORY_1, SCTP, LUNA_LOVEGOOD_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(banp("default"), INGRESS, 0, 1)],
                        vec![
                            poke(HARRY_POTTER_0, SCTP, LUNA_LOVEGOOD_1, 9003, false),
                            poke(HARRY_POTTER_1, SCTP, LUNA_LOVEGOOD_1, 9005, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-ingress' policy for SCTP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, SCTP, LUNA_LOVEGOOD_0, 9003, false),
                            poke(DRACO_MALFOY_1, SCTP, LUNA_LOVEGOOD_0, 9005, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-ingress-tcp-rules.go",
            short_name: "BaselineAdminNetworkPolicyIngressTCP",
            manifests: vec!["base/baseline_admin_network_policy/standard-ingress-tcp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_0, 80, true),
                            poke(LUNA_LOVEGOOD_1, TCP, HARRY_POTTER_0, 8080, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-ingress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(CEDRIC_DIGGORY_0, TCP, HARRY_POTTER_1, 80, true),
                            poke(CEDRIC_DIGGORY_1, TCP, HARRY_POTTER_1, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(banp("default"), INGRESS, 0, 1)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, TCP, HARRY_POTTER_1, 80, false),
                            poke(LUNA_LOVEGOOD_1, TCP, HARRY_POTTER_1, 8080, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-ingress' policy for TCP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, TCP, HARRY_POTTER_0, 80, false),
                            poke(DRACO_MALFOY_1, TCP, HARRY_POTTER_0, 8080, true),
                        ],
                    )],
                ),
            ],
        },
        Test {
            version: VERSION,
            file: "baseline-admin-network-policy-standard-ingress-udp-rules.go",
            short_name: "BaselineAdminNetworkPolicyIngressUDP",
            manifests: vec!["base/baseline_admin_network_policy/standard-ingress-udp-rules.yaml"],
            subtests: vec![
                subtest(
                    "Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![],
                        vec![
                            poke(LUNA_LOVEGOOD_0, UDP, CEDRIC_DIGGORY_0, 53, true),
                            poke(LUNA_LOVEGOOD_1, UDP, CEDRIC_DIGGORY_0, 5353, true),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'allow-ingress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(HARRY_POTTER_0, UDP, CEDRIC_DIGGORY_1, 53, true),
                            poke(HARRY_POTTER_1, UDP, CEDRIC_DIGGORY_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected",
                    vec![phase(
                        vec![swap(banp("default"), INGRESS, 0, 1)],
                        vec![
                            poke(LUNA_LOVEGOOD_0, UDP, CEDRIC_DIGGORY_1, 53, false),
                            poke(LUNA_LOVEGOOD_1, UDP, CEDRIC_DIGGORY_1, 5353, false),
                        ],
                    )],
                ),
                subtest(
                    "Should support a 'deny-ingress' policy for UDP protocol at the specified port",
                    vec![phase(
                        vec![],
                        vec![
                            poke(DRACO_MALFOY_0, UDP, CEDRIC_DIGGORY_0, 5353, false),
                            poke(DRACO_MALFOY_1, UDP, CEDRIC_DIGGORY_0, 53, true),
                        ],
                    )],
                ),
            ],
        },
    ]
}
