//! Drop reasons on the real datapath (`BPF_PROG_TEST_RUN`): each kind of drop is counted under
//! its own reason in `PALISADE_COUNTERS`, and, with flow events on, its event carries the
//! same reason, and the replay (what `policy-agent explain` runs) gives it for the drops
//! policy decides. One crafted packet per reason, counted exactly.
//! Privileged: needs root (a failure under CI=true).

use palisade_tests::{require_root, scratch::Scratch};

use crate::shop::{ACK, BAD, CLIENT, PODS, SYN, WEB, ip, tcp};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope, identity_addr},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    flows::FlowReader,
    model::Cluster,
    replay::{self, Direction, Packet},
};
use policy_common::{
    counters::{Counters, drop_reason},
    endpoint::EndpointKey,
};

/// Web's ingress: `bad` is denied by a rule; TCP 8080 is allowed; anything else meets the
/// tier's default action (the implicit deny, not a rule).
const CALICO: &str = r#"
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
"#;

/// The same admission as a NetworkPolicy: no rule entries at all for what it does not allow.
const KUBERNETES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - ports: [{port: 8080}]
"#;

fn load(scratch: &Scratch, policy: &str) -> Cluster {
    scratch.write("policy.yaml", policy);
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading the manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    snapshot.cluster
}

struct Node {
    datapath: Datapath,
    maps: MapContents,
    events: FlowReader,
}

impl Node {
    /// Delivers `frame` to web (its ingress check); returns whether it passed and, if it was
    /// dropped, the one reason counted for it and the reason of the one event it wrote.
    fn deliver(&mut self, frame: &[u8]) -> (bool, Option<u8>, Vec<u8>) {
        let before = self.counters();
        let passed = self
            .datapath
            .test_run(Direction::ToEndpoint, frame, 1)
            .expect("test run")
            .allowed();
        let after = self.counters();
        let counted: Vec<u8> = drop_reason::ALL
            .into_iter()
            .filter(|r| after.drops[usize::from(*r)] != before.drops[usize::from(*r)])
            .collect();
        assert!(counted.len() <= 1, "one drop counted once: {counted:?}");
        assert_eq!(
            after.allowed - before.allowed,
            u64::from(passed),
            "a pass is counted as allowed"
        );
        for reason in &counted {
            assert_eq!(
                after.drops[usize::from(*reason)] - before.drops[usize::from(*reason)],
                1
            );
        }
        let events = std::iter::from_fn(|| self.events.next_event())
            .map(|event| {
                assert_eq!(event.allowed, u8::from(passed));
                event.reason
            })
            .collect();
        (passed, counted.first().copied(), events)
    }

    fn counters(&self) -> Counters {
        self.datapath
            .counters()
            .expect("reading the counters")
            .values()
            .fold(Counters::default(), |mut total, c| {
                total.add(c);
                total
            })
    }

    fn program(&mut self, maps: &MapContents) {
        self.datapath.apply(&self.maps, maps).expect("programming");
        self.maps = maps.clone();
    }
}

fn node(scratch: &Scratch, policy: &str) -> Node {
    let maps = (*Compiler::new()
        .compile(&load(scratch, policy), &Scope::default())
        .maps)
        .clone();
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    datapath
        .apply(&MapContents::default(), &maps)
        .expect("programming");
    datapath.set_flow_events(true).expect("flow events on");
    let events = datapath.take_flows().expect("the ring");
    Node {
        datapath,
        maps,
        events,
    }
}

/// The reason the replay gives, for the drops policy decides.
fn replayed(maps: &MapContents, packet: &Packet) -> Option<u8> {
    replay::decide(maps, packet, Direction::ToEndpoint).drop_reason()
}

#[test]
fn every_drop_is_counted_and_reported_under_its_reason() {
    if !require_root("every_drop_is_counted_and_reported_under_its_reason") {
        return;
    }
    let scratch = Scratch::new("drops", "calico");
    scratch.write("pods.yaml", PODS);
    let mut node = node(&scratch, CALICO);

    // Allowed: counted as allowed, and with flow events on it writes an event too.
    let (packet, frame) = tcp(CLIENT, 40_000, 8080, SYN);
    assert_eq!(node.deliver(&frame), (true, None, vec![0]));
    assert_eq!(replayed(&node.maps, &packet), None);

    // The tier's default action: the implicit deny, no rule.
    let (packet, frame) = tcp(CLIENT, 40_000, 9999, SYN);
    let no_rule = drop_reason::NO_RULE;
    assert_eq!(node.deliver(&frame), (false, Some(no_rule), vec![no_rule]));
    assert_eq!(replayed(&node.maps, &packet), Some(no_rule));

    // A Deny rule.
    let (packet, frame) = tcp(BAD, 40_000, 8080, SYN);
    let deny = drop_reason::DENY_RULE;
    assert_eq!(node.deliver(&frame), (false, Some(deny), vec![deny]));
    assert_eq!(replayed(&node.maps, &packet), Some(deny));

    // To an address no endpoint has.
    let unknown = Packet {
        dst: ip("10.42.0.99"),
        ..packet
    };
    let reason = drop_reason::UNKNOWN_ENDPOINT;
    assert_eq!(
        node.deliver(&unknown.to_frame()),
        (false, Some(reason), vec![reason])
    );
    assert_eq!(replayed(&node.maps, &unknown), Some(reason));

    // A later fragment whose first fragment was never seen.
    let (_, mut fragment) = tcp(CLIENT, 40_000, 8080, SYN);
    fragment[14 + 6..14 + 8].copy_from_slice(&0x0010u16.to_be_bytes());
    let reason = drop_reason::FRAGMENT;
    assert_eq!(node.deliver(&fragment), (false, Some(reason), vec![reason]));

    // Headers that do not parse: counted, no event (the addresses may be half read).
    let (_, mut malformed) = tcp(CLIENT, 40_000, 8080, SYN);
    malformed[14] = 0x44;
    let reason = drop_reason::MALFORMED;
    assert_eq!(node.deliver(&malformed), (false, Some(reason), vec![]));

    // A connection the policy allowed, then no longer allows: cut at its next packet.
    let (_, syn) = tcp(CLIENT, 40_000, 8080, SYN);
    assert!(node.deliver(&syn).0);
    let (_, ack) = tcp(CLIENT, 40_000, 8080, ACK);
    assert_eq!(
        node.deliver(&ack),
        (true, None, vec![]),
        "tracked: no event"
    );
    let closed = (*Compiler::new()
        .compile(
            &load(&scratch, &CALICO.replace("8080", "8081")),
            &Scope::default(),
        )
        .maps)
        .clone();
    node.program(&closed);
    let reason = drop_reason::REVOKED;
    assert_eq!(node.deliver(&ack), (false, Some(reason), vec![reason]));

    // Web's address on an interface that is not web's.
    let mut elsewhere = node.maps.clone();
    elsewhere
        .endpoints
        .get_mut(&EndpointKey {
            addr: identity_addr(ip(WEB)),
        })
        .expect("web is an endpoint")
        .ifindex = 424_242;
    node.program(&elsewhere);
    let (_, frame) = tcp(CLIENT, 40_000, 8081, SYN);
    let reason = drop_reason::SPOOFED;
    assert_eq!(node.deliver(&frame), (false, Some(reason), vec![reason]));
}

#[test]
fn a_networkpolicy_without_a_rule_for_the_packet_drops_it_as_no_rule() {
    if !require_root("a_networkpolicy_without_a_rule_for_the_packet_drops_it_as_no_rule") {
        return;
    }
    let scratch = Scratch::new("drops", "kubernetes");
    scratch.write("pods.yaml", PODS);
    let mut node = node(&scratch, KUBERNETES);
    let (packet, frame) = tcp(CLIENT, 40_000, 8080, SYN);
    assert_eq!(node.deliver(&frame), (true, None, vec![0]));
    assert_eq!(replayed(&node.maps, &packet), None);
    let (packet, frame) = tcp(CLIENT, 40_000, 9999, SYN);
    let reason = drop_reason::NO_RULE;
    assert_eq!(node.deliver(&frame), (false, Some(reason), vec![reason]));
    assert_eq!(replayed(&node.maps, &packet), Some(reason));
}
