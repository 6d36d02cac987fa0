//! A userspace replay of the exact lookups `policy-ebpf` performs, on compiled map contents.
//!
//! Tests use it to check the compiler without a kernel (and against an independent model of
//! the policy semantics); `policy-agent explain` uses it to say which rule decided. It must
//! mirror the datapath step by step: the endpoint lookup (`policy-ebpf/src/decision.rs`), then
//! the policy lookup (`policy-ebpf/src/policy.rs`): identity LPM lookup, then for each of the
//! endpoint's tables in order the rule LPM lookups with the ordered identity (pod identity for
//! pods, CIDR identity otherwise), the pod identity, the CIDR identity and ANY (those the
//! table's lookup bits ask for).

use std::net::IpAddr;

use policy_common::{
    counters::drop_reason,
    endpoint::{EndpointKey, MAX_TABLES, lookup},
    identity,
    rule::{RuleKey, TIER_DEFAULT_RULE, action},
};

use crate::compiler::{LpmKey, MapContents, identity_addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The packet leaves the endpoint (its egress policy applies).
    FromEndpoint,
    /// The packet is delivered to the endpoint (its ingress policy applies).
    ToEndpoint,
}

/// A packet as the datapath sees it after parsing.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port; for ICMP and ICMPv6, type << 8 | code (as the datapath keys them).
    pub dport: u16,
}

/// Why the program decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The address is not a known endpoint's.
    UnknownEndpoint,
    /// No policy selects the endpoint in this direction.
    NotIsolated,
    /// The peer is the node itself.
    Host,
    /// A rule entry of `table`, in `slot` of the endpoint's list, decided.
    Rule {
        slot: usize,
        table: u32,
        rule_ref: u32,
    },
    /// Isolated, and no table had a verdict.
    NoRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

impl Decision {
    /// Why the program drops the packet (`policy_common::counters::drop_reason`), as its
    /// counters and flow events say: `None` when allowed. The replay decides a well-formed
    /// first packet of a flow on its endpoint's own interface, so of the datapath's reasons it
    /// gives those of policy and of an unknown endpoint.
    pub fn drop_reason(&self) -> Option<u8> {
        if self.allowed {
            return None;
        }
        Some(match self.reason {
            Reason::UnknownEndpoint => drop_reason::UNKNOWN_ENDPOINT,
            // A Calico tier's default action is the implicit deny, as no rule at all is.
            Reason::Rule { rule_ref, .. } if rule_ref & 0xffff != TIER_DEFAULT_RULE => {
                drop_reason::DENY_RULE
            }
            Reason::Rule { .. } | Reason::NoRule | Reason::NotIsolated | Reason::Host => {
                drop_reason::NO_RULE
            }
        })
    }
}

/// Whether the program attached for `direction` would let `packet` through.
pub fn allows(maps: &MapContents, packet: &Packet, direction: Direction) -> bool {
    decide(maps, packet, direction).allowed
}

/// The program's decision for `packet`, with the entry that made it.
pub fn decide(maps: &MapContents, packet: &Packet, direction: Direction) -> Decision {
    let verdict = |allowed, reason| Decision { allowed, reason };
    let (endpoint, peer) = match direction {
        Direction::FromEndpoint => (packet.src, packet.dst),
        Direction::ToEndpoint => (packet.dst, packet.src),
    };
    let Some(value) = maps.endpoints.get(&EndpointKey {
        addr: identity_addr(endpoint),
    }) else {
        return verdict(false, Reason::UnknownEndpoint);
    };
    let policy = match direction {
        Direction::FromEndpoint => &value.egress,
        Direction::ToEndpoint => &value.ingress,
    };
    if policy.isolated == 0 {
        return verdict(true, Reason::NotIsolated);
    }
    let (pod_identity, cidr_identity) = longest_match(&maps.identities, &identity_addr(peer))
        .map_or((identity::WORLD, identity::WORLD), |v| {
            (v.pod_identity, v.cidr_identity)
        });
    if pod_identity == identity::HOST {
        return verdict(true, Reason::Host);
    }
    let count = (policy.count as usize).min(MAX_TABLES);
    for (slot, table) in policy.tables[..count].iter().enumerate() {
        let ordered_identity = if pod_identity != identity::WORLD {
            pod_identity
        } else {
            cidr_identity
        };
        let lookups = [
            (lookup::ORDERED, ordered_identity),
            (lookup::POD, pod_identity),
            (lookup::CIDR, cidr_identity),
            (lookup::ANY, identity::ANY),
        ];
        let source_class = if table.lookups & lookup::SOURCE_PORTS != 0 {
            source_class(maps, table.table, packet)
        } else {
            0
        };
        let hit = lookups
            .into_iter()
            .filter(|(bit, _)| table.lookups & bit != 0)
            .find_map(|(_, peer_identity)| {
                let key = RuleKey {
                    table: table.table,
                    peer_identity,
                    protocol: packet.protocol,
                    source_class,
                    port_be: packet.dport.to_be(),
                };
                longest_match(&maps.rules, &rule_bytes(&key))
            });
        if let Some(value) = hit {
            return verdict(
                value.action == action::ALLOW,
                Reason::Rule {
                    slot,
                    table: table.table,
                    rule_ref: value.rule_ref,
                },
            );
        }
    }
    verdict(false, Reason::NoRule)
}

/// The packet's source-port class in a table with source-port rules: its class entry's, or
/// 0.
fn source_class(maps: &MapContents, table: u32, packet: &Packet) -> u8 {
    let key = RuleKey {
        table,
        peer_identity: identity::SOURCE_PORTS,
        protocol: packet.protocol,
        source_class: 0,
        port_be: packet.sport.to_be(),
    };
    match longest_match(&maps.rules, &rule_bytes(&key)) {
        Some(value) if value.action == action::SOURCE_CLASS => {
            u8::try_from(value.rule_ref).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Whether pod-to-pod traffic on one node passes both programs: the source's egress check on
/// its interface and the destination's ingress check on its own.
pub fn allows_between_endpoints(maps: &MapContents, packet: &Packet) -> bool {
    allows(maps, packet, Direction::FromEndpoint) && allows(maps, packet, Direction::ToEndpoint)
}

/// The bytes of a key as the kernel's LPM trie compares them (in memory order).
pub trait KeyBytes {
    fn key_bytes(&self) -> Vec<u8>;
}

impl KeyBytes for policy_common::identity::IdentityKey {
    fn key_bytes(&self) -> Vec<u8> {
        self.addr.to_vec()
    }
}

impl KeyBytes for RuleKey {
    fn key_bytes(&self) -> Vec<u8> {
        rule_bytes(self)
    }
}

fn rule_bytes(key: &RuleKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(12);
    bytes.extend(key.table.to_ne_bytes());
    bytes.extend(key.peer_identity.to_ne_bytes());
    bytes.push(key.protocol);
    bytes.push(key.source_class);
    bytes.extend(key.port_be.to_ne_bytes());
    bytes
}

fn longest_match<'a, K: KeyBytes, V>(
    map: &'a std::collections::BTreeMap<LpmKey<K>, V>,
    lookup: &[u8],
) -> Option<&'a V> {
    map.iter()
        .filter(|(k, _)| prefix_matches(&k.data.key_bytes(), lookup, k.prefix_len))
        .max_by_key(|(k, _)| k.prefix_len)
        .map(|(_, v)| v)
}

fn prefix_matches(entry: &[u8], lookup: &[u8], bits: u32) -> bool {
    let full_bytes = (bits / 8) as usize;
    let rest = bits % 8;
    if entry.len() < full_bytes || lookup.len() < full_bytes {
        return false;
    }
    if entry[..full_bytes] != lookup[..full_bytes] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (entry.get(full_bytes), lookup.get(full_bytes)) {
        (Some(a), Some(b)) => a & mask == b & mask,
        _ => false,
    }
}

impl Packet {
    /// An Ethernet frame carrying this packet, as it would cross a veth: IPv4 or IPv6 by the
    /// address family, with a minimal TCP/UDP/SCTP/UDP-Lite header holding the ports and a
    /// 4-byte payload. Other protocols get 8 zero bytes of payload.
    pub fn to_frame(&self) -> Vec<u8> {
        let l4 = match self.protocol {
            // TCP: ports, seq, ack, data offset 5 words, SYN.
            6 => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&self.sport.to_be_bytes());
                h[2..4].copy_from_slice(&self.dport.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = 0x02;
                h
            }
            // UDP and UDP-Lite: ports, length (UDP-Lite: checksum coverage), checksum.
            17 | 136 => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&self.sport.to_be_bytes());
                h[2..4].copy_from_slice(&self.dport.to_be_bytes());
                h[4..6].copy_from_slice(&12u16.to_be_bytes());
                h
            }
            // SCTP common header: ports, verification tag, checksum.
            132 => {
                let mut h = vec![0u8; 12];
                h[0..2].copy_from_slice(&self.sport.to_be_bytes());
                h[2..4].copy_from_slice(&self.dport.to_be_bytes());
                h
            }
            // ICMP and ICMPv6: `dport` carries type and code; identifier 1, sequence 1.
            1 | 58 => {
                let [kind, code] = self.dport.to_be_bytes();
                vec![kind, code, 0, 0, 0, 1, 0, 1]
            }
            _ => vec![0u8; 8],
        };
        let mut payload = l4;
        payload.extend_from_slice(b"ping");
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                frame.extend_from_slice(&0x0800u16.to_be_bytes());
                let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&[0, 0, 0x40, 0, 64, self.protocol, 0, 0]);
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                frame.extend(ip);
            }
            (src, dst) => {
                let (src, dst) = (v6(src), v6(dst));
                frame.extend_from_slice(&0x86ddu16.to_be_bytes());
                let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
                let mut ip = vec![0x60, 0, 0, 0];
                ip.extend_from_slice(&len.to_be_bytes());
                ip.extend_from_slice(&[self.protocol, 64]);
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                frame.extend(ip);
            }
        }
        frame.extend(payload);
        frame
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}
