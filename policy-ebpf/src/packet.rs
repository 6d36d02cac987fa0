//! Header parsing: from an skb to the few fields a verdict needs.
//!
//! Every read goes through `bpf_skb_load_bytes` (`TcContext::load`), which fails on a short
//! packet instead of reading past it; a failed read is an `Err`, and the caller drops.

use aya_ebpf::programs::TcContext;
use policy_common::{PROTOCOL_UNKNOWN, ipv4_mapped};

const ETH_HDR_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

const IPV4_MIN_HDR_LEN: usize = 20;
const IPV6_HDR_LEN: usize = 40;
/// Fragment offset bits of the IPv4 flags/offset field.
const IPV4_FRAG_OFFSET_MASK: u16 = 0x1fff;
/// "More fragments" bit of the IPv4 flags/offset field.
const IPV4_MORE_FRAGMENTS: u16 = 0x2000;

/// IPv6 extension headers the program walks past.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
/// The longest extension-header chain walked. Real traffic carries one or two; a longer
/// chain is matched as [`PROTOCOL_UNKNOWN`] rather than walked further.
const IPV6_MAX_EXT_HEADERS: usize = 8;

/// Where a packet stands in fragmentation.
#[derive(Clone, Copy)]
pub enum Fragment {
    /// Not fragmented (or an IPv6 atomic fragment).
    No,
    /// The first fragment: it carries the transport header; its verdict is recorded.
    First(u32),
    /// A later fragment: no transport header; it follows the first fragment's verdict.
    Later(u32),
}

/// What the program needs to know about an IP packet.
pub struct Flow {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// IP protocol (IPv6: the next header after the fixed header).
    pub protocol: u8,
    /// Ports in host order; 0 when the packet carries none (other protocols, later
    /// fragments).
    pub sport: u16,
    pub dport: u16,
    pub fragment: Fragment,
}

pub enum Parsed {
    /// Link-layer plumbing every endpoint needs to reach anything (ARP, IPv6 neighbour
    /// discovery and MLD). NetworkPolicy does not govern it; Calico and Cilium pass it too.
    Infrastructure,
    Ip(Flow),
}

#[inline(always)]
pub fn parse(ctx: &TcContext) -> Result<Parsed, ()> {
    let ether_type = u16::from_be(ctx.load::<u16>(12).map_err(|_| ())?);
    match ether_type {
        ETH_P_IP => parse_ipv4(ctx),
        ETH_P_IPV6 => parse_ipv6(ctx),
        ETH_P_ARP => Ok(Parsed::Infrastructure),
        // VLAN tags, MPLS and anything else have no business on a pod interface.
        _ => Err(()),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &TcContext) -> Result<Parsed, ()> {
    let version_ihl: u8 = ctx.load(ETH_HDR_LEN).map_err(|_| ())?;
    if version_ihl >> 4 != 4 {
        return Err(());
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if header_len < IPV4_MIN_HDR_LEN {
        return Err(());
    }
    let total_len = usize::from(u16::from_be(
        ctx.load::<u16>(ETH_HDR_LEN + 2).map_err(|_| ())?,
    ));
    // A total length shorter than the header (or than the frame holds) is a lie about where
    // the payload is.
    if total_len < header_len || ETH_HDR_LEN + total_len > ctx.len() as usize {
        return Err(());
    }
    let id = u16::from_be(ctx.load::<u16>(ETH_HDR_LEN + 4).map_err(|_| ())?);
    let flags_offset = u16::from_be(ctx.load::<u16>(ETH_HDR_LEN + 6).map_err(|_| ())?);
    let protocol: u8 = ctx.load(ETH_HDR_LEN + 9).map_err(|_| ())?;
    let src: [u8; 4] = ctx.load(ETH_HDR_LEN + 12).map_err(|_| ())?;
    let dst: [u8; 4] = ctx.load(ETH_HDR_LEN + 16).map_err(|_| ())?;
    let fragment = if flags_offset & IPV4_FRAG_OFFSET_MASK != 0 {
        Fragment::Later(u32::from(id))
    } else if flags_offset & IPV4_MORE_FRAGMENTS != 0 {
        Fragment::First(u32::from(id))
    } else {
        Fragment::No
    };
    let (sport, dport) = match fragment {
        // A later fragment has no transport header.
        Fragment::Later(_) => (0, 0),
        // A first fragment too short to hold the ports cannot be decided: drop.
        _ => ports(ctx, protocol, ETH_HDR_LEN + header_len)?,
    };
    Ok(Parsed::Ip(Flow {
        src: ipv4_mapped(src),
        dst: ipv4_mapped(dst),
        protocol,
        sport,
        dport,
        fragment,
    }))
}

#[inline(always)]
fn parse_ipv6(ctx: &TcContext) -> Result<Parsed, ()> {
    let version: u8 = ctx.load(ETH_HDR_LEN).map_err(|_| ())?;
    if version >> 4 != 6 {
        return Err(());
    }
    let payload_len = usize::from(u16::from_be(
        ctx.load::<u16>(ETH_HDR_LEN + 4).map_err(|_| ())?,
    ));
    if ETH_HDR_LEN + IPV6_HDR_LEN + payload_len > ctx.len() as usize {
        return Err(());
    }
    let first_header: u8 = ctx.load(ETH_HDR_LEN + 6).map_err(|_| ())?;
    let src: [u8; 16] = ctx.load(ETH_HDR_LEN + 8).map_err(|_| ())?;
    let dst: [u8; 16] = ctx.load(ETH_HDR_LEN + 24).map_err(|_| ())?;
    // IPv4-mapped addresses never appear on the wire (RFC 4291 2.5.5.2); in our maps they
    // stand for IPv4 peers, so an IPv6 packet claiming one could borrow an IPv4 identity.
    if is_ipv4_mapped(&src) || is_ipv4_mapped(&dst) {
        return Err(());
    }

    // Walk the extension headers (bounded) to the upper-layer header.
    let mut next = first_header;
    let mut offset = ETH_HDR_LEN + IPV6_HDR_LEN;
    let mut fragment = Fragment::No;
    let mut walked_to_the_end = false;
    for _ in 0..IPV6_MAX_EXT_HEADERS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let header: [u8; 2] = ctx.load(offset).map_err(|_| ())?;
                next = header[0];
                offset += (usize::from(header[1]) + 1) * 8;
            }
            IPV6_AUTH => {
                let header: [u8; 2] = ctx.load(offset).map_err(|_| ())?;
                next = header[0];
                offset += (usize::from(header[1]) + 2) * 4;
            }
            IPV6_FRAGMENT => {
                let header: [u8; 8] = ctx.load(offset).map_err(|_| ())?;
                next = header[0];
                let offset_flags = u16::from_be_bytes([header[2], header[3]]);
                let id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                offset += 8;
                if offset_flags >> 3 != 0 {
                    // A later fragment: what follows is payload, not headers.
                    return Ok(Parsed::Ip(Flow {
                        src,
                        dst,
                        protocol: next,
                        sport: 0,
                        dport: 0,
                        fragment: Fragment::Later(id),
                    }));
                }
                if offset_flags & 1 != 0 {
                    fragment = Fragment::First(id);
                }
            }
            _ => {
                walked_to_the_end = true;
                break;
            }
        }
    }
    if !walked_to_the_end {
        // More extension headers than we walk: no transport header we could trust.
        return Ok(Parsed::Ip(Flow {
            src,
            dst,
            protocol: PROTOCOL_UNKNOWN,
            sport: 0,
            dport: 0,
            fragment,
        }));
    }
    if next == IPPROTO_ICMPV6 && matches!(fragment, Fragment::No) {
        let icmp_type: u8 = ctx.load(offset).map_err(|_| ())?;
        // 130-132, 143: MLD (sent with a hop-by-hop router alert); 133-137: router and
        // neighbour solicitation and advertisement, redirect.
        if matches!(icmp_type, 130..=137 | 143) {
            return Ok(Parsed::Infrastructure);
        }
    }
    let (sport, dport) = ports(ctx, next, offset)?;
    Ok(Parsed::Ip(Flow {
        src,
        dst,
        protocol: next,
        sport,
        dport,
        fragment,
    }))
}

#[inline(always)]
fn is_ipv4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff
}

/// (source, destination) port: TCP, UDP and SCTP all start with them.
#[inline(always)]
fn ports(ctx: &TcContext, protocol: u8, l4_offset: usize) -> Result<(u16, u16), ()> {
    match protocol {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => {
            let ports: [u8; 4] = ctx.load(l4_offset).map_err(|_| ())?;
            Ok((
                u16::from_be_bytes([ports[0], ports[1]]),
                u16::from_be_bytes([ports[2], ports[3]]),
            ))
        }
        _ => Ok((0, 0)),
    }
}
