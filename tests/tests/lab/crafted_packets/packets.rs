//! Crafted ICMP messages: the error kinds, quoted packets, oversized and fragmented errors.

use std::net::IpAddr;

use palisade_tests::crafted::{self, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_PSH};

/// ICMP errors of every kind in a family: type, code, the 4 bytes after the checksum, name.
pub(super) fn error_kinds(family: u8) -> [(u8, u8, [u8; 4], &'static str); 4] {
    if family == 4 {
        [
            (3, 3, [0; 4], "destination unreachable"),
            (3, 4, [0, 0, 0x05, 0x78], "fragmentation needed"),
            (11, 0, [0; 4], "time exceeded"),
            (12, 0, [20, 0, 0, 0], "parameter problem"),
        ]
    } else {
        [
            (1, 4, [0; 4], "destination unreachable"),
            (2, 0, [0, 0, 0x05, 0x00], "packet too big"),
            (3, 0, [0; 4], "time exceeded"),
            (4, 0, [0, 0, 0, 8], "parameter problem"),
        ]
    }
}

/// The family's destination-unreachable error.
pub(super) fn unreachable(family: u8) -> (u8, u8, [u8; 4]) {
    let (kind, code, rest, _) = error_kinds(family)[0];
    (kind, code, rest)
}

/// A quoted UDP packet `src:sport` → `dst:dport` of `len` payload bytes of `case`'s marker.
pub(super) fn quoted_udp(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    case: u16,
    len: usize,
) -> Vec<u8> {
    let datagram = crafted::udp(src, sport, dst, dport, &crafted::filler(case, len));
    crafted::ip(src, dst, IPPROTO_UDP, 64, 0x1234, &datagram)
}

/// A quoted TCP segment (ACK and data) `src:sport` → `dst:dport`.
pub(super) fn quoted_tcp(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    case: u16,
    len: usize,
) -> Vec<u8> {
    let segment = crafted::tcp(
        src,
        sport,
        dst,
        dport,
        0x0bad_5eed,
        1,
        TCP_ACK | TCP_PSH,
        502,
        &crafted::filler(case, len),
    );
    crafted::ip(src, dst, IPPROTO_TCP, 64, 0x1235, &segment)
}

/// An error of `total` bytes (IP header included) quoting a TCP segment whose payload fills it.
pub(super) fn sized_error(
    src: IpAddr,
    dst: IpAddr,
    (kind, code, rest): (u8, u8, [u8; 4]),
    quote: (IpAddr, u16, IpAddr, u16),
    case: u16,
    total: usize,
) -> Vec<u8> {
    let headers = if src.is_ipv4() {
        20 + 8 + 20 + 20
    } else {
        40 + 8 + 40 + 20
    };
    let quoted = quoted_tcp(quote.0, quote.1, quote.2, quote.3, case, total - headers);
    let packet = crafted::icmp_error(src, dst, kind, code, rest, &quoted);
    debug_assert_eq!(packet.len(), total);
    packet
}

/// The same error of `total` bytes as two fragments.
pub(super) fn fragmented_error(
    src: IpAddr,
    dst: IpAddr,
    quote: (IpAddr, u16, IpAddr, u16),
    case: u16,
    total: usize,
    id: u16,
) -> Vec<Vec<u8>> {
    let packet = sized_error(src, dst, unreachable(family_of(src)), quote, case, total);
    let header = if src.is_ipv4() { 20 } else { 40 };
    let message = &packet[header..];
    crafted::fragments(
        src,
        dst,
        crafted::icmp_protocol(src),
        64,
        id,
        message,
        message.len() / 2,
    )
}

fn family_of(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// An ICMP message that is not an error (echo, unknown type, ND/MLD): `rest` then `body`.
pub(super) fn icmp_packet(
    src: IpAddr,
    dst: IpAddr,
    kind: u8,
    hop: u8,
    rest: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    let message = crafted::icmp(src, dst, kind, 0, rest, body);
    crafted::ip(src, dst, crafted::icmp_protocol(src), hop, 0x2222, &message)
}
