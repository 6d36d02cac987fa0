//! Header parsing: from an skb to the few fields a verdict needs.
//!
//! Every read goes through `bpf_skb_load_bytes` (`TcContext::load`), which fails on a short
//! packet instead of reading past it; a failed read is an `Err`, and the caller drops.

use aya_ebpf::programs::TcContext;
use policy_common::ipv4_mapped;

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

/// What the program needs to know about an IP packet.
pub struct Flow {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// IP protocol (IPv6: the next header after the fixed header).
    pub protocol: u8,
    /// Ports in host order; 0 when the packet carries none that we can read (other
    /// protocols, non-first fragments).
    pub sport: u16,
    pub dport: u16,
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
    let flags_offset = u16::from_be(ctx.load::<u16>(ETH_HDR_LEN + 6).map_err(|_| ())?);
    let protocol: u8 = ctx.load(ETH_HDR_LEN + 9).map_err(|_| ())?;
    let src: [u8; 4] = ctx.load(ETH_HDR_LEN + 12).map_err(|_| ())?;
    let dst: [u8; 4] = ctx.load(ETH_HDR_LEN + 16).map_err(|_| ())?;
    let first_fragment = flags_offset & IPV4_FRAG_OFFSET_MASK == 0;
    let (sport, dport) = if first_fragment {
        ports(ctx, protocol, ETH_HDR_LEN + header_len)?
    } else {
        // A later fragment has no L4 header: only rules that do not name a port can match.
        (0, 0)
    };
    Ok(Parsed::Ip(Flow {
        src: ipv4_mapped(src),
        dst: ipv4_mapped(dst),
        protocol,
        sport,
        dport,
    }))
}

#[inline(always)]
fn parse_ipv6(ctx: &TcContext) -> Result<Parsed, ()> {
    let version: u8 = ctx.load(ETH_HDR_LEN).map_err(|_| ())?;
    if version >> 4 != 6 {
        return Err(());
    }
    let next_header: u8 = ctx.load(ETH_HDR_LEN + 6).map_err(|_| ())?;
    let src: [u8; 16] = ctx.load(ETH_HDR_LEN + 8).map_err(|_| ())?;
    let dst: [u8; 16] = ctx.load(ETH_HDR_LEN + 24).map_err(|_| ())?;
    // IPv4-mapped addresses never appear on the wire (RFC 4291 2.5.5.2); in our maps they
    // stand for IPv4 peers, so an IPv6 packet claiming one could borrow an IPv4 identity.
    if is_ipv4_mapped(&src) || is_ipv4_mapped(&dst) {
        return Err(());
    }
    let l4 = ETH_HDR_LEN + IPV6_HDR_LEN;
    if next_header == IPPROTO_ICMPV6 {
        let icmp_type: u8 = ctx.load(l4).map_err(|_| ())?;
        // 130-132, 143: MLD; 133-137: router/neighbour solicitation and advertisement, redirect.
        if matches!(icmp_type, 130..=137 | 143) {
            return Ok(Parsed::Infrastructure);
        }
    }
    // Extension headers are not walked in this version: the packet is matched with its first
    // next-header value and no port, so only rules that allow every protocol can pass it.
    let (sport, dport) = ports(ctx, next_header, l4)?;
    Ok(Parsed::Ip(Flow {
        src,
        dst,
        protocol: next_header,
        sport,
        dport,
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
