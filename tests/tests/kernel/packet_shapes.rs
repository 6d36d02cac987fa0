//! Every packet shape through the real programs (`BPF_PROG_TEST_RUN`): IPv4 and IPv6
//! fragments follow their first fragment's verdict, IPv6 extension-header chains are walked to
//! the transport header (or matched as an unknown protocol), lying length fields fail closed,
//! and every outcome is counted. (Neighbour discovery and MLD: `neighbour_discovery.rs`.) Privileged: needs root (a failure under CI=true).

use palisade_tests::{require_root, scratch::Scratch};
use std::net::{Ipv4Addr, Ipv6Addr};

use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    replay::Direction,
};

const CLUSTER: &str = include_str!("data/shapes/cluster.yaml");

const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 10);
const SERVER4: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 11);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x11);
const OPEN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x12);

const TCP: u8 = 6;
const UDP: u8 = 17;
const HOP_BY_HOP: u8 = 0;
const DEST_OPTS: u8 = 60;
const FRAGMENT: u8 = 44;
const ICMPV6: u8 = 58;

/// The datapath programmed with the shapes cluster; pins and manifests removed on drop.
struct Lab {
    datapath: Datapath,
    _scratch: Scratch,
}

fn lab(test: &str) -> Lab {
    let scratch = Scratch::new("shapes", test);
    scratch.write("cluster.yaml", CLUSTER);
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let maps = Compiler::new()
        .compile(&snapshot.cluster, &Scope::default())
        .maps;
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    datapath
        .apply(&MapContents::default(), &maps)
        .expect("programming");
    Lab {
        datapath,
        _scratch: scratch,
    }
}

impl Lab {
    fn passes(&self, direction: Direction, frame: &[u8]) -> bool {
        self.datapath
            .test_run(direction, frame, 1)
            .expect("BPF_PROG_TEST_RUN")
            .allowed()
    }

    /// Delivered to the destination endpoint (its ingress check).
    fn delivered(&self, frame: &[u8]) -> bool {
        self.passes(Direction::ToEndpoint, frame)
    }
}

const ETHERNET: [u8; 12] = [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];

fn udp(dport: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&16u16.to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(b"payload!");
    h
}

/// An IPv4 frame; `flags_offset` is the raw flags/fragment-offset field.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, id: u16, flags_offset: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = ETHERNET.to_vec();
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = u16::try_from(20 + payload.len()).expect("small");
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&flags_offset.to_be_bytes());
    frame.extend_from_slice(&[64, UDP, 0, 0]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(payload);
    frame
}

/// An IPv6 frame whose fixed header names `first` and whose payload is `chain` (extension
/// headers and what follows them).
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, first: u8, chain: &[u8]) -> Vec<u8> {
    let mut frame = ETHERNET.to_vec();
    frame.extend_from_slice(&0x86ddu16.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&u16::try_from(chain.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&[first, 64]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(chain);
    frame
}

/// An 8-byte options header (hop-by-hop or destination options) padded with PadN.
fn options(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0]
}

fn fragment_header(next: u8, offset_units: u16, more: bool, id: u32) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&((offset_units << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h
}

#[test]
fn ipv4_fragments_follow_their_first_fragment() {
    if !require_root("ipv4_fragments_follow_their_first_fragment") {
        return;
    }
    let lab = lab("ipv4-fragments");
    const MORE: u16 = 0x2000;
    let first_allowed = ipv4(CLIENT4, SERVER4, 7, MORE, &udp(53));
    let later = |id| ipv4(CLIENT4, SERVER4, id, 2, b"more payload");
    // Before its first fragment, a later fragment is dropped: never decided without ports.
    assert!(!lab.delivered(&later(7)));
    assert!(lab.delivered(&first_allowed));
    assert!(lab.delivered(&later(7)));
    // Another packet's later fragment (no first fragment seen) is dropped.
    assert!(!lab.delivered(&later(8)));
    // A first fragment to a closed port is dropped, and so are the rest of its packet.
    assert!(!lab.delivered(&ipv4(CLIENT4, SERVER4, 9, MORE, &udp(54))));
    assert!(!lab.delivered(&later(9)));
    // An unfragmented packet is decided by its ports as always.
    assert!(lab.delivered(&ipv4(CLIENT4, SERVER4, 10, 0, &udp(53))));
    assert!(!lab.delivered(&ipv4(CLIENT4, SERVER4, 11, 0, &udp(54))));
}

#[test]
fn ipv6_extension_headers_are_walked_and_fragments_tracked() {
    if !require_root("ipv6_extension_headers_are_walked_and_fragments_tracked") {
        return;
    }
    let lab = lab("ipv6-chains");
    // Hop-by-hop and destination options before UDP: the ports are found.
    let mut chain = options(DEST_OPTS);
    chain.extend(options(UDP));
    chain.extend(udp(53));
    assert!(lab.delivered(&ipv6(CLIENT6, SERVER6, HOP_BY_HOP, &chain)));
    let mut closed = options(UDP);
    closed.extend(udp(54));
    assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, DEST_OPTS, &closed)));

    // Eight options headers: the most the program walks, to the ports.
    let chain_of = |n: usize, dport: u16| {
        let mut chain = Vec::new();
        for i in 0..n {
            chain.extend(options(if i + 1 == n { UDP } else { DEST_OPTS }));
        }
        chain.extend(udp(dport));
        ipv6(CLIENT6, SERVER6, DEST_OPTS, &chain)
    };
    assert!(lab.delivered(&chain_of(8, 53)));
    assert!(!lab.delivered(&chain_of(8, 54)));
    // Nine: more than the program walks. The packet is matched as an unknown protocol: only
    // a rule for every protocol and port (open's) lets it through.
    let mut long = Vec::new();
    for i in 0..9 {
        long.extend(options(if i == 8 { UDP } else { DEST_OPTS }));
    }
    long.extend(udp(53));
    assert!(!lab.delivered(&chain_of(9, 53)));
    assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, DEST_OPTS, &long)));
    assert!(lab.delivered(&ipv6(CLIENT6, OPEN6, DEST_OPTS, &long)));

    // A header that cannot be read (the chain claims more than the packet holds): dropped.
    let truncated = vec![UDP, 200, 0, 0, 0, 0, 0, 0];
    assert!(!lab.delivered(&ipv6(CLIENT6, OPEN6, HOP_BY_HOP, &truncated)));

    // Fragments: the first carries the ports; later ones follow it.
    let mut first = fragment_header(UDP, 0, true, 0xabcd);
    first.extend(udp(53));
    let later = |id| {
        let mut later = fragment_header(UDP, 3, false, id);
        later.extend_from_slice(b"the rest of it");
        ipv6(CLIENT6, SERVER6, FRAGMENT, &later)
    };
    assert!(!lab.delivered(&later(0xabcd)));
    assert!(lab.delivered(&ipv6(CLIENT6, SERVER6, FRAGMENT, &first)));
    assert!(lab.delivered(&later(0xabcd)));
    assert!(!lab.delivered(&later(0xabce)));
    let mut first_closed = fragment_header(UDP, 0, true, 0xabcf);
    first_closed.extend(udp(54));
    assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, FRAGMENT, &first_closed)));
    assert!(!lab.delivered(&later(0xabcf)));

    // An MLD report behind a hop-by-hop router alert between pods' own addresses, routed
    // (hop limit 64): not link plumbing, and the isolated server's ingress denies ICMPv6
    // (`neighbour_discovery.rs` has the plumbing shapes).
    let mut mld = options(ICMPV6);
    mld.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 0]);
    assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, HOP_BY_HOP, &mld)));
    assert!(lab.delivered(&ipv6(CLIENT6, OPEN6, HOP_BY_HOP, &mld)));
}

#[test]
fn ipv6_fragments_with_destination_options_after_the_fragment_header() {
    if !require_root("ipv6_fragments_with_destination_options_after_the_fragment_header") {
        return;
    }
    let lab = lab("fragment-dest-opts");
    // The first fragment: fragment header, destination options, UDP. A later fragment's
    // fragment header names the destination options (all it has is payload after it).
    let first = |id, dport| {
        let mut chain = fragment_header(DEST_OPTS, 0, true, id);
        chain.extend(options(UDP));
        chain.extend(udp(dport));
        ipv6(CLIENT6, SERVER6, FRAGMENT, &chain)
    };
    let later = |id, more| {
        let mut chain = fragment_header(DEST_OPTS, 4, more, id);
        chain.extend_from_slice(b"the rest of the datagram");
        ipv6(CLIENT6, SERVER6, FRAGMENT, &chain)
    };
    // In order: the first fragment is decided by its ports, the later ones follow it.
    assert!(lab.delivered(&first(0x100, 53)));
    assert!(lab.delivered(&later(0x100, true)));
    assert!(lab.delivered(&later(0x100, false)));
    // A later fragment first: dropped (never decided without ports); once its first
    // fragment passed, the rest pass.
    assert!(!lab.delivered(&later(0x101, false)));
    assert!(lab.delivered(&first(0x101, 53)));
    assert!(lab.delivered(&later(0x101, false)));
    // In both orders, a first fragment policy denies takes its later fragments with it.
    assert!(!lab.delivered(&first(0x102, 54)));
    assert!(!lab.delivered(&later(0x102, false)));
    assert!(!lab.delivered(&later(0x103, false)));
    assert!(!lab.delivered(&first(0x103, 54)));
    assert!(!lab.delivered(&later(0x103, false)));
    // Recorded per hook: what passed the server's ingress did not pass the client's egress.
    assert!(lab.passes(Direction::FromEndpoint, &first(0x104, 53)));
    assert!(lab.passes(Direction::FromEndpoint, &later(0x104, false)));
    assert!(!lab.passes(Direction::FromEndpoint, &later(0x100, false)));
    // Another packet's identification, or other addresses: no first fragment seen.
    assert!(!lab.delivered(&later(0x105, false)));
    let mut chain = fragment_header(DEST_OPTS, 4, false, 0x100);
    chain.extend_from_slice(b"the rest of the datagram");
    assert!(!lab.delivered(&ipv6(CLIENT6, OPEN6, FRAGMENT, &chain)));
}

/// A TCP SYN from port 40000 to `dport` with this data offset (in 32-bit words).
fn tcp(dport: u16, data_offset: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&40000u16.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = data_offset << 4;
    h[13] = 0x02;
    h
}

#[test]
fn short_tcp_offsets_and_lying_udp_lengths_are_malformed() {
    if !require_root("short_tcp_offsets_and_lying_udp_lengths_are_malformed") {
        return;
    }
    let lab = lab("transport-lengths");
    let malformed = |lab: &Lab| {
        lab.datapath
            .counters()
            .expect("reading counters")
            .values()
            .map(|c| c.malformed())
            .sum::<u64>()
    };
    let v4 = |protocol: u8, l4: &[u8]| {
        let mut frame = ipv4(CLIENT4, SERVER4, 1, 0, l4);
        frame[14 + 9] = protocol;
        frame
    };
    // TCP: a data offset of 5 words or more is decided by its ports; below 5, malformed.
    assert!(lab.delivered(&v4(TCP, &tcp(80, 5))));
    assert!(lab.delivered(&ipv6(CLIENT6, SERVER6, TCP, &tcp(80, 5))));
    for offset in 0..5 {
        let before = malformed(&lab);
        assert!(
            !lab.delivered(&v4(TCP, &tcp(80, offset))),
            "offset {offset}"
        );
        assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, TCP, &tcp(80, offset))));
        assert_eq!(malformed(&lab), before + 2, "offset {offset}");
    }
    // UDP: the length field must hold the header and fit in the IP payload. Shorter than the
    // payload is padding the receiver trims: decided by the ports.
    let with_len = |len: u16| {
        let mut l4 = udp(53);
        l4[4..6].copy_from_slice(&len.to_be_bytes());
        l4
    };
    for len in [8, 12, 16] {
        assert!(lab.delivered(&v4(UDP, &with_len(len))), "length {len}");
        assert!(lab.delivered(&ipv6(CLIENT6, SERVER6, UDP, &with_len(len))));
    }
    for len in [0, 1, 7, 17, 1400, u16::MAX] {
        let before = malformed(&lab);
        assert!(!lab.delivered(&v4(UDP, &with_len(len))), "length {len}");
        assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, UDP, &with_len(len))));
        assert_eq!(malformed(&lab), before + 2, "length {len}");
    }
    // Behind IPv6 extension headers, the payload is what follows them.
    let mut chain = options(UDP);
    chain.extend(with_len(16));
    assert!(lab.delivered(&ipv6(CLIENT6, SERVER6, HOP_BY_HOP, &chain)));
    let mut chain = options(UDP);
    chain.extend(with_len(24));
    assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, HOP_BY_HOP, &chain)));
    // A first fragment's UDP length is the whole datagram's, longer than the fragment: fine.
    const MORE: u16 = 0x2000;
    assert!(lab.delivered(&ipv4(CLIENT4, SERVER4, 20, MORE, &with_len(1400))));
    assert!(!lab.delivered(&ipv4(CLIENT4, SERVER4, 21, MORE, &with_len(7))));
    let mut chain = fragment_header(UDP, 0, true, 0x200);
    chain.extend(with_len(1400));
    assert!(lab.delivered(&ipv6(CLIENT6, SERVER6, FRAGMENT, &chain)));
}

#[test]
fn lying_length_fields_fail_closed() {
    if !require_root("lying_length_fields_fail_closed") {
        return;
    }
    let lab = lab("lengths");
    let good = ipv4(CLIENT4, SERVER4, 1, 0, &udp(53));
    assert!(lab.delivered(&good));
    // Total length shorter than the IPv4 header.
    let mut short = good.clone();
    short[16..18].copy_from_slice(&10u16.to_be_bytes());
    assert!(!lab.delivered(&short));
    // Total length longer than the frame.
    let mut long = good.clone();
    long[16..18].copy_from_slice(&1400u16.to_be_bytes());
    assert!(!lab.delivered(&long));
    // IPv6 payload length longer than the frame.
    let mut chain = udp(53);
    let mut v6 = ipv6(CLIENT6, SERVER6, UDP, &chain);
    assert!(lab.delivered(&v6));
    v6[18..20].copy_from_slice(&1400u16.to_be_bytes());
    assert!(!lab.delivered(&v6));
    chain.truncate(3);
    assert!(!lab.delivered(&ipv6(CLIENT6, SERVER6, UDP, &chain)));
}

#[test]
fn every_outcome_is_counted_per_interface() {
    if !require_root("every_outcome_is_counted_per_interface") {
        return;
    }
    let lab = lab("counters");
    let totals = |lab: &Lab| {
        lab.datapath
            .counters()
            .expect("reading counters")
            .values()
            .fold((0, 0, 0), |(a, d, m), c| {
                (a + c.allowed, d + c.denied(), m + c.malformed())
            })
    };
    let before = totals(&lab);
    let allowed = ipv4(CLIENT4, SERVER4, 1, 0, &udp(53));
    let denied = ipv4(CLIENT4, SERVER4, 2, 0, &udp(54));
    // An IPv4 header length below 20 bytes.
    let mut malformed = allowed.clone();
    malformed[14] = 0x44;
    for _ in 0..3 {
        assert!(lab.delivered(&allowed));
    }
    for _ in 0..2 {
        assert!(!lab.delivered(&denied));
    }
    assert!(!lab.delivered(&malformed));
    let after = totals(&lab);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (3, 2, 1)
    );
}
