//! Packet fuzzer: generated clusters and flows, each flow's frame mutated (truncated, lying
//! header and length fields, rewritten ports, unrelated fields flipped, fragment bits, IPv6
//! extension-header chains of every length, any TCP flags), run through the real programs with
//! `BPF_PROG_TEST_RUN` on maps filled by the real agent code, against the reference model's
//! verdict for the flow the frame claims to be.
//!
//! The invariant, for every packet (no connection is tracked: conntrack and fragment state are
//! cleared before each hook): it passes only if policy allows its flow. Where the mutation
//! keeps the packet well-formed and its flow known, the kernel must agree with the model
//! exactly; where it breaks the packet, the kernel must drop it.
//!
//! Privileged. `PALISADE_FUZZ_CASES` sets the number of clusters (default 1000, ~2.5 packets
//! each).

use std::{cell::RefCell, net::IpAddr, path::PathBuf};

use palisade_tests::{
    generate::{PORTS, PROTOCOLS, addresses, agent_cluster, flow_picks, protocol_number, world},
    reference::{Flow, World},
    require_root,
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

/// Removes the pin directory however the test ends.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
}

/// Applies `mutation` to the frame of `packet`; the frame to run and what must happen to it.
fn mutate(packet: &Packet, flow: Flow, mutation: &Mutation) -> (Vec<u8>, Expect) {
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
    let pins = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/palisade-packet-fuzz-{}",
        std::process::id()
    )));
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
            let (frame, expect) = mutate(&packet, flow, mutation);
            let is_endpoint = |ip: IpAddr| {
                state.programmed.endpoints.contains_key(&EndpointKey {
                    addr: identity_addr(ip),
                })
            };
            let mut passed = true;
            let mut hooks = 0;
            for (endpoint, direction) in
                [(src, Direction::FromEndpoint), (dst, Direction::ToEndpoint)]
            {
                if !is_endpoint(endpoint) {
                    continue;
                }
                hooks += 1;
                state
                    .datapath
                    .clear_conntrack()
                    .and_then(|()| state.datapath.clear_fragments())
                    .map_err(|e| TestCaseError::fail(format!("clearing state: {e:#}")))?;
                let verdict = state
                    .datapath
                    .test_run(direction, &frame, 1)
                    .map_err(|e| TestCaseError::fail(format!("test run: {e:#}")))?;
                passed &= verdict.allowed();
            }
            if hooks == 0 {
                // No hook of ours would see this packet.
                continue;
            }
            match expect {
                Expect::Model(claimed) => prop_assert_eq!(
                    passed,
                    world.allows(&claimed),
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
            }
            let mut counts = counts.borrow_mut();
            counts.0 += 1;
            counts.1 += usize::from(passed);
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
