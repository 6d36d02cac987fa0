//! ICMPv6 neighbour discovery, router discovery and MLD through the real programs
//! (`BPF_PROG_TEST_RUN`, crafted frames): link plumbing between an endpoint and its own node
//! passes whatever the policy, and every other packet of those types is decided by policy like
//! any ICMPv6 packet. A campaign of crafted packets had used them as a covert channel between
//! pods: routed through the node, from foreign or spoofed sources, with 1,200-byte payloads.
//!
//! Plumbing is on-link (hop limit 255 for neighbour and router discovery, 1 for MLD), to a
//! link-local address, a solicited-node group or the all-nodes, all-routers or MLDv2-routers
//! group (MLD: any `ff02::/16` group), from a link-local or the unspecified address, or for a
//! neighbour solicitation or advertisement from the endpoint's own bound address; and a
//! solicitation or advertisement on-link to the endpoint's own bound address (the node's
//! reachability probe). Both hooks, an isolated endpoint and one no policy selects.
//! Privileged: needs root (a failure under CI=true).

use palisade_tests::{require_root, scratch::Scratch};
use std::{net::Ipv6Addr, sync::Arc};

use policy_agent::{
    compiler::{Compiler, MapContents, Scope, identity_addr},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    replay::Direction,
};
use policy_common::endpoint::EndpointKey;

const CLUSTER: &str = include_str!("data/plumbing/cluster.yaml");

/// No policy selects it.
const FREE: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x20);
/// Isolated both ways; only TCP 80 with FREE.
const ISOLATED: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x21);
/// Isolated both ways; every protocol (ICMPv6 too) with FREE.
const ICMP: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x22);
/// An address of no endpoint (a spoofed or foreign source).
const FOREIGN: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 0x99);
const POD_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x21);
const NODE_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
const UNSPECIFIED: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
const MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
/// The solicited-node group of an address ending in ::21.
const SOLICITED: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x21);
/// A link-scope group some application joined (MLD reports go to it).
const LINK_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x1234);
/// A site-scope group: not link plumbing.
const SITE_GROUP: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 1);

const MLD_QUERY: u8 = 130;
const MLD_REPORT: u8 = 131;
const MLD_DONE: u8 = 132;
const MLDV2_REPORT: u8 = 143;
const RS: u8 = 133;
const RA: u8 = 134;
const NS: u8 = 135;
const NA: u8 = 136;
const REDIRECT: u8 = 137;
const ND_TYPES: [u8; 5] = [RS, RA, NS, NA, REDIRECT];
const MLD_TYPES: [u8; 4] = [MLD_QUERY, MLD_REPORT, MLD_DONE, MLDV2_REPORT];

/// The loopback device: the interface `BPF_PROG_TEST_RUN` runs the programs on.
const HERE: u32 = 1;
const ELSEWHERE: u32 = 424_242;

struct Lab {
    datapath: Datapath,
    programmed: MapContents,
    /// The manifests and pins, removed however the test ends (a failed load included).
    _scratch: Scratch,
}

fn lab(test: &str) -> Lab {
    let scratch = Scratch::new("plumbing", test);
    scratch.write("cluster.yaml", CLUSTER);
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let maps = Arc::unwrap_or_clone(
        Compiler::new()
            .compile(&snapshot.cluster, &Scope::default())
            .maps,
    );
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    datapath
        .apply(&MapContents::default(), &maps)
        .expect("programming");
    Lab {
        datapath,
        programmed: maps,
        _scratch: scratch,
    }
}

impl Lab {
    fn passes(&mut self, direction: Direction, frame: &[u8]) -> bool {
        self.datapath.clear_conntrack().expect("clearing conntrack");
        self.datapath
            .test_run(direction, frame, 1)
            .expect("BPF_PROG_TEST_RUN")
            .allowed()
    }

    /// Sent by the endpoint (its interface's tc ingress).
    fn sent(&mut self, frame: &[u8]) -> bool {
        self.passes(Direction::FromEndpoint, frame)
    }

    /// Delivered to the endpoint (its interface's tc egress).
    fn delivered(&mut self, frame: &[u8]) -> bool {
        self.passes(Direction::ToEndpoint, frame)
    }

    /// Binds the endpoint's address to an interface, as the agent does from its host route.
    fn bind(&mut self, addr: Ipv6Addr, ifindex: u32) {
        let mut maps = self.programmed.clone();
        maps.endpoints
            .get_mut(&EndpointKey {
                addr: identity_addr(addr.into()),
            })
            .expect("an endpoint")
            .ifindex = ifindex;
        self.datapath
            .apply(&self.programmed, &maps)
            .expect("binding");
        self.programmed = maps;
    }
}

const ETHERNET: [u8; 12] = [0x33, 0x33, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];

/// An ICMPv6 message of `icmp_type` with a 16-byte target or group field (what NS, NA,
/// redirects and MLD carry) and `extra` bytes after it; MLD behind a hop-by-hop router alert,
/// as it is sent.
fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, icmp_type: u8, extra: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    let mld = MLD_TYPES.contains(&icmp_type);
    if mld {
        // Hop-by-hop: next header ICMPv6, router alert (MLD), PadN.
        payload.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
    }
    payload.extend_from_slice(&[icmp_type, 0, 0, 0, 0, 0, 0, 0]);
    payload.extend_from_slice(&dst.octets());
    payload.extend(std::iter::repeat_n(0x5a, extra));
    let mut frame = ETHERNET.to_vec();
    frame.extend_from_slice(&0x86ddu16.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&u16::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&[if mld { 0 } else { 58 }, hop_limit]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend(payload);
    frame
}

/// The hop limit a type is sent with on-link.
fn on_link(icmp_type: u8) -> u8 {
    if MLD_TYPES.contains(&icmp_type) {
        1
    } else {
        255
    }
}

#[test]
fn link_local_plumbing_passes_at_both_hooks_whatever_the_policy() {
    if !require_root("link_local_plumbing_passes_at_both_hooks_whatever_the_policy") {
        return;
    }
    let mut lab = lab("link-local");
    for icmp_type in ND_TYPES.into_iter().chain(MLD_TYPES) {
        let hop = on_link(icmp_type);
        for src in [POD_LINK_LOCAL, NODE_LINK_LOCAL, UNSPECIFIED] {
            for dst in [
                NODE_LINK_LOCAL,
                ALL_NODES,
                ALL_ROUTERS,
                MLDV2_ROUTERS,
                SOLICITED,
            ] {
                let frame = icmpv6(src, dst, hop, icmp_type, 0);
                assert!(lab.sent(&frame), "{icmp_type} {src} -> {dst} sent");
                assert!(
                    lab.delivered(&frame),
                    "{icmp_type} {src} -> {dst} delivered"
                );
            }
        }
        // Large payloads do not matter to plumbing that stays on its link.
        let big = icmpv6(POD_LINK_LOCAL, ALL_NODES, hop, icmp_type, 1200);
        assert!(
            lab.sent(&big) && lab.delivered(&big),
            "{icmp_type} 1,200 bytes"
        );
    }
    // MLD reports and queries also go to the link-scope group they are about; neighbour
    // discovery does not.
    for icmp_type in MLD_TYPES {
        let frame = icmpv6(POD_LINK_LOCAL, LINK_GROUP, 1, icmp_type, 0);
        assert!(lab.sent(&frame) && lab.delivered(&frame), "{icmp_type}");
    }
    for icmp_type in ND_TYPES {
        let frame = icmpv6(POD_LINK_LOCAL, LINK_GROUP, 255, icmp_type, 0);
        assert!(!lab.sent(&frame) && !lab.delivered(&frame), "{icmp_type}");
    }
}

#[test]
fn plumbing_shapes_off_the_link_are_decided_by_policy() {
    if !require_root("plumbing_shapes_off_the_link_are_decided_by_policy") {
        return;
    }
    let mut lab = lab("routed");
    for icmp_type in ND_TYPES.into_iter().chain(MLD_TYPES) {
        // Routed through the node (hop limit decremented), between pods' own addresses: the
        // isolated pod's egress and ingress deny ICMPv6; the unselected pod's allow it; a
        // rule without ports allows it.
        let wrong_hops: &[u8] = if MLD_TYPES.contains(&icmp_type) {
            &[2, 64, 255]
        } else {
            &[1, 64, 254]
        };
        for &hop in wrong_hops {
            for extra in [0, 1200] {
                let to_free = icmpv6(ISOLATED, FREE, hop, icmp_type, extra);
                assert!(!lab.sent(&to_free), "{icmp_type} hop {hop} from isolated");
                assert!(lab.delivered(&to_free), "{icmp_type} hop {hop} to free");
                let to_isolated = icmpv6(FREE, ISOLATED, hop, icmp_type, extra);
                assert!(lab.sent(&to_isolated), "{icmp_type} hop {hop} from free");
                assert!(
                    !lab.delivered(&to_isolated),
                    "{icmp_type} hop {hop} to isolated"
                );
                let to_icmp = icmpv6(FREE, ICMP, hop, icmp_type, extra);
                assert!(lab.delivered(&to_icmp), "{icmp_type} hop {hop} to icmp");
                assert!(lab.sent(&icmpv6(ICMP, FREE, hop, icmp_type, extra)));
                // From a link-local or unspecified source off the link: no endpoint's address,
                // nothing to decide for.
                for src in [POD_LINK_LOCAL, UNSPECIFIED] {
                    for dst in [ALL_NODES, SOLICITED, NODE_LINK_LOCAL] {
                        let frame = icmpv6(src, dst, hop, icmp_type, extra);
                        assert!(!lab.sent(&frame), "{icmp_type} hop {hop} {src} -> {dst}");
                        assert!(
                            !lab.delivered(&frame),
                            "{icmp_type} hop {hop} {src} -> {dst}"
                        );
                    }
                }
            }
        }
        let hop = on_link(icmp_type);
        // On-link to another pod's routable address, from the sender's own: bound for
        // another link, so the sender's egress decides (the node would forward it).
        assert!(!lab.sent(&icmpv6(ISOLATED, FREE, hop, icmp_type, 0)));
        assert!(lab.sent(&icmpv6(FREE, ISOLATED, hop, icmp_type, 0)));
        assert!(lab.sent(&icmpv6(ICMP, FREE, hop, icmp_type, 0)));
        // A group beyond the link: not plumbing.
        let site = icmpv6(POD_LINK_LOCAL, SITE_GROUP, hop, icmp_type, 0);
        assert!(
            !lab.sent(&site) && !lab.delivered(&site),
            "{icmp_type} to ff05::1"
        );
        let site = icmpv6(FREE, SITE_GROUP, hop, icmp_type, 0);
        assert!(
            lab.sent(&site),
            "{icmp_type} free to ff05::1: policy allows"
        );
        let site = icmpv6(ISOLATED, SITE_GROUP, hop, icmp_type, 0);
        assert!(
            !lab.sent(&site),
            "{icmp_type} isolated to ff05::1: policy denies"
        );
    }

    // Fragmented (RFC 6980 forbids it): a first fragment is decided by policy, link-local or
    // not.
    let mut fragmented = icmpv6(POD_LINK_LOCAL, ALL_NODES, 255, NS, 0);
    fragmented[14 + 6] = 44;
    fragmented.splice(14 + 40..14 + 40, [58, 0, 0, 1, 0, 0, 0, 7]);
    let len = u16::try_from(fragmented.len() - 14 - 40).expect("small");
    fragmented[14 + 4..14 + 6].copy_from_slice(&len.to_be_bytes());
    assert!(!lab.sent(&fragmented) && !lab.delivered(&fragmented));
}

#[test]
fn routable_sources_and_destinations_are_held_to_the_binding() {
    if !require_root("routable_sources_and_destinations_are_held_to_the_binding") {
        return;
    }
    let mut lab = lab("binding");
    lab.bind(ISOLATED, HERE);
    lab.bind(FREE, ELSEWHERE);
    for icmp_type in [NS, NA] {
        for dst in [SOLICITED, ALL_NODES, ALL_ROUTERS, NODE_LINK_LOCAL] {
            // A solicitation or advertisement from the endpoint's own address (RFC 4861 lets
            // them carry one) to the link: plumbing, on the interface the address is bound to.
            let own = icmpv6(ISOLATED, dst, 255, icmp_type, 0);
            assert!(lab.sent(&own), "{icmp_type} own address -> {dst}");
            // Another endpoint's address (bound elsewhere): spoofed. No endpoint's: foreign.
            assert!(
                !lab.sent(&icmpv6(FREE, dst, 255, icmp_type, 0)),
                "{icmp_type}"
            );
            assert!(
                !lab.sent(&icmpv6(FOREIGN, dst, 255, icmp_type, 0)),
                "{icmp_type}"
            );
            // Delivered to the link from a routable source, on-link: the node's own (nothing
            // else reaches a pod's interface unforwarded).
            assert!(lab.delivered(&icmpv6(FOREIGN, dst, 255, icmp_type, 0)));
        }
        // The node probing the reachability of the endpoint's own address (RFC 4861 7.3.3):
        // plumbing when delivered on the interface that address is bound to.
        let probe = icmpv6(NODE_LINK_LOCAL, ISOLATED, 255, icmp_type, 0);
        assert!(lab.delivered(&probe), "{icmp_type} probe");
        let probe_elsewhere = icmpv6(NODE_LINK_LOCAL, FREE, 255, icmp_type, 0);
        assert!(
            !lab.delivered(&probe_elsewhere),
            "{icmp_type} probe elsewhere"
        );
        // Routed to it instead: the isolated pod's ingress decides (and denies).
        assert!(!lab.delivered(&icmpv6(FOREIGN, ISOLATED, 254, icmp_type, 0)));
    }
    // The other types need a link-local (or unspecified) source, as RFC 4861 and 3810 have
    // them sent: from a routable one, policy decides.
    for icmp_type in [RS, RA, REDIRECT].into_iter().chain(MLD_TYPES) {
        let hop = on_link(icmp_type);
        assert!(!lab.sent(&icmpv6(ISOLATED, ALL_NODES, hop, icmp_type, 0)));
        assert!(!lab.delivered(&icmpv6(NODE_LINK_LOCAL, ISOLATED, hop, icmp_type, 0)));
    }

    // Once the isolated pod's address moves to another interface, the same packets are
    // someone else's.
    lab.bind(ISOLATED, ELSEWHERE);
    assert!(!lab.sent(&icmpv6(ISOLATED, SOLICITED, 255, NS, 0)));
    assert!(!lab.delivered(&icmpv6(NODE_LINK_LOCAL, ISOLATED, 255, NS, 0)));
    // Link-local plumbing does not depend on bindings.
    assert!(lab.sent(&icmpv6(POD_LINK_LOCAL, SOLICITED, 255, NS, 0)));
}
