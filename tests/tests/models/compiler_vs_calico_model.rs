//! Compiler vs the Calico reference model: random clusters with random tiers, Calico
//! policies (global and namespaced, every action), Kubernetes NetworkPolicies and network
//! sets. For each flow (TCP, UDP, SCTP, and ICMP/ICMPv6 by type and code), the userspace
//! replay of the datapath's lookups on the compiler's maps must agree with
//! `palisade_tests::calico_reference`, evaluated on the resources themselves, and so must
//! `policy-agent explain`'s walk.
//!
//! The second property follows such a world through random edits with one compiler, each
//! step an edit of its Kubernetes objects (pods relabelled, added and removed, namespaces
//! relabelled, NetworkPolicies added and removed) and then of its Calico policies (one
//! applied or deleted): pod edits update ordered tables incrementally (new identities get
//! their cells in every ordered table), policy edits re-evaluate the endpoints' tables, and
//! after each step the maps must agree with the
//! model, a sync that writes only the keys the compile reports changed must arrive at the
//! same maps, and nothing may be left behind (`palisade_tests::leftovers`).
//!
//! Administrators' policy (ClusterNetworkPolicy, AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy) is part of most worlds and of the edits, given to the agent
//! through `Cluster::insert_cluster_policy`; each property prints how many flows the model
//! walked through the tiers `kube-admin`/`kube-baseline` and how many a rule there decided.
//! The `crafted_*` tests hold both to hand-written worlds at the API's corners (Pass, then a
//! NetworkPolicy, then Baseline; equal priorities; named ports; networks over pods).
//!
//! `PALISADE_PROPTEST_CASES` raises the number of cases (default 1600, 400 for the edits:
//! worlds with administrators' policy cost about a quarter more to compile and explain, and
//! these defaults keep the run time what 2000 and 500 took without them).

use std::{
    net::IpAddr,
    sync::atomic::{AtomicUsize, Ordering},
};

use palisade_tests::{
    calico_reference::CalicoWorld,
    generate::{FlowPick, cases_from_env, edits, flow_picks},
    generate_calico::{CalicoCase, IcmpPick, calico_case, calico_edit, icmp_picks},
    leftovers,
};
use policy_agent::{
    compiler::{
        Compiler, MapContents, Scope,
        trace::{TracePacket, trace},
    },
    model::Cluster,
    replay::{self, Direction, Packet},
};
use proptest::{
    prelude::*,
    test_runner::{FailurePersistence, FileFailurePersistence, TestCaseError},
};

/// The default number of worlds of the first property (a quarter of it for the second).
const CASES: u32 = 1600;

fn scope(case: &CalicoCase) -> Scope {
    Scope {
        node_name: None,
        host_addrs: case.world.node_addrs.clone(),
    }
}

/// Flows checked by one property: all, through the administrators' tiers, decided there.
struct Counts {
    cases: AtomicUsize,
    flows: AtomicUsize,
    through: AtomicUsize,
    decided: AtomicUsize,
}

impl Counts {
    const fn new() -> Self {
        Counts {
            cases: AtomicUsize::new(0),
            flows: AtomicUsize::new(0),
            through: AtomicUsize::new(0),
            decided: AtomicUsize::new(0),
        }
    }

    /// Counts a passing case; after `total` of them, prints the counts. (Proptest runs
    /// `total` new cases after replaying the persisted ones and offers no hook after the last
    /// one, so the figures leave out the last few cases. No assertion here: a panic would be
    /// shrunk and persisted as a regression of the world at hand; `kernel_vs_calico_model`,
    /// on the same generator, fails when too few flows involve administrators' policy.)
    fn case_passed(&self, name: &str, total: u32) {
        let cases = self.cases.fetch_add(1, Ordering::Relaxed) + 1;
        if cases != total as usize {
            return;
        }
        let flows = self.flows.load(Ordering::Relaxed);
        let through = self.through.load(Ordering::Relaxed);
        let decided = self.decided.load(Ordering::Relaxed);
        eprintln!(
            "{name}: {cases} cases, {flows} flow checks; {through} through kube-admin/kube-baseline, {decided} decided by a ClusterNetworkPolicy/ANP/BANP rule"
        );
    }
}

static SINGLE: Counts = Counts::new();
static INCREMENTAL: Counts = Counts::new();

fn check_flows(
    case: &CalicoCase,
    cluster: &Cluster,
    maps: &MapContents,
    picks: &[FlowPick],
    icmp: &[IcmpPick],
    counts: &Counts,
) -> Result<(), TestCaseError> {
    for flow in case.flows(picks, icmp) {
        let model = case.world.verdict(&flow.model);
        counts.flows.fetch_add(1, Ordering::Relaxed);
        counts.through.fetch_add(
            usize::from(model.through_cluster_tiers()),
            Ordering::Relaxed,
        );
        counts.decided.fetch_add(
            usize::from(model.decided_by_cluster_policy()),
            Ordering::Relaxed,
        );
        let packet = Packet {
            src: flow.src,
            dst: flow.dst,
            protocol: flow.protocol,
            sport: flow.sport,
            dport: flow.key_port,
        };
        let endpoint = |ip: IpAddr| {
            maps.endpoints
                .contains_key(&policy_common::endpoint::EndpointKey {
                    addr: policy_agent::compiler::identity_addr(ip),
                })
        };
        let egress = !endpoint(flow.src) || replay::allows(maps, &packet, Direction::FromEndpoint);
        let ingress = !endpoint(flow.dst) || replay::allows(maps, &packet, Direction::ToEndpoint);
        prop_assert_eq!(
            egress && ingress,
            model.allowed,
            "{}: compiled egress {} ingress {}\nmodel:\n{}\nresources:\n{}",
            flow.model,
            egress,
            ingress,
            model,
            case.yaml
        );
        let explained = trace(
            cluster,
            &scope(case),
            &TracePacket {
                src: flow.src,
                dst: flow.dst,
                protocol: flow.protocol,
                sport: flow.sport,
                dport: flow.key_port,
            },
        );
        prop_assert_eq!(
            explained.allowed(),
            model.allowed,
            "explain on {}: {:?}\nresources:\n{}",
            flow.model,
            explained,
            case.yaml
        );
    }
    Ok(())
}

/// Saved failures, replayed first. Named outright: by default proptest looks for them beside
/// the test binary's root (`tests/models/main.rs`), not beside this file.
fn saved_failures() -> Option<Box<dyn FailurePersistence>> {
    Some(Box::new(FileFailurePersistence::Direct(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/models/compiler_vs_calico_model.proptest-regressions"
    ))))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_from_env(CASES), failure_persistence: saved_failures(), ..ProptestConfig::default() })]

    #[test]
    fn compiled_ordered_tables_agree_with_the_calico_model(
        case in calico_case(),
        picks in flow_picks(24),
        icmp in icmp_picks(8),
    ) {
        let cluster = case.agent_cluster();
        let maps = Compiler::new().compile(&cluster, &scope(&case)).maps;
        check_flows(&case, &cluster, &maps, &picks, &icmp, &SINGLE)?;
        SINGLE.case_passed("compiled_ordered_tables_agree_with_the_calico_model", cases_from_env(CASES));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_from_env(CASES) / 4, failure_persistence: saved_failures(), ..ProptestConfig::default() })]

    #[test]
    fn incremental_ordered_compiles_agree_with_the_model_and_leave_nothing_behind(
        case in calico_case(),
        edits in edits(6),
        calico_edits in prop::collection::vec(calico_edit(), 6),
        picks in flow_picks(16),
        icmp in icmp_picks(4),
    ) {
        // The world and the edits of `calico_edit` reach the model as YAML, read by the
        // model itself (`CalicoWorld::read`, `CalicoWorld::extend_from_yaml`).
        let mut case = case;
        let mut compiler = Compiler::new();
        // What a sync that writes only the reported changes leaves in the maps.
        let mut synced = MapContents::default();
        leftovers::follow(&mut synced, &compiler.compile(&case.agent_cluster(), &scope(&case)));
        // Each step edits the Kubernetes objects, then the Calico policies.
        for (edit, calico_edit) in edits.iter().zip(&calico_edits) {
            let mut kubernetes = case.kubernetes_world();
            edit.apply(&mut kubernetes);
            case.world.namespaces = kubernetes.namespaces;
            case.world.pods = kubernetes.pods;
            case.world.k8s_policies = kubernetes.policies;
            step(&mut compiler, &mut synced, &case, &picks, &icmp, &format!("{edit:?}"))?;
            case.apply(calico_edit);
            step(&mut compiler, &mut synced, &case, &picks, &icmp, &format!("{calico_edit:?}"))?;
        }
        INCREMENTAL.case_passed(
            "incremental_ordered_compiles_agree_with_the_model_and_leave_nothing_behind",
            cases_from_env(CASES) / 4,
        );
    }
}

/// One incremental compile after `edit`: the maps agree with the model, a sync of only the
/// reported changes arrives at them, and nothing is left behind.
fn step(
    compiler: &mut Compiler,
    synced: &mut MapContents,
    case: &CalicoCase,
    picks: &[FlowPick],
    icmp: &[IcmpPick],
    edit: &str,
) -> Result<(), TestCaseError> {
    let cluster = case.agent_cluster();
    let compiled = compiler.compile(&cluster, &scope(case));
    leftovers::follow(synced, &compiled);
    prop_assert!(
        *synced == *compiled.maps,
        "the changes reported after {} miss entries",
        edit
    );
    let maps = compiled.maps;
    check_flows(case, &cluster, &maps, picks, icmp, &INCREMENTAL)?;
    let fresh = Compiler::new().compile(&cluster, &scope(case)).maps;
    prop_assert_eq!(
        leftovers::counts(&maps),
        leftovers::counts(&fresh),
        "entries (endpoints, identities, unordered rules) after {}",
        edit
    );
    let orphans = leftovers::orphans(&maps);
    prop_assert!(
        orphans.is_empty(),
        "entries left behind after {}: {:?}",
        edit,
        orphans
    );
    Ok(())
}

// ---- Crafted worlds: administrators' policy at its corners ----

/// Namespaces `prod` (team=a) and `dev` (team=b); web (8080/TCP named `http`, 53/UDP named
/// `dns`) and db in prod, client in dev.
const PODS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {team: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  containers:
  - name: c
    ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]
status: {phase: Running, podIP: 10.0.0.10, podIPs: [{ip: 10.0.0.10}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: prod, labels: {app: db}}
spec: {containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.0.11, podIPs: [{ip: 10.0.0.11}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: dev, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.0.12, podIPs: [{ip: 10.0.0.12}]}
";

/// The world of `PODS` and `objects`, as a case of the generator's (the agent gets the
/// administrators' policies through `Cluster::insert_cluster_policy`).
fn crafted(objects: &str) -> CalicoCase {
    use policy_agent::calico::resources::{CalicoResource, parse_documents};
    let yaml = format!("{PODS}---\n{objects}");
    let mut world = CalicoWorld::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    world.node_addrs = vec!["10.0.0.1".parse().expect("addr")];
    // The agent's own reading of the Calico resources among `objects`.
    let calico: Vec<&str> = objects
        .split("\n---")
        .filter(|d| d.contains("projectcalico.org/"))
        .collect();
    let resources: Vec<CalicoResource> = parse_documents(&calico.join("\n---\n"))
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    CalicoCase {
        world,
        yaml,
        resources,
    }
}

/// Every ordered pair of the pods and an outside address, on TCP 80 and 8080, UDP 53 and
/// 8080, SCTP 9000 and ICMP echo: the model and the compiled maps must agree on each.
fn crafted_disagreements(case: &CalicoCase) -> Vec<String> {
    use palisade_tests::calico_reference::Packet as ModelPacket;
    use policy_agent::calico::resources::Protocol;
    let cluster = case.agent_cluster();
    let maps = Compiler::new().compile(&cluster, &scope(case)).maps;
    let addrs: Vec<IpAddr> = ["10.0.0.10", "10.0.0.11", "10.0.0.12", "192.0.2.7"]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
    let mut out = Vec::new();
    for &src in &addrs {
        for &dst in addrs.iter().filter(|d| **d != src) {
            let mut packets: Vec<ModelPacket> =
                [(6, 80), (6, 8080), (17, 53), (17, 8080), (132, 9000)]
                    .into_iter()
                    .map(|(protocol, port)| {
                        ModelPacket::new(src, dst, Protocol(protocol), 40_000, port)
                    })
                    .collect();
            packets.push(ModelPacket::icmp(src, dst, 8, 0));
            for model_packet in packets {
                let key_port = match model_packet.icmp {
                    Some(icmp) => u16::from(icmp.icmp_type) << 8 | u16::from(icmp.code),
                    None => model_packet.dst_port,
                };
                let packet = Packet {
                    src,
                    dst,
                    protocol: model_packet.protocol,
                    sport: model_packet.src_port,
                    dport: key_port,
                };
                let endpoint = |ip: IpAddr| {
                    maps.endpoints
                        .contains_key(&policy_common::endpoint::EndpointKey {
                            addr: policy_agent::compiler::identity_addr(ip),
                        })
                };
                let egress =
                    !endpoint(src) || replay::allows(&maps, &packet, Direction::FromEndpoint);
                let ingress =
                    !endpoint(dst) || replay::allows(&maps, &packet, Direction::ToEndpoint);
                let model = case.world.verdict(&model_packet);
                if (egress && ingress) != model.allowed {
                    out.push(format!(
                        "{model_packet}: compiled egress {egress} ingress {ingress}\nmodel:\n{model}"
                    ));
                }
            }
        }
    }
    out
}

fn assert_crafted_agree(objects: &str) {
    let case = crafted(objects);
    let disagreements = crafted_disagreements(&case);
    assert!(
        disagreements.is_empty(),
        "{}\nresources:\n{}",
        disagreements.join("\n"),
        case.yaml
    );
}

#[test]
fn crafted_admin_pass_then_network_policy_then_baseline() {
    assert_crafted_agree(
        "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: owners-decide}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress:
  - {action: Pass, from: [{namespaces: {matchLabels: {team: b}}}]}
  - {action: Deny, from: [{namespaces: {}}], protocols: [{udp: {destinationPort: {number: 53}}}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: db}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {team: b}}}]}]
  egress: [{action: Deny, to: [{networks: [192.0.2.0/24]}]}]
",
    );
}

#[test]
fn crafted_equal_priorities_and_named_ports() {
    assert_crafted_agree(
        "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: a-accept-http}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - action: Accept
    from: [{namespaces: {}}]
    protocols: [{destinationNamedPort: http}, {destinationNamedPort: dns}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: z-deny-8080}
spec:
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - action: Deny
    from: [{pods: {namespaceSelector: {matchLabels: {team: b}}, podSelector: {}}}]
    ports: [{portRange: {protocol: TCP, start: 8000, end: 8100}}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: b-deny-rest}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
  egress:
  - {action: Deny, to: [{networks: [10.0.0.10/32]}], protocols: [{udp: {destinationPort: {number: 8080}}}]}
",
    );
}

#[test]
fn crafted_baseline_pass_and_calico_policies_in_the_builtin_tiers() {
    // Baseline: a Pass (only ClusterNetworkPolicies have it there) before the BANP's Deny, a
    // Calico policy at the same order whose name sorts after the translations', and a
    // declared kube-admin tier repeating its built-in values.
    assert_crafted_agree(
        "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: kube-admin}
spec: {order: 1000, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: kube-admin.deny-sctp}
spec:
  tier: kube-admin
  order: 0
  selector: all()
  ingress: [{action: Deny, protocol: SCTP}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: accept-sctp-from-dev}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {matchLabels: {team: b}}}], protocols: [{sctp: {destinationPort: {number: 9000}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: pass-dev}
spec:
  tier: Baseline
  priority: 0
  subject: {namespaces: {}}
  ingress: [{action: Pass, from: [{namespaces: {matchLabels: {team: b}}}]}]
  egress: [{action: Pass, to: [{networks: [0.0.0.0/0]}], protocols: [{udp: {destinationPort: {number: 53}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
  egress: [{action: Deny, to: [{networks: [0.0.0.0/0]}]}]
",
    );
}

/// A disagreement this model found, and how it ended: the network-policy-api selectors select
/// on the objects' own labels, but the agent evaluates them (through their Calico translation,
/// as Calico 3.32 does) on Calico's endpoint labels, which add `projectcalico.org/name` to every
/// namespace and `projectcalico.org/namespace`, `/orchestrator` and `/serviceaccount` to every
/// pod. A selector on those keys selected other pods than the API says (each world below had
/// 36, 36 and 12 disagreeing flows), and Calico overrides a user's label of those keys, so the
/// translation cannot recover it. Validation now refuses such keys with the field named: the
/// agent enforces none of these policies rather than enforcing them wrongly.
#[test]
fn selectors_on_calico_automatic_labels_are_refused() {
    for objects in [
        // Every namespace lacks the label: the API denies everything, the agent nothing.
        "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-all}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchExpressions: [{key: projectcalico.org/name, operator: DoesNotExist}]}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
",
        // Every pod lacks the label: a peer of every pod for the API, of none for the agent.
        "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-all}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{pods: {podSelector: {matchExpressions: [{key: projectcalico.org/orchestrator, operator: DoesNotExist}]}}}]}]
",
        // No pod has the label: no subject for the API, dev's pods for the agent.
        "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-all}
spec:
  tier: Admin
  priority: 1
  subject: {pods: {podSelector: {matchLabels: {projectcalico.org/namespace: dev}}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
",
    ] {
        let value: serde_yaml::Value = serde_yaml::from_str(objects).expect("test YAML");
        let refused = policy_agent::cluster_policy::parse_value(
            policy_agent::cluster_policy::ApiKind::ClusterNetworkPolicy,
            value,
        )
        .expect_err("a selector on a projectcalico.org/ key is refused");
        assert!(refused.field.ends_with(".key") || refused.field.ends_with(".matchLabels"));
        assert!(refused.message.contains("projectcalico.org/"), "{refused}");
    }
}

#[test]
fn crafted_defaults_that_calico_fills_in() {
    // Every field below is left for Calico to default, and each default decides a verdict:
    // the agent reads them through its validation, the model applies them itself, so a
    // defaulting bug on one side shows here (the generator leaves out `types`, `order`,
    // `spec.tier` and a Service's namespace, but always writes a tier's order and action and
    // a NetworkPolicy's namespace, and never declares a built-in tier).
    // * Tier `strict`, no spec: order after every number (so after `default`), Deny.
    // * `strict.only-web`: no `types`, ingress rules only: Ingress alone.
    // * `isolate-db`: no rules and no `types`: Ingress.
    // * kube-admin declared with an empty spec: Calico's fixed order and Pass all the same.
    // * `deny-egress`, a NetworkPolicy without a namespace: namespace `default` (no pod).
    // * `allow-client-in` without an order comes after `deny-udp-to-client` at 500.
    assert_crafted_agree(
        "
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: strict}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: kube-admin}
spec: {}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: strict.only-web}
spec:
  tier: strict
  selector: app == 'web'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: isolate-db}
spec:
  selector: app == 'db'
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: kube-admin.pass-client}
spec:
  tier: kube-admin
  order: 1
  selector: app == 'client'
  egress: [{action: Log}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: deny-egress}
spec:
  types: [Egress]
  egress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-udp-to-client}
spec:
  order: 500
  selector: app == 'client'
  ingress: [{action: Deny, protocol: UDP}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-client-in}
spec:
  selector: app == 'client'
  ingress: [{action: Allow}]
",
    );
}
