//! Per-rule counts on the real datapath (`BPF_PROG_TEST_RUN`): every packet policy decides is
//! counted against the rule that decided it, first packets that open a connection as flows
//! too, later packets of a tracked connection not at all, and the agent's totals name each
//! rule by policy, rule and action, exactly, from a known number of crafted packets.
//! Privileged: needs root (a failure under CI=true).

use palisade_tests::{require_root, scratch::Scratch};

use crate::shop::{ACK, BAD, CLIENT, PODS, SYN, tcp};
use policy_agent::{
    compiler::{Compiler, Scope},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    flows,
    replay::Direction,
    rule_hits::{Counts, RuleCount, RuleHitTotals},
};

/// Web's ingress (a Calico policy) and the client's egress (a Kubernetes one).
const POLICIES: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: web-ingress}
spec:
  selector: app == 'web'
  types: [Ingress]
  ingress:
    - action: Deny
      source: {selector: app == 'bad'}
    - action: Allow
      protocol: TCP
      destination: {ports: [8080]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
    - ports: [{port: 8080}]
"#;

/// A TCP segment's frame (see [`tcp`]).
fn frame(src: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    tcp(src, sport, dport, flags).1
}

fn counted(counts: &[RuleCount], kind: &str, name: &str, rule: &str, action: &str) -> Counts {
    counts
        .iter()
        .find(|c| {
            let id = &c.rule;
            (
                id.policy.kind.as_str(),
                id.policy.name.as_str(),
                id.rule.as_str(),
                id.action.as_str(),
            ) == (kind, name, rule, action)
        })
        .map(|c| c.counts)
        .unwrap_or_default()
}

#[test]
fn each_rule_counts_the_packets_it_decided_and_the_flows_it_opened() {
    if !require_root("each_rule_counts_the_packets_it_decided_and_the_flows_it_opened") {
        return;
    }
    let scratch = Scratch::new("rule-hits", "counts");
    scratch.write("pods.yaml", PODS);
    scratch.write("policies.yaml", POLICIES);
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading the manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let compiled = Compiler::new().compile(&snapshot.cluster, &Scope::default());
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    datapath
        .apply(&Default::default(), &compiled.maps)
        .expect("programming the maps");
    let tables = flows::table_names(&compiled);
    let run = |direction, frame: &[u8]| {
        datapath
            .test_run(direction, frame, 1)
            .expect("test run")
            .allowed()
    };

    // Web's ingress: five new connections from the client, each its first packet only; then
    // three more packets of the last one (tracked: no policy lookup, not counted).
    for sport in 40_000..40_005 {
        assert!(run(Direction::ToEndpoint, &frame(CLIENT, sport, 8080, SYN)));
    }
    for _ in 0..3 {
        assert!(run(
            Direction::ToEndpoint,
            &frame(CLIENT, 40_004, 8080, ACK)
        ));
    }
    // Four packets from `bad` (the Deny rule), two to a port nothing allows (the tier's
    // default action); a segment that cannot open a connection, allowed but opening none.
    for sport in 41_000..41_004 {
        assert!(!run(Direction::ToEndpoint, &frame(BAD, sport, 8080, SYN)));
    }
    for sport in 42_000..42_002 {
        assert!(!run(
            Direction::ToEndpoint,
            &frame(CLIENT, sport, 9999, SYN)
        ));
    }
    assert!(run(
        Direction::ToEndpoint,
        &frame(CLIENT, 43_000, 8080, ACK)
    ));
    // The client's egress (a Kubernetes policy): two connections out.
    for sport in 44_000..44_002 {
        assert!(run(
            Direction::FromEndpoint,
            &frame(CLIENT, sport, 8080, SYN)
        ));
    }

    let mut totals = RuleHitTotals::default();
    totals.update(datapath.rule_hits().expect("reading the counters"), &tables);
    let counts = totals.counts();
    let gnp = |rule, action| counted(&counts, "GlobalNetworkPolicy", "web-ingress", rule, action);
    assert_eq!(
        gnp("ingress[1]", "allow"),
        Counts {
            packets: 6,
            flows: 5
        },
        "{counts:#?}"
    );
    assert_eq!(
        gnp("ingress[0]", "deny"),
        Counts {
            packets: 4,
            flows: 0
        }
    );
    assert_eq!(
        gnp("default", "deny"),
        Counts {
            packets: 2,
            flows: 0
        }
    );
    assert_eq!(
        counted(
            &counts,
            "NetworkPolicy",
            "client-egress",
            "egress[0]",
            "allow"
        ),
        Counts {
            packets: 2,
            flows: 2
        }
    );
    assert_eq!(counts.len(), 4, "{counts:#?}");

    // Read again after two more: only the new ones are added.
    for sport in 45_000..45_002 {
        assert!(run(Direction::ToEndpoint, &frame(CLIENT, sport, 8080, SYN)));
    }
    totals.update(datapath.rule_hits().expect("reading the counters"), &tables);
    let counts = totals.counts();
    assert_eq!(
        counted(
            &counts,
            "GlobalNetworkPolicy",
            "web-ingress",
            "ingress[1]",
            "allow"
        ),
        Counts {
            packets: 8,
            flows: 7
        }
    );
}
