//! Stateful fuzzer of connection tracking: random conversations between three pods of one
//! node (TCP segments with any flags, datagrams, ICMP echo of both kinds and other types,
//! ICMP errors quoting tracked and untracked tuples in both directions, oversized and
//! fragmented errors), interleaved with random policy changes (each a revocation or a grant),
//! run through both hooks of the real programs (`BPF_PROG_TEST_RUN`) and, side by side,
//! through [`Model`]: an executable statement of the rules in docs/architecture.md,
//! "Connections", written from that text and sharing no code with the programs. Every hook's
//! verdict must agree. The invariants the campaign of issue 17 broke are among them: a packet
//! that cannot open a flow opens none, a revoked connection stays cut whichever side speaks
//! first, errors are related only to the receiver's own allowed flows.
//!
//! Policy evaluation itself is not under test here (the compiler and the rule lookups have
//! their own differential tests): each (pod, peer, direction) is one of four cells (nothing,
//! TCP 80, UDP 53, everything), compiled by the real compiler from NetworkPolicies.
//!
//! Privileged. `PALISADE_CT_FUZZ_WORLDS` sets the number of worlds (default 60, about 2,400
//! hook runs); `PALISADE_CT_FUZZ_SEED` replays one seed. A long run:
//! `PALISADE_CT_FUZZ_WORLDS=2500 cargo test -p policy-agent --test conntrack_fuzz --
//! --nocapture`: on 2026-12-07, 121,762 hook runs (29,728 packets past their sender's hook),
//! 0 disagreements, 139 s on the 2-core machine with other work running.

use std::{collections::HashMap, fmt::Write as _, net::Ipv4Addr};

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use palisade_tests::{require_root, scratch::Scratch};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    replay::Direction,
};
use policy_common::{
    conntrack::{ConntrackKey, ConntrackValue},
    map_names,
};

const PODS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 42, 0, 10),
    Ipv4Addr::new(10, 42, 0, 11),
    Ipv4Addr::new(10, 42, 0, 12),
];
const NAMES: [&str; 3] = ["a", "b", "c"];

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// What one direction of one pod admits to or from one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    Nothing,
    Tcp80,
    Udp53,
    Everything,
}

const CELLS: [Cell; 4] = [Cell::Nothing, Cell::Tcp80, Cell::Udp53, Cell::Everything];

impl Cell {
    fn covers(self, protocol: u8, port: u16) -> bool {
        match self {
            Cell::Nothing => false,
            Cell::Tcp80 => protocol == TCP && port == 80,
            Cell::Udp53 => protocol == UDP && port == 53,
            Cell::Everything => true,
        }
    }

    /// The NetworkPolicy rule for `peer` (key `to` or `from`), if any.
    fn rule(self, key: &str, peer: &str) -> Option<String> {
        let ports = match self {
            Cell::Nothing => return None,
            Cell::Tcp80 => ", ports: [{protocol: TCP, port: 80}]",
            Cell::Udp53 => ", ports: [{protocol: UDP, port: 53}]",
            Cell::Everything => "",
        };
        Some(format!(
            "  - {{{key}: [{{podSelector: {{matchLabels: {{app: {peer}}}}}}}]{ports}}}\n"
        ))
    }
}

/// `egress[x][y]`: what x's egress admits to y; `ingress[y][x]`: what y's ingress admits from x.
#[derive(Clone, Debug)]
struct Policy {
    egress: [[Cell; 3]; 3],
    ingress: [[Cell; 3]; 3],
}

impl Policy {
    fn manifests(&self) -> String {
        let mut out = String::new();
        for (i, name) in NAMES.iter().enumerate() {
            let _ = write!(
                out,
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, \
                 labels: {{app: {name}}}}}\nspec: {{containers: [{{name: c, image: x}}]}}\n\
                 status: {{podIP: {}, phase: Running}}\n---\n",
                PODS[i]
            );
        }
        out.push_str(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {name: isolate, namespace: default}\n\
             spec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n",
        );
        for (x, name) in NAMES.iter().enumerate() {
            for (direction, key, cells) in [
                ("Egress", "to", &self.egress[x]),
                ("Ingress", "from", &self.ingress[x]),
            ] {
                let rules: String = cells
                    .iter()
                    .enumerate()
                    .filter_map(|(y, cell)| cell.rule(key, NAMES[y]))
                    .collect();
                if rules.is_empty() {
                    continue;
                }
                let _ = write!(
                    out,
                    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                     metadata: {{name: {name}-{}, namespace: default}}\n\
                     spec:\n  podSelector: {{matchLabels: {{app: {name}}}}}\n  \
                     policyTypes: [{direction}]\n  {}:\n{rules}",
                    key,
                    direction.to_lowercase()
                );
            }
        }
        out
    }
}

/// A small deterministic generator (SplitMix64): the seed replays a run exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A packet's tuple, as the programs key connections (ICMP echo: the identifier as source
/// port of a request, destination port of a reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tuple {
    src: usize,
    dst: usize,
    sport: u16,
    dport: u16,
    protocol: u8,
}

impl Tuple {
    fn reversed(self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            protocol: self.protocol,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tcp(u8),
    Udp,
    /// Echo request (true) or reply, with its identifier.
    Echo(bool, u16),
    /// Another ICMP type (13: timestamp request), never an error.
    IcmpOther(u8),
    /// Port unreachable quoting `quoted` (a TCP or UDP packet, as that packet was sent);
    /// larger than a router may send; fragmented.
    Error {
        quoted: Tuple,
        oversized: bool,
        fragmented: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Packet {
    tuple: Tuple,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    egress: bool,
    ingress: bool,
    revoked: bool,
    /// A tombstone's check that cut it (0 egress, 1 ingress): the only one that may open the
    /// tuple again, in its own direction.
    cut: usize,
    /// Generation stamps: the egress check's, the ingress check's (a tombstone: the cut's).
    stamps: [u64; 2],
}

/// The connection rules of docs/architecture.md ("Connections"), for one node whose pods are
/// all local. Time does not pass (no entry expires within a world).
#[derive(Default)]
struct Model {
    entries: HashMap<Tuple, Entry>,
    generation: u64,
}

impl Model {
    /// The verdict of one hook: the sender's egress check (`egress`) or the receiver's
    /// ingress check.
    fn hook(&mut self, policy: &Policy, packet: &Packet, egress: bool) -> bool {
        let t = packet.tuple;
        let g = self.generation;
        let (this, counterpart) = if egress { (0, 1) } else { (1, 0) };
        let has = |e: &Entry, check: usize| if check == 0 { e.egress } else { e.ingress };
        // What this check admits, for a packet of (protocol, port) between the two pods, and
        // what the counterpart check (for replies re-checked as their original) admits.
        let this_cell = |src: usize, dst: usize| {
            if egress {
                policy.egress[src][dst]
            } else {
                policy.ingress[dst][src]
            }
        };
        let counterpart_cell = |src: usize, dst: usize| {
            if egress {
                policy.ingress[src][dst]
            } else {
                policy.egress[dst][src]
            }
        };
        let (lookup_forward, lookup_reply, mut opens) = match packet.kind {
            Kind::Tcp(flags) => (true, true, flags & (SYN | ACK | RST) == SYN),
            Kind::Udp => (true, true, true),
            Kind::Echo(request, _) => (request, !request, request),
            Kind::IcmpOther(_) | Kind::Error { .. } => (false, false, false),
        };
        enum Pending {
            New,
            Forward,
            Reply,
        }
        let mut pending = Pending::New;
        if lookup_forward && let Some(e) = self.entries.get(&t) {
            if has(e, this) && !e.revoked {
                if e.stamps[this] == g {
                    return true;
                }
                pending = Pending::Forward;
            } else if e.revoked && e.stamps[0] == g && e.cut != this {
                opens = false;
            }
        }
        if matches!(pending, Pending::New)
            && lookup_reply
            && let Some(e) = self.entries.get(&t.reversed())
        {
            if has(e, counterpart) && !e.revoked {
                if e.stamps[counterpart] == g {
                    return true;
                }
                pending = Pending::Reply;
            } else if e.revoked && e.stamps[0] == g {
                opens = false;
            }
        }
        if matches!(pending, Pending::New)
            && let Kind::Error {
                quoted,
                oversized,
                fragmented,
            } = packet.kind
        {
            let tracked = |tuple: &Tuple, check: usize| {
                self.entries
                    .get(tuple)
                    .is_some_and(|e| !e.revoked && has(e, check))
            };
            let related = quoted.src == t.dst
                && (!egress || quoted.dst == t.src)
                && !oversized
                && !fragmented
                && (tracked(&quoted, counterpart) || tracked(&quoted.reversed(), this));
            if related {
                return true;
            }
        }
        let allowed = match (&pending, packet.kind) {
            (Pending::Reply, Kind::Echo(..)) => counterpart_cell(t.src, t.dst).covers(ICMP, 0),
            (Pending::Reply, _) => counterpart_cell(t.src, t.dst).covers(t.protocol, t.sport),
            (_, Kind::Tcp(_) | Kind::Udp) => this_cell(t.src, t.dst).covers(t.protocol, t.dport),
            _ => this_cell(t.src, t.dst).covers(ICMP, 0),
        };
        match pending {
            Pending::New => {
                if allowed && opens {
                    let entry = self.entries.entry(t).or_default();
                    if entry.revoked {
                        *entry = Entry::default();
                    }
                    if this == 0 {
                        entry.egress = true;
                    } else {
                        entry.ingress = true;
                    }
                    entry.stamps[this] = g;
                }
                allowed
            }
            Pending::Forward | Pending::Reply => {
                let (key, check) = match pending {
                    Pending::Forward => (t, this),
                    _ => (t.reversed(), counterpart),
                };
                let entry = self.entries.get_mut(&key).expect("looked up above");
                if allowed {
                    entry.stamps[check] = g;
                } else {
                    *entry = Entry {
                        revoked: true,
                        cut: check,
                        stamps: [g, g],
                        ..Entry::default()
                    };
                }
                allowed
            }
        }
    }
}

const ETHERNET: [u8; 12] = [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];

/// An IPv4 packet (no Ethernet header), `more_fragments` set or DF.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8], more: bool) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("small");
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, if more { 0x20 } else { 0x40 }, 0, 64, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// The transport header of a TCP (flags) or UDP tuple.
fn transport(tuple: &Tuple, flags: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&tuple.sport.to_be_bytes());
    h.extend_from_slice(&tuple.dport.to_be_bytes());
    if tuple.protocol == TCP {
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        h.extend_from_slice(&12u16.to_be_bytes());
        h.extend_from_slice(&[0, 0, b'p', b'i', b'n', b'g']);
    }
    h
}

fn frame(packet: &Packet) -> Vec<u8> {
    let t = &packet.tuple;
    let (src, dst) = (PODS[t.src], PODS[t.dst]);
    let ip = match packet.kind {
        Kind::Tcp(flags) => ipv4(src, dst, TCP, &transport(t, flags), false),
        Kind::Udp => ipv4(src, dst, UDP, &transport(t, 0), false),
        Kind::Echo(request, id) => {
            let mut h = vec![if request { 8 } else { 0 }, 0, 0, 0];
            h.extend_from_slice(&id.to_be_bytes());
            h.extend_from_slice(&[0, 1]);
            ipv4(src, dst, ICMP, &h, false)
        }
        Kind::IcmpOther(kind) => ipv4(src, dst, ICMP, &[kind, 0, 0, 0, 0, 0, 0, 0], false),
        Kind::Error {
            quoted,
            oversized,
            fragmented,
        } => {
            let inner = ipv4(
                PODS[quoted.src],
                PODS[quoted.dst],
                quoted.protocol,
                &transport(&quoted, SYN),
                false,
            );
            let mut h = vec![3, 3, 0, 0, 0, 0, 0, 0];
            h.extend_from_slice(&inner[..28]);
            if oversized {
                h.resize(h.len() + 600, 0);
            }
            ipv4(src, dst, ICMP, &h, fragmented)
        }
    };
    let mut frame = ETHERNET.to_vec();
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame
}

/// The next packet: often a reply or a repeat of one already sent, else a fresh one.
fn next_packet(rng: &mut Rng, history: &[Packet]) -> Packet {
    let tcp_flags = [SYN, SYN, SYN | ACK, ACK, ACK, FIN | ACK, RST];
    if !history.is_empty() && rng.chance(60) {
        let seen = history[rng.below(history.len())];
        let kind = match seen.kind {
            Kind::Error { .. } | Kind::IcmpOther(_) => seen.kind,
            Kind::Echo(request, id) => {
                Kind::Echo(if rng.chance(70) { !request } else { request }, id)
            }
            Kind::Tcp(_) => Kind::Tcp(rng.pick(&tcp_flags)),
            Kind::Udp => Kind::Udp,
        };
        let tuple = if rng.chance(60) {
            seen.tuple.reversed()
        } else {
            seen.tuple
        };
        let tuple = match kind {
            // Echo tuples follow the kind: the identifier moves with request and reply.
            Kind::Echo(true, id) => Tuple {
                sport: id,
                dport: 0,
                ..tuple
            },
            Kind::Echo(false, id) => Tuple {
                sport: 0,
                dport: id,
                ..tuple
            },
            _ => tuple,
        };
        if rng.chance(25) {
            // An error about it, from anyone, to anyone.
            let transport_seen: Vec<&Packet> = history
                .iter()
                .filter(|p| matches!(p.kind, Kind::Tcp(_) | Kind::Udp))
                .collect();
            if let Some(quoted) = transport_seen.get(rng.below(transport_seen.len().max(1))) {
                let quoted = if rng.chance(50) {
                    quoted.tuple
                } else {
                    quoted.tuple.reversed()
                };
                let (src, dst) = pair(rng);
                return Packet {
                    tuple: Tuple {
                        src,
                        dst,
                        sport: 0,
                        dport: 0,
                        protocol: ICMP,
                    },
                    kind: Kind::Error {
                        quoted,
                        oversized: rng.chance(15),
                        fragmented: rng.chance(15),
                    },
                };
            }
        }
        return Packet { tuple, kind };
    }
    let (src, dst) = pair(rng);
    match rng.below(5) {
        0 | 1 => Packet {
            tuple: Tuple {
                src,
                dst,
                sport: rng.pick(&[1000, 1001]),
                dport: rng.pick(&[80, 80, 81]),
                protocol: TCP,
            },
            kind: Kind::Tcp(rng.pick(&tcp_flags)),
        },
        2 => Packet {
            tuple: Tuple {
                src,
                dst,
                sport: rng.pick(&[1000, 1001]),
                dport: rng.pick(&[53, 53, 54]),
                protocol: UDP,
            },
            kind: Kind::Udp,
        },
        3 => {
            let (request, id) = (rng.chance(70), rng.pick(&[0, 7]));
            let (sport, dport) = if request { (id, 0) } else { (0, id) };
            Packet {
                tuple: Tuple {
                    src,
                    dst,
                    sport,
                    dport,
                    protocol: ICMP,
                },
                kind: Kind::Echo(request, id),
            }
        }
        _ => Packet {
            tuple: Tuple {
                src,
                dst,
                sport: 0,
                dport: 0,
                protocol: ICMP,
            },
            kind: Kind::IcmpOther(13),
        },
    }
}

fn pair(rng: &mut Rng) -> (usize, usize) {
    let src = rng.below(3);
    (src, (src + 1 + rng.below(2)) % 3)
}

fn random_policy(rng: &mut Rng) -> Policy {
    let mut policy = Policy {
        egress: [[Cell::Nothing; 3]; 3],
        ingress: [[Cell::Nothing; 3]; 3],
    };
    for x in 0..3 {
        for y in 0..3 {
            if x != y {
                policy.egress[x][y] = rng.pick(&CELLS);
                policy.ingress[x][y] = rng.pick(&CELLS);
            }
        }
    }
    policy
}

/// One cell changed to another value.
fn change(rng: &mut Rng, policy: &mut Policy) {
    let (x, y) = pair(rng);
    let cell = if rng.chance(50) {
        &mut policy.egress[x][y]
    } else {
        &mut policy.ingress[x][y]
    };
    let others: Vec<Cell> = CELLS.into_iter().filter(|c| c != cell).collect();
    *cell = rng.pick(&others);
}

struct Node {
    datapath: Datapath,
    compiler: Compiler,
    maps: MapContents,
    /// The manifests and pins, removed however the test ends (a failed load included).
    scratch: Scratch,
}

impl Node {
    fn program(&mut self, policy: &Policy) {
        std::fs::write(
            self.scratch.manifests.join("world.yaml"),
            policy.manifests(),
        )
        .expect("manifests");
        let snapshot = FileDatastore::new(&self.scratch.manifests)
            .load()
            .expect("reading");
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let maps = self
            .compiler
            .compile(&snapshot.cluster, &Scope::default())
            .maps;
        self.datapath.apply(&self.maps, &maps).expect("programming");
        self.maps = std::sync::Arc::unwrap_or_clone(maps);
        // Every change the model counts is a new generation, even one whose maps came out
        // the same.
        self.datapath.bump_generation().expect("generation");
    }

    fn clear_connections(&self) {
        for name in [map_names::CONNTRACK] {
            let data = MapData::from_pin(self.scratch.pins.join(name)).expect("pinned map");
            let mut map: BpfHashMap<MapData, ConntrackKey, ConntrackValue> =
                BpfHashMap::try_from(Map::LruHashMap(data)).expect("a hash map");
            let keys: Vec<ConntrackKey> = map.keys().filter_map(Result::ok).collect();
            for key in keys {
                let _ = map.remove(&key);
            }
        }
    }

    fn run(&self, direction: Direction, frame: &[u8]) -> bool {
        self.datapath
            .test_run(direction, frame, 1)
            .expect("BPF_PROG_TEST_RUN")
            .allowed()
    }
}

#[test]
fn connection_tracking_agrees_with_its_model() {
    if !require_root("connection_tracking_agrees_with_its_model") {
        return;
    }
    let worlds: u64 = std::env::var("PALISADE_CT_FUZZ_WORLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seeds: Vec<u64> = match std::env::var("PALISADE_CT_FUZZ_SEED") {
        Ok(seed) => vec![seed.parse().expect("PALISADE_CT_FUZZ_SEED: a number")],
        Err(_) => (1..=worlds).collect(),
    };
    let scratch = Scratch::new("ct-fuzz", "model");
    let mut node = Node {
        datapath: Datapath::load(&scratch.pins).expect("loading the datapath"),
        compiler: Compiler::new(),
        maps: MapContents::default(),
        scratch,
    };
    let mut hooks = 0u64;
    let mut opened = 0u64;
    for seed in seeds {
        let mut rng = Rng(seed);
        let mut policy = random_policy(&mut rng);
        node.program(&policy);
        node.clear_connections();
        let mut model = Model::default();
        let mut history: Vec<Packet> = Vec::new();
        let mut log = String::new();
        for step in 0..40 {
            if rng.chance(8) {
                change(&mut rng, &mut policy);
                node.program(&policy);
                model.generation += 1;
                let _ = writeln!(log, "{step}: policy {policy:?}");
                continue;
            }
            let packet = next_packet(&mut rng, &history);
            let bytes = frame(&packet);
            let _ = writeln!(log, "{step}: {packet:?}");
            for (direction, egress) in [
                (Direction::FromEndpoint, true),
                (Direction::ToEndpoint, false),
            ] {
                let expected = model.hook(&policy, &packet, egress);
                let kernel = node.run(direction, &bytes);
                hooks += 1;
                assert_eq!(
                    kernel, expected,
                    "seed {seed}, step {step}, {direction:?}: kernel {kernel}, model \
                     {expected}\ninitial policy and events:\n{log}"
                );
                if !kernel {
                    break;
                }
                if egress {
                    opened += 1;
                }
            }
            history.push(packet);
        }
    }
    eprintln!("{hooks} hook runs agreed ({opened} packets passed their sender's hook)");
}
