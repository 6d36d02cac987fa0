//! The frames the tests send: TCP, UDP and SCTP in both families, ICMP unreachables.

use std::net::{IpAddr, Ipv4Addr};

use super::cluster::SYN;

/// A TCP (SYN), UDP or SCTP packet over IPv4 or IPv6 (both addresses of one family).
pub(super) fn packet(protocol: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    match protocol {
        // TCP: sequence, acknowledgement, offset, SYN, window, checksum, urgent.
        6 => l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, SYN, 0xff, 0xff, 0, 0, 0, 0]),
        // UDP: length, checksum, 4 bytes of payload.
        17 => l4.extend_from_slice(&[0, 12, 0, 0, b'd', b'n', b's', b'?']),
        // SCTP: verification tag, checksum.
        _ => l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]),
    }
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => ipv4(src, dst, protocol, &l4),
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
            frame.extend_from_slice(&0x86ddu16.to_be_bytes());
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&u16::try_from(l4.len()).expect("small").to_be_bytes());
            frame.extend_from_slice(&[protocol, 64]);
            frame.extend_from_slice(&src.octets());
            frame.extend_from_slice(&dst.octets());
            frame.extend_from_slice(&l4);
            frame
        }
        _ => panic!("one family per packet"),
    }
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = u16::try_from(20 + payload.len()).expect("small");
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x40, 0, 64, protocol, 0, 0]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(payload);
    frame
}

pub(super) fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    ipv4(src, dst, 6, &h)
}

/// Port unreachable from `src` to `dst`, quoting `quoted` (an IPv4 frame).
pub(super) fn icmp_unreachable(src: Ipv4Addr, dst: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
    let mut h = vec![3, 3, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&quoted[14..14 + 28]);
    ipv4(src, dst, 1, &h)
}
