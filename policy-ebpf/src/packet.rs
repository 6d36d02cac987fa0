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

const IPPROTO_ICMP: u8 = 1;
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
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// ICMP and ICMPv6 errors: the flow of the packet they quote.
    pub quoted: Quoted,
}

/// The tuple of the packet an ICMP error quotes (as that packet was sent). A plain struct
/// with a flag rather than an `Option`: every byte is always initialised, which the verifier
/// insists on when the value is copied around.
#[derive(Clone, Copy)]
pub struct Quoted {
    /// Whether the rest is a quoted tuple at all.
    pub valid: bool,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
}

/// What the transport header says.
struct Transport {
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    quoted: Quoted,
}

impl Quoted {
    pub const NONE: Quoted = Quoted {
        valid: false,
        src: [0; 16],
        dst: [0; 16],
        protocol: 0,
        sport: 0,
        dport: 0,
    };
}

const NO_TRANSPORT: Transport = Transport {
    sport: 0,
    dport: 0,
    tcp_flags: 0,
    quoted: Quoted::NONE,
};

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

pub enum Parsed {
    /// Link-layer plumbing every endpoint needs to reach anything (ARP, IPv6 neighbour
    /// discovery and MLD). NetworkPolicy does not govern it; Calico and Cilium pass it too.
    Infrastructure,
    /// An IP packet, described in the `Flow` passed to [`parse`].
    Ip,
}

impl Flow {
    pub const EMPTY: Flow = Flow {
        src: [0; 16],
        dst: [0; 16],
        protocol: 0,
        sport: 0,
        dport: 0,
        fragment: Fragment::No,
        tcp_flags: 0,
        quoted: Quoted::NONE,
    };
}

/// Parses the frame into `flow`. Not inlined: a BPF subprogram has its own stack frame, which
/// keeps the parser's temporaries off the decision's stack (512 bytes for the whole chain).
#[inline(never)]
pub fn parse(ctx: &TcContext, flow: &mut Flow) -> Result<Parsed, ()> {
    let ether_type = u16::from_be(ctx.load::<u16>(12).map_err(|_| ())?);
    match ether_type {
        ETH_P_IP => parse_ipv4(ctx, flow),
        ETH_P_IPV6 => parse_ipv6(ctx, flow),
        ETH_P_ARP => Ok(Parsed::Infrastructure),
        // VLAN tags, MPLS and anything else have no business on a pod interface.
        _ => Err(()),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &TcContext, out: &mut Flow) -> Result<Parsed, ()> {
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
    let transport = match fragment {
        // A later fragment has no transport header.
        Fragment::Later(_) => NO_TRANSPORT,
        // A first fragment too short to hold the ports cannot be decided: drop.
        _ => transport(ctx, protocol, ETH_HDR_LEN + header_len)?,
    };
    *out = Flow {
        src: ipv4_mapped(src),
        dst: ipv4_mapped(dst),
        protocol,
        sport: transport.sport,
        dport: transport.dport,
        fragment,
        tcp_flags: transport.tcp_flags,
        quoted: transport.quoted,
    };
    Ok(Parsed::Ip)
}

#[inline(always)]
fn parse_ipv6(ctx: &TcContext, out: &mut Flow) -> Result<Parsed, ()> {
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
                    *out = Flow {
                        src,
                        dst,
                        protocol: next,
                        sport: 0,
                        dport: 0,
                        fragment: Fragment::Later(id),
                        tcp_flags: 0,
                        quoted: Quoted::NONE,
                    };
                    return Ok(Parsed::Ip);
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
        *out = Flow {
            src,
            dst,
            protocol: PROTOCOL_UNKNOWN,
            sport: 0,
            dport: 0,
            fragment,
            tcp_flags: 0,
            quoted: Quoted::NONE,
        };
        return Ok(Parsed::Ip);
    }
    if next == IPPROTO_ICMPV6 && matches!(fragment, Fragment::No) {
        let icmp_type: u8 = ctx.load(offset).map_err(|_| ())?;
        // 130-132, 143: MLD (sent with a hop-by-hop router alert); 133-137: router and
        // neighbour solicitation and advertisement, redirect.
        if matches!(icmp_type, 130..=137 | 143) {
            return Ok(Parsed::Infrastructure);
        }
    }
    let transport = transport(ctx, next, offset)?;
    *out = Flow {
        src,
        dst,
        protocol: next,
        sport: transport.sport,
        dport: transport.dport,
        fragment,
        tcp_flags: transport.tcp_flags,
        quoted: transport.quoted,
    };
    Ok(Parsed::Ip)
}

#[inline(always)]
fn is_ipv4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff
}

/// (source, destination) port: TCP, UDP and SCTP all start with them.
#[inline(always)]
fn ports(ctx: &TcContext, l4_offset: usize) -> Result<(u16, u16), ()> {
    let ports: [u8; 4] = ctx.load(l4_offset).map_err(|_| ())?;
    Ok((
        u16::from_be_bytes([ports[0], ports[1]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    ))
}

#[inline(always)]
fn transport(ctx: &TcContext, protocol: u8, l4_offset: usize) -> Result<Transport, ()> {
    match protocol {
        IPPROTO_TCP => {
            let (sport, dport) = ports(ctx, l4_offset)?;
            let flags: u8 = ctx.load(l4_offset + 13).map_err(|_| ())?;
            Ok(Transport {
                sport,
                dport,
                tcp_flags: flags,
                quoted: Quoted::NONE,
            })
        }
        IPPROTO_UDP | IPPROTO_SCTP => {
            let (sport, dport) = ports(ctx, l4_offset)?;
            Ok(Transport {
                sport,
                dport,
                tcp_flags: 0,
                quoted: Quoted::NONE,
            })
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => icmp(ctx, protocol, l4_offset),
        _ => Ok(NO_TRANSPORT),
    }
}

/// ICMP: echo requests and replies are tracked by identifier (as ports, so the reply is the
/// request's reversed tuple); errors carry the packet they are about.
#[inline(always)]
fn icmp(ctx: &TcContext, protocol: u8, offset: usize) -> Result<Transport, ()> {
    let header: [u8; 8] = ctx.load(offset).map_err(|_| ())?;
    let id = u16::from_be_bytes([header[4], header[5]]);
    let v6 = protocol == IPPROTO_ICMPV6;
    let (request, reply) = if v6 { (128, 129) } else { (8, 0) };
    let error = if v6 {
        matches!(header[0], 1..=4)
    } else {
        matches!(header[0], 3 | 11 | 12)
    };
    let mut transport = NO_TRANSPORT;
    if header[0] == request {
        transport.sport = id;
    } else if header[0] == reply {
        transport.dport = id;
    } else if error {
        // A quote we cannot read makes the error unrelated, not malformed: policy decides.
        transport.quoted = if v6 {
            quoted_ipv6(ctx, offset + 8)
        } else {
            quoted_ipv4(ctx, offset + 8)
        };
    }
    Ok(transport)
}

#[inline(always)]
fn quoted_ports(ctx: &TcContext, protocol: u8, offset: usize) -> Result<(u16, u16), ()> {
    match protocol {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => ports(ctx, offset),
        _ => Ok((0, 0)),
    }
}

#[inline(always)]
fn quoted_ipv4(ctx: &TcContext, offset: usize) -> Quoted {
    let Ok(version_ihl) = ctx.load::<u8>(offset) else {
        return Quoted::NONE;
    };
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || header_len < IPV4_MIN_HDR_LEN {
        return Quoted::NONE;
    }
    let (Ok(protocol), Ok(src), Ok(dst)) = (
        ctx.load::<u8>(offset + 9),
        ctx.load::<[u8; 4]>(offset + 12),
        ctx.load::<[u8; 4]>(offset + 16),
    ) else {
        return Quoted::NONE;
    };
    let Ok((sport, dport)) = quoted_ports(ctx, protocol, offset + header_len) else {
        return Quoted::NONE;
    };
    Quoted {
        valid: true,
        src: ipv4_mapped(src),
        dst: ipv4_mapped(dst),
        protocol,
        sport,
        dport,
    }
}

#[inline(always)]
fn quoted_ipv6(ctx: &TcContext, offset: usize) -> Quoted {
    let Ok(version) = ctx.load::<u8>(offset) else {
        return Quoted::NONE;
    };
    if version >> 4 != 6 {
        return Quoted::NONE;
    }
    let (Ok(protocol), Ok(src), Ok(dst)) = (
        ctx.load::<u8>(offset + 6),
        ctx.load::<[u8; 16]>(offset + 8),
        ctx.load::<[u8; 16]>(offset + 24),
    ) else {
        return Quoted::NONE;
    };
    let Ok((sport, dport)) = quoted_ports(ctx, protocol, offset + IPV6_HDR_LEN) else {
        return Quoted::NONE;
    };
    Quoted {
        valid: true,
        src,
        dst,
        protocol,
        sport,
        dport,
    }
}
