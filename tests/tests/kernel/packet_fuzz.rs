//! Packet fuzzer: generated clusters and flows, each flow's frame mutated (truncated, lying
//! header and length fields, TCP data offsets below 5, lying UDP lengths, rewritten ports,
//! unrelated fields flipped, fragment bits, IPv6 extension-header chains of every length, IPv6
//! fragments with destination options after the fragment header in both orders of arrival,
//! any TCP flags) or replaced by ICMPv6 neighbour discovery and MLD of every shape (on-link and
//! routed hop limits; link-local, unspecified, own, a peer's and foreign sources; link-scope,
//! wider and routable destinations; 1,200-byte payloads), run through the real programs with
//! `BPF_PROG_TEST_RUN` on maps filled by the real agent code, against the reference model's
//! verdict for the flow the frame claims to be.
//!
//! The invariant, for every packet (no connection is tracked: conntrack and fragment state are
//! cleared before each hook, and before each sequence of fragments): it passes only if policy
//! allows its flow. Where the mutation keeps the packet well-formed and its flow known, the
//! kernel must agree with the model exactly; where it breaks the packet, the kernel must drop
//! it; neighbour discovery and MLD must pass at each hook exactly where the model's
//! `neighbour_plumbing` or, when that says policy decides, the model's verdict for that hook
//! says.
//!
//! Privileged. `PALISADE_FUZZ_CASES` sets the number of clusters (default 1000, ~2.6 packets
//! each). A long run, once, before merging changes to the parser:
//! `PALISADE_FUZZ_CASES=40000 cargo test -p palisade-tests --test packet_fuzz -- --nocapture`
//! (2026-12-07, after the neighbour-discovery, fragment and transport-length changes: 103,103
//! packets, 69,608 passed, every verdict as expected, 164 s on the 2-core machine).

use std::{
    cell::RefCell,
    net::{IpAddr, Ipv6Addr},
};

use palisade_tests::{
    generate::{PORTS, PROTOCOLS, addresses, agent_cluster, flow_picks, protocol_number, world},
    reference::{Flow, Plumbing, World, neighbour_plumbing},
    require_root,
    scratch::Pins,
};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope, identity_addr},
    dataplane::Datapath,
    replay::{Direction, Packet},
};
use policy_common::endpoint::EndpointKey;
use proptest::{
    prelude::*,
    test_runner::{Config, TestError, TestRunner},
};

/// What is done to a valid frame.
#[derive(Debug, Clone)]
enum Mutation {
    /// Left as it is.
    None,
    /// Cut to this fraction (in 1/256) of its length.
    Truncate(u8),
    /// IPv4 header length field set below 5 words.
    ShortIhl(u8),
    /// IPv4 total length / IPv6 payload length longer than the frame.
    LongLength(u16),
    /// IPv4 total length shorter than the header.
    ShortTotalLength(u8),
    /// Destination port rewritten: the frame now claims another flow.
    Port(u16),
    /// A byte no decision depends on (TOS, TTL, checksum, IPv6 flow label) flipped.
    Unrelated(u8, u8),
    /// A later fragment (non-zero offset) whose first fragment was never seen.
    LaterFragment(u16),
    /// A first fragment (more-fragments set, offset 0): decided by its ports.
    FirstFragment(u16),
    /// IPv6 only: this many destination-options headers before the transport header.
    ExtensionChain(u8),
    /// TCP only: any combination of flags (SYN+FIN, none, all...): decided by its ports.
    TcpFlags(u8),
    /// TCP only: this data offset (below 5 words: malformed).
    TcpOffset(u8),
    /// UDP only: this length field (below 8 or beyond the IP payload: malformed).
    UdpLength(u16),
    /// IPv6 only: the packet as two fragments with a destination-options header after the
    /// fragment header (the later fragment's fragment header names it); the later fragment
    /// first, then the first and the later again, when `later_first`.
    FragmentsAfterOptions { later_first: bool },
    /// IPv6 only: the frame replaced by an ICMPv6 neighbour-discovery or MLD message.
    Neighbour(NeighbourShape),
}

/// An ICMPv6 neighbour-discovery or MLD message, its addresses picked around the flow's.
#[derive(Debug, Clone)]
struct NeighbourShape {
    icmp_type: u8,
    hop_limit: u8,
    /// Index into [`NeighbourShape::sources`].
    src: u8,
    /// Index into [`NeighbourShape::destinations`].
    dst: u8,
    /// MLD behind a hop-by-hop router alert, as it is sent (any type may carry one).
    router_alert: bool,
    /// 1,200 bytes of payload after the message (the covert channel's size).
    big: bool,
}

const LINK_LOCAL_A: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, 2);
const LINK_LOCAL_B: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 3, 4);
/// No endpoint's, no node's, no generated ipBlock's in particular.
const FOREIGN: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 0x99);

impl NeighbourShape {
    fn sources(sender: Ipv6Addr, receiver: Ipv6Addr) -> [Ipv6Addr; 5] {
        [
            LINK_LOCAL_A,
            Ipv6Addr::UNSPECIFIED,
            sender,
            receiver,
            FOREIGN,
        ]
    }

    fn destinations(sender: Ipv6Addr, receiver: Ipv6Addr) -> [Ipv6Addr; 9] {
        let [.., a, b] = receiver.segments();
        [
            LINK_LOCAL_B,
            // The receiver's solicited-node group.
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | (a & 0xff), b),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x1234),
            Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 1),
            receiver,
            sender,
        ]
    }
}

fn neighbour_shape() -> impl Strategy<Value = NeighbourShape> {
    (
        prop::sample::select(vec![130u8, 131, 132, 143, 133, 134, 135, 136, 137]),
        prop::sample::select(vec![255u8, 255, 1, 1, 254, 64, 2]),
        0u8..5,
        0u8..9,
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(icmp_type, hop_limit, src, dst, router_alert, big)| NeighbourShape {
                icmp_type,
                hop_limit,
                src,
                dst,
                router_alert,
                big,
            },
        )
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::None),
        1 => any::<u8>().prop_map(Mutation::Truncate),
        1 => (0u8..5).prop_map(Mutation::ShortIhl),
        1 => (1u16..2000).prop_map(Mutation::LongLength),
        1 => (0u8..20).prop_map(Mutation::ShortTotalLength),
        2 => prop::sample::select(PORTS.to_vec()).prop_map(Mutation::Port),
        1 => (0u8..4, 1u8..=255).prop_map(|(field, bits)| Mutation::Unrelated(field, bits)),
        1 => (1u16..0x1fff).prop_map(Mutation::LaterFragment),
        1 => any::<u16>().prop_map(Mutation::FirstFragment),
        2 => (0u8..13).prop_map(Mutation::ExtensionChain),
        1 => any::<u8>().prop_map(Mutation::TcpFlags),
        1 => (0u8..16).prop_map(Mutation::TcpOffset),
        1 => prop_oneof![0u16..8, 8u16..=12, 13u16..2000, any::<u16>()].prop_map(Mutation::UdpLength),
        1 => any::<bool>().prop_map(|later_first| Mutation::FragmentsAfterOptions { later_first }),
        3 => neighbour_shape().prop_map(Mutation::Neighbour),
    ]
}

const ETH: usize = 14;

/// What the kernel must do with a mutated frame.
enum Expect {
    /// Agree with the model on this flow.
    Model(Flow),
    /// Pass only if the model allows every protocol and port between the two addresses.
    AnyProtocolOnly,
    /// Drop it.
    Drop,
    /// Pass exactly at the hooks named (the endpoint sending it, the one it is delivered to).
    Hooks { sent: bool, delivered: bool },
}

/// What the hooks of the model's world see and decide, for expectations that depend on them.
struct Judge<'a> {
    world: &'a World,
    is_endpoint: &'a dyn Fn(IpAddr) -> bool,
}

/// Applies `mutation` to the frame of `packet`: the frames to run in order (state is kept
/// between them), and what must happen to each.
fn mutate(
    packet: &Packet,
    flow: Flow,
    mutation: &Mutation,
    judge: &Judge,
) -> Vec<(Vec<u8>, Expect)> {
    let v6_pair = match (packet.src, packet.dst) {
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some((src, dst)),
        _ => None,
    };
    match (mutation, v6_pair) {
        (Mutation::FragmentsAfterOptions { later_first }, Some(_)) => {
            let frame = packet.to_frame();
            let first = ipv6_fragment_after_options(&frame, true);
            let later = ipv6_fragment_after_options(&frame, false);
            let mut frames = Vec::new();
            if *later_first {
                // Never decided without ports.
                frames.push((later.clone(), Expect::Drop));
            }
            frames.push((first, Expect::Model(flow)));
            frames.push((later, Expect::Model(flow)));
            frames
        }
        (Mutation::Neighbour(shape), Some((src, dst))) => vec![neighbour(shape, src, dst, judge)],
        _ => vec![mutate_one(packet, flow, mutation)],
    }
}

/// An ICMPv6 neighbour-discovery or MLD message between addresses around the flow's
/// (`sender`, `receiver`), and where it must pass.
fn neighbour(
    shape: &NeighbourShape,
    sender: Ipv6Addr,
    receiver: Ipv6Addr,
    judge: &Judge,
) -> (Vec<u8>, Expect) {
    let src = NeighbourShape::sources(sender, receiver)[usize::from(shape.src)];
    let dst = NeighbourShape::destinations(sender, receiver)[usize::from(shape.dst)];
    let mut payload = Vec::new();
    if shape.router_alert {
        payload.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
    }
    payload.extend_from_slice(&[shape.icmp_type, 0, 0, 0, 0, 0, 0, 0]);
    payload.extend_from_slice(&receiver.octets());
    if shape.big {
        payload.extend(std::iter::repeat_n(0xa5, 1200));
    }
    let mut frame = vec![0x33, 0x33, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd];
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&u16::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&[if shape.router_alert { 0 } else { 58 }, shape.hop_limit]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend(payload);
    let icmp = Flow {
        src: src.into(),
        dst: dst.into(),
        protocol: "ICMPv6",
        port: u16::from(shape.icmp_type) << 8,
    };
    let at_hook = |delivered: bool| {
        match neighbour_plumbing(shape.icmp_type, shape.hop_limit, src, dst, false, delivered) {
            Plumbing::Passes => true,
            // Not the endpoint's address: decided as a packet of an address that is no
            // endpoint's at this hook, which drops it.
            Plumbing::IfEndpoint(addr) => (judge.is_endpoint)(addr.into()),
            Plumbing::Policy if delivered => {
                (judge.is_endpoint)(icmp.dst) && judge.world.ingress_allows_flow(&icmp)
            }
            Plumbing::Policy => {
                (judge.is_endpoint)(icmp.src) && judge.world.egress_allows_flow(&icmp)
            }
        }
    };
    (
        frame,
        Expect::Hooks {
            sent: at_hook(false),
            delivered: at_hook(true),
        },
    )
}

/// A single-frame mutation.
fn mutate_one(packet: &Packet, flow: Flow, mutation: &Mutation) -> (Vec<u8>, Expect) {
    let mut frame = packet.to_frame();
    let v4 = packet.src.is_ipv4();
    let l4 = if v4 { ETH + 20 } else { ETH + 40 };
    match *mutation {
        Mutation::None => (frame, Expect::Model(flow)),
        Mutation::Truncate(fraction) => {
            // At least the IP header: the kernel's test runner refuses frames without one.
            let len = frame.len() * usize::from(fraction) / 256;
            frame.truncate(len.max(l4));
            // The IP header's length field now lies about the frame: dropped.
            (frame, Expect::Drop)
        }
        Mutation::ShortIhl(ihl) if v4 => {
            frame[ETH] = 0x40 | ihl;
            (frame, Expect::Drop)
        }
        Mutation::LongLength(extra) => {
            let at = if v4 { ETH + 2 } else { ETH + 4 };
            let len = u16::from_be_bytes([frame[at], frame[at + 1]]);
            frame[at..at + 2].copy_from_slice(&len.saturating_add(extra).to_be_bytes());
            (frame, Expect::Drop)
        }
        Mutation::ShortTotalLength(len) if v4 => {
            frame[ETH + 2..ETH + 4].copy_from_slice(&u16::from(len).to_be_bytes());
            (frame, Expect::Drop)
        }
        Mutation::Port(port) => {
            if matches!(packet.protocol, 6 | 17 | 132) {
                frame[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
                (frame, Expect::Model(Flow { port, ..flow }))
            } else {
                (frame, Expect::Model(flow))
            }
        }
        Mutation::Unrelated(field, bits) => {
            // IPv4: TOS, TTL, checksum (2 bytes); IPv6: traffic class and flow label bytes,
            // hop limit.
            let at = if v4 {
                [ETH + 1, ETH + 8, ETH + 10, ETH + 11][usize::from(field)]
            } else {
                [ETH + 1, ETH + 2, ETH + 3, ETH + 7][usize::from(field)]
            };
            frame[at] ^= bits;
            (frame, Expect::Model(flow))
        }
        Mutation::LaterFragment(offset) => {
            if v4 {
                frame[ETH + 6..ETH + 8].copy_from_slice(&offset.to_be_bytes());
                (frame, Expect::Drop)
            } else {
                (ipv6_with_fragment(&frame, offset, false), Expect::Drop)
            }
        }
        Mutation::FirstFragment(id) => {
            if v4 {
                frame[ETH + 4..ETH + 6].copy_from_slice(&id.to_be_bytes());
                frame[ETH + 6..ETH + 8].copy_from_slice(&0x2000u16.to_be_bytes());
                (frame, Expect::Model(flow))
            } else {
                (ipv6_with_fragment(&frame, 0, true), Expect::Model(flow))
            }
        }
        Mutation::ExtensionChain(n) if !v4 => {
            let frame = ipv6_with_options(&frame, n);
            if n <= 8 {
                (frame, Expect::Model(flow))
            } else {
                (frame, Expect::AnyProtocolOnly)
            }
        }
        Mutation::TcpFlags(flags) if packet.protocol == 6 => {
            frame[l4 + 13] = flags;
            (frame, Expect::Model(flow))
        }
        Mutation::TcpOffset(words) if packet.protocol == 6 => {
            frame[l4 + 12] = words << 4;
            if words < 5 {
                (frame, Expect::Drop)
            } else {
                (frame, Expect::Model(flow))
            }
        }
        Mutation::UdpLength(len) if packet.protocol == 17 => {
            frame[l4 + 4..l4 + 6].copy_from_slice(&len.to_be_bytes());
            // The UDP header and the payload after it, as the IP header counts them.
            let payload = frame.len() - l4;
            if usize::from(len) < 8 || usize::from(len) > payload {
                (frame, Expect::Drop)
            } else {
                (frame, Expect::Model(flow))
            }
        }
        // Mutations of the other family's (or protocol's) fields leave the frame as it is.
        _ => (frame, Expect::Model(flow)),
    }
}

/// Inserts `n` destination-options headers between the IPv6 header and the transport header.
fn ipv6_with_options(frame: &[u8], n: u8) -> Vec<u8> {
    let next = frame[ETH + 6];
    let mut chain = Vec::new();
    for i in 0..n {
        let this_next = if i + 1 == n { next } else { 60 };
        chain.extend_from_slice(&[this_next, 0, 1, 4, 0, 0, 0, 0]);
    }
    splice_ipv6(frame, if n == 0 { next } else { 60 }, &chain)
}

fn ipv6_with_fragment(frame: &[u8], offset: u16, more: bool) -> Vec<u8> {
    let next = frame[ETH + 6];
    let mut header = vec![next, 0];
    header.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    header.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    splice_ipv6(frame, 44, &header)
}

/// The first (`first`) or the later fragment of the packet, with destination options after
/// the fragment header: the first carries the options and the transport header, the later one
/// (offset 8 bytes) only payload, its fragment header naming the options.
fn ipv6_fragment_after_options(frame: &[u8], first: bool) -> Vec<u8> {
    let next = frame[ETH + 6];
    let (offset_flags, id) = (if first { 1u16 } else { 1 << 3 }, 0x5eed_0001u32);
    let mut chain = vec![60, 0];
    chain.extend_from_slice(&offset_flags.to_be_bytes());
    chain.extend_from_slice(&id.to_be_bytes());
    if first {
        chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        return splice_ipv6(frame, 44, &chain);
    }
    let mut out = frame[..ETH + 40].to_vec();
    out[ETH + 6] = 44;
    out.extend_from_slice(&chain);
    out.extend_from_slice(b"rest of the datagram");
    let payload = u16::try_from(out.len() - ETH - 40).expect("small");
    out[ETH + 4..ETH + 6].copy_from_slice(&payload.to_be_bytes());
    out
}

fn splice_ipv6(frame: &[u8], first: u8, chain: &[u8]) -> Vec<u8> {
    let mut out = frame[..ETH + 40].to_vec();
    out[ETH + 6] = first;
    out.extend_from_slice(chain);
    out.extend_from_slice(&frame[ETH + 40..]);
    let payload = u16::try_from(out.len() - ETH - 40).expect("small");
    out[ETH + 4..ETH + 6].copy_from_slice(&payload.to_be_bytes());
    out
}

fn allows_every_protocol_and_port(world: &World, flow: &Flow) -> bool {
    PROTOCOLS.iter().all(|protocol| {
        PORTS.iter().all(|port| {
            world.allows(&Flow {
                protocol,
                port: *port,
                ..*flow
            })
        })
    })
}

struct State {
    datapath: Datapath,
    compiler: Compiler,
    programmed: MapContents,
}

#[test]
fn mutated_packets_pass_only_where_policy_allows_their_flow() {
    if !require_root("mutated_packets_pass_only_where_policy_allows_their_flow") {
        return;
    }
    let pins = Pins::new("packet-fuzz");
    let state = RefCell::new(State {
        datapath: Datapath::load(&pins.0).expect("loading the datapath"),
        compiler: Compiler::new(),
        programmed: MapContents::default(),
    });
    let counts = RefCell::new((0usize, 0usize));
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PALISADE_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        world(),
        flow_picks(24),
        prop::collection::vec(mutation(), 24),
    );
    let result = runner.run(&strategy, |(world, picks, mutations)| {
        let mut state = state.borrow_mut();
        let state = &mut *state;
        let scope = Scope {
            node_name: None,
            host_addrs: world.node_addrs.clone(),
        };
        let maps = state.compiler.compile(&agent_cluster(&world), &scope).maps;
        state
            .datapath
            .apply(&state.programmed, &maps)
            .map_err(|e| TestCaseError::fail(format!("sync: {e:#}")))?;
        state.programmed = std::sync::Arc::unwrap_or_clone(maps);
        let addrs = addresses(&world);
        for ((src, dst, protocol, port), mutation) in picks.iter().zip(&mutations) {
            let (src, dst): (IpAddr, IpAddr) = (*src.get(&addrs), *dst.get(&addrs));
            if src == dst || src.is_ipv4() != dst.is_ipv4() {
                continue;
            }
            let packet = Packet {
                src,
                dst,
                protocol: protocol_number(protocol),
                sport: 40_000,
                dport: *port,
            };
            let flow = Flow {
                src,
                dst,
                protocol,
                port: *port,
            };
            let is_endpoint = |ip: IpAddr| {
                state.programmed.endpoints.contains_key(&EndpointKey {
                    addr: identity_addr(ip),
                })
            };
            let judge = Judge {
                world: &world,
                is_endpoint: &is_endpoint,
            };
            let frames = mutate(&packet, flow, mutation, &judge);
            // Each frame's verdict at each hook that ran (sending, delivering).
            let mut verdicts = vec![[None::<bool>; 2]; frames.len()];
            for (hook, (endpoint, direction)) in
                [(src, Direction::FromEndpoint), (dst, Direction::ToEndpoint)]
                    .into_iter()
                    .enumerate()
            {
                if !is_endpoint(endpoint) {
                    continue;
                }
                state
                    .datapath
                    .clear_conntrack()
                    .and_then(|()| state.datapath.clear_fragments())
                    .map_err(|e| TestCaseError::fail(format!("clearing state: {e:#}")))?;
                for (i, (frame, _)) in frames.iter().enumerate() {
                    let verdict = state
                        .datapath
                        .test_run(direction, frame, 1)
                        .map_err(|e| TestCaseError::fail(format!("test run: {e:#}")))?;
                    verdicts[i][hook] = Some(verdict.allowed());
                }
            }
            for ((_, expect), [sent, delivered]) in frames.iter().zip(verdicts) {
                if sent.is_none() && delivered.is_none() {
                    // No hook of ours would see this packet.
                    continue;
                }
                let passed = sent.unwrap_or(true) && delivered.unwrap_or(true);
                match expect {
                    Expect::Model(claimed) => prop_assert_eq!(
                        passed,
                        world.allows(claimed),
                        "{:?} of {:?}",
                        mutation,
                        claimed
                    ),
                    Expect::AnyProtocolOnly => prop_assert!(
                        !passed || allows_every_protocol_and_port(&world, &flow),
                        "{:?} of {:?} passed",
                        mutation,
                        flow
                    ),
                    Expect::Drop => prop_assert!(!passed, "{:?} of {:?} passed", mutation, flow),
                    Expect::Hooks {
                        sent: sent_expected,
                        delivered: delivered_expected,
                    } => prop_assert!(
                        sent.is_none_or(|v| v == *sent_expected)
                            && delivered.is_none_or(|v| v == *delivered_expected),
                        "{:?} of {:?}: sent {:?} (expected {}), delivered {:?} (expected {})",
                        mutation,
                        flow,
                        sent,
                        sent_expected,
                        delivered,
                        delivered_expected
                    ),
                }
                let mut counts = counts.borrow_mut();
                counts.0 += 1;
                counts.1 += usize::from(passed);
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (world, picks, mutations))) => panic!(
            "{reason}\nminimal failing case:\n{world:#?}\nflows: {picks:?}\nmutations: {mutations:?}"
        ),
        Err(e) => panic!("{e}"),
    }
    let (checked, passed) = *counts.borrow();
    assert!(checked > 2000, "only {checked} packets were checked");
    eprintln!("packet fuzzer: {checked} packets, {passed} passed, every verdict as expected");
}
