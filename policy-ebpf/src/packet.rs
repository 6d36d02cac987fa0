//! Header parsing: from an skb to the few fields a verdict needs.
//!
//! Every read goes through [`read`]: straight from the packet's linear data when the bytes are
//! there (no helper call, which is most of a small program's cost), else through
//! `bpf_skb_load_bytes`, which also reaches paged data. Either way a read past the end of the
//! packet fails instead of reading past it; a failed read is an `Err`, and the caller drops.
//!
//! The parser writes its result field by field into the caller's [`Flow`] and never builds a
//! whole zeroed value: the BPF backend turns zeroed arrays into calls of a byte-at-a-time
//! `memset`, which cost more than the rest of the parse.

use aya_ebpf::programs::TcContext;
use policy_common::PROTOCOL_UNKNOWN;

const ETH_HDR_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;
/// UDP-Lite: ports where UDP has them (Calico rules may name its ports).
const IPPROTO_UDPLITE: u8 = 136;

const IPV4_MIN_HDR_LEN: usize = 20;
const IPV6_HDR_LEN: usize = 40;
const UDP_HDR_LEN: usize = 8;
/// The smallest TCP data offset (in 32-bit words): the fixed header.
const TCP_MIN_DATA_OFFSET: u8 = 5;
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
/// The longest extension-header chain walked (this many headers, then the upper-layer header).
/// Real traffic carries one or two; a longer chain is matched as [`PROTOCOL_UNKNOWN`] rather
/// than walked further.
const IPV6_MAX_EXT_HEADERS: usize = 8;
/// Past the longest chain walked (8 headers of at most 2,048 bytes after the fixed header).
const MAX_TRANSPORT_OFFSET: usize = ETH_HDR_LEN + IPV6_HDR_LEN + IPV6_MAX_EXT_HEADERS * 2048;

/// What the hop limit of on-link plumbing must be: RFC 4861 section 6.1 and 7.1 (receivers
/// discard neighbour and router discovery with any other value, so a node's forwarding, which
/// decrements it, cannot carry them); RFC 3810 section 5 (MLD is sent with hop limit 1).
const ND_HOP_LIMIT: u8 = 255;
const MLD_HOP_LIMIT: u8 = 1;

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

/// What the program needs to know about an IP packet. It lives in a per-CPU map slot
/// (`PALISADE_SCRATCH`) that [`parse`] overwrites; on [`Parsed::Ip`] every field is set,
/// except that `quoted`'s tuple is only meaningful when `quoted.valid`.
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
    /// ICMP and ICMPv6: type in the high byte, code in the low byte (what rule entries key
    /// ICMP on instead of a port); 0 for other protocols.
    pub icmp_type_code: u16,
    /// Four bytes that network address translation leaves alone, to recognise a packet after
    /// kube-proxy rewrote both of its addresses (a pod reaching itself through its own
    /// Service): TCP's sequence number, the first four bytes of a UDP payload, an SCTP
    /// packet's first chunk value (an INIT's initiate tag); 0 when there are none.
    pub fingerprint: u32,
    /// Not the parser's: where `palisade_after_nat` found a pod's packet to its own Service
    /// masqueraded, the masquerade's address and port (the packet's source as delivered),
    /// once `flow` has been rewritten to the pod's own socket. Meaningful only then.
    pub masquerade_addr: [u8; 16],
    pub masquerade_port: u16,
    /// Not the parser's: the frame's length (`skb->len`, from the Ethernet header), set by
    /// the program before the decision.
    pub frame_len: u32,
    /// Not the parser's: what the program made of the parse (see `tc_verdict`).
    pub parsed: u32,
    /// Not the parser's: the slot of the interface's counters (see
    /// `EndpointPolicy::counter_slot`), set by the decision once it found the endpoint bound
    /// to the interface; 0 before.
    pub counter_slot: u32,
    /// Not the parser's: why the decision dropped the packet
    /// (`policy_common::counters::drop_reason`), set on every path that returns a deny.
    pub drop_reason: u32,
    /// The parser's own scratch, not a result: where the IPv6 extension-header walk ended
    /// (offset, then the header there), passed through map memory (see `parse_ipv6`).
    pub walked: [u32; 2],
}

impl Flow {
    /// The protocol a fragmented packet's fragments are recorded under
    /// (`policy_common::fragment`): as the kernel's reassembly keys them, IPv4 fragments by
    /// their header's protocol, IPv6 fragments by addresses and identification alone (0 here).
    /// What follows an IPv6 fragment header differs between the first fragment (the transport
    /// protocol, after any destination options) and the later ones (the fragment header's next
    /// header), so it cannot be part of their common key.
    #[inline(always)]
    pub fn fragment_protocol(&self) -> u8 {
        // The parser drops IPv6 packets with IPv4-mapped addresses: mapped means IPv4.
        if is_ipv4_mapped(&self.src) {
            self.protocol
        } else {
            0
        }
    }
}

/// The tuple of the packet an ICMP error quotes (as that packet was sent). A plain struct
/// with a flag rather than an `Option`, so the parser can write it in place.
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

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

pub enum Parsed {
    /// Link-layer plumbing every endpoint needs to reach anything (ARP; IPv6 neighbour and
    /// router discovery and MLD between link-local or unspecified addresses, on-link: see
    /// [`link_plumbing`]). NetworkPolicy does not govern it; Calico and Cilium pass it too.
    Infrastructure,
    /// On-link neighbour discovery that carries a routable address of an endpoint: a
    /// solicitation or advertisement the endpoint sends from its own address to a link-scope
    /// destination, or one delivered to the endpoint's own address (the node's reachability
    /// probes). Plumbing only where that address is the endpoint's on this interface (the
    /// anti-spoofing binding); else an ICMPv6 packet like any other, described in the `Flow`.
    OwnInfrastructure,
    /// An IP packet, described in the `Flow` passed to [`parse`].
    Ip,
}

/// `T` read from the packet at `offset` (see the module documentation).
#[inline(always)]
fn read<T: Copy>(ctx: &TcContext, offset: usize) -> Result<T, ()> {
    let start = ctx.data();
    if start + offset + core::mem::size_of::<T>() <= ctx.data_end() {
        // SAFETY: the bytes lie inside the linear data, as checked just above (and by the
        // verifier); packet data has no alignment, hence the unaligned read.
        return Ok(unsafe { core::ptr::read_unaligned((start + offset) as *const T) });
    }
    ctx.load::<T>(offset).map_err(|_| ())
}

/// Writes an IPv4 address in its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), as two word
/// stores and the address rather than a zeroed array (see the module documentation).
#[inline(always)]
fn set_ipv4_mapped(out: &mut [u8; 16], v4: [u8; 4]) {
    let p = out.as_mut_ptr();
    // SAFETY: 8 + 4 + 4 bytes, all inside the 16-byte array; unaligned stores.
    unsafe {
        core::ptr::write_unaligned(p.cast::<u64>(), 0);
        core::ptr::write_unaligned(p.add(8).cast::<[u8; 4]>(), [0, 0, 0xff, 0xff]);
        core::ptr::write_unaligned(p.add(12).cast::<[u8; 4]>(), v4);
    }
}

/// Parses the frame into `flow`. Not inlined: a BPF subprogram has its own stack frame, which
/// keeps the parser's temporaries off the decision's stack (512 bytes for the whole chain).
#[inline(never)]
pub fn parse(ctx: &TcContext, flow: &mut Flow) -> Result<Parsed, ()> {
    let ether_type = u16::from_be(read::<u16>(ctx, 12)?);
    match ether_type {
        ETH_P_IP => parse_ipv4(ctx, flow),
        ETH_P_IPV6 => parse_ipv6(ctx, flow),
        ETH_P_ARP => Ok(Parsed::Infrastructure),
        // A single VLAN tag never gets here: the kernel keeps it in the skb's metadata, not
        // the frame, before tc runs, and the packet inside is judged. A tag still in the frame
        // (a second one), MPLS and anything else have no business on a pod interface.
        _ => Err(()),
    }
}

/// The fixed part of the IPv4 header, read in one go.
#[derive(Clone, Copy)]
#[repr(C)]
struct Ipv4Header {
    version_ihl: u8,
    tos: u8,
    total_len: [u8; 2],
    id: [u8; 2],
    flags_offset: [u8; 2],
    ttl: u8,
    protocol: u8,
    checksum: [u8; 2],
    src: [u8; 4],
    dst: [u8; 4],
}

#[inline(always)]
fn parse_ipv4(ctx: &TcContext, out: &mut Flow) -> Result<Parsed, ()> {
    let header: Ipv4Header = read(ctx, ETH_HDR_LEN)?;
    if header.version_ihl >> 4 != 4 {
        return Err(());
    }
    let header_len = usize::from(header.version_ihl & 0x0f) * 4;
    if header_len < IPV4_MIN_HDR_LEN {
        return Err(());
    }
    let total_len = usize::from(u16::from_be_bytes(header.total_len));
    // A total length shorter than the header (or than the frame holds) is a lie about where
    // the payload is.
    if total_len < header_len || ETH_HDR_LEN + total_len > ctx.len() as usize {
        return Err(());
    }
    let id = u32::from(u16::from_be_bytes(header.id));
    let flags_offset = u16::from_be_bytes(header.flags_offset);
    let fragment = if flags_offset & IPV4_FRAG_OFFSET_MASK != 0 {
        Fragment::Later(id)
    } else if flags_offset & IPV4_MORE_FRAGMENTS != 0 {
        Fragment::First(id)
    } else {
        Fragment::No
    };
    set_ipv4_mapped(&mut out.src, header.src);
    set_ipv4_mapped(&mut out.dst, header.dst);
    out.protocol = header.protocol;
    out.fragment = fragment;
    no_transport(out);
    match fragment {
        // A later fragment has no transport header.
        Fragment::Later(_) => {}
        // A first fragment too short to hold the ports cannot be decided: drop.
        _ => transport(
            ctx,
            header.protocol,
            ETH_HDR_LEN + header_len,
            ETH_HDR_LEN + total_len,
            out,
        )?,
    }
    Ok(Parsed::Ip)
}

/// The fixed IPv6 header, read in one go.
#[derive(Clone, Copy)]
#[repr(C)]
struct Ipv6Header {
    version_class_flow: [u8; 4],
    payload_len: [u8; 2],
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

#[inline(always)]
fn parse_ipv6(ctx: &TcContext, out: &mut Flow) -> Result<Parsed, ()> {
    let header: Ipv6Header = read(ctx, ETH_HDR_LEN)?;
    if header.version_class_flow[0] >> 4 != 6 {
        return Err(());
    }
    let payload_len = usize::from(u16::from_be_bytes(header.payload_len));
    if ETH_HDR_LEN + IPV6_HDR_LEN + payload_len > ctx.len() as usize {
        return Err(());
    }
    // IPv4-mapped addresses never appear on the wire (RFC 4291 2.5.5.2); in our maps they
    // stand for IPv4 peers, so an IPv6 packet claiming one could borrow an IPv4 identity.
    if is_ipv4_mapped(&header.src) || is_ipv4_mapped(&header.dst) {
        return Err(());
    }
    out.src = header.src;
    out.dst = header.dst;
    out.fragment = Fragment::No;
    no_transport(out);

    // Kept for the plumbing check below: the rest of the header is not (stack).
    let hop_limit = header.hop_limit;

    // Walk the extension headers (bounded) to the upper-layer header.
    let mut next = header.next_header;
    let mut offset = ETH_HDR_LEN + IPV6_HDR_LEN;
    for _ in 0..IPV6_MAX_EXT_HEADERS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let header: [u8; 2] = read(ctx, offset)?;
                next = header[0];
                offset += (usize::from(header[1]) + 1) * 8;
            }
            IPV6_AUTH => {
                let header: [u8; 2] = read(ctx, offset)?;
                next = header[0];
                offset += (usize::from(header[1]) + 2) * 4;
            }
            IPV6_FRAGMENT => {
                let header: [u8; 8] = read(ctx, offset)?;
                next = header[0];
                let offset_flags = u16::from_be_bytes([header[2], header[3]]);
                let id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                offset += 8;
                if offset_flags >> 3 != 0 {
                    // A later fragment: what follows is payload, not headers.
                    out.protocol = next;
                    out.fragment = Fragment::Later(id);
                    return Ok(Parsed::Ip);
                }
                if offset_flags & 1 != 0 {
                    out.fragment = Fragment::First(id);
                }
            }
            _ => break,
        }
    }
    // Still at an extension header after walking the most we walk: a longer chain, and no
    // transport header we could trust. (Checked after the loop rather than with one more turn
    // of it: each turn costs the verifier a walk of the whole body.)
    if matches!(
        next,
        IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_AUTH | IPV6_DEST_OPTS
    ) {
        out.protocol = PROTOCOL_UNKNOWN;
        return Ok(Parsed::Ip);
    }
    // The walk ends in many states (each number of headers, each kind): they converge here,
    // through map memory the verifier does not track, so that the transport header is parsed
    // in one walk rather than one per way the chain ended (which would take the programs past
    // the verifier's budget). Volatile, so that the compiler does not forward the values.
    out.walked = [offset as u32, u32::from(next)];
    // SAFETY: fields of this CPU's slot, written just above.
    let (offset, next) = unsafe {
        (
            core::ptr::read_volatile(&out.walked[0]) as usize,
            core::ptr::read_volatile(&out.walked[1]) as u8,
        )
    };
    // (A bound the verifier needs for packet arithmetic; no walk of 8 headers goes past it.)
    if offset > MAX_TRANSPORT_OFFSET {
        return Err(());
    }
    out.protocol = next;
    transport(
        ctx,
        next,
        offset,
        ETH_HDR_LEN + IPV6_HDR_LEN + payload_len,
        out,
    )?;
    // Neighbour discovery and MLD are plumbing only unfragmented (RFC 6980 forbids fragmenting
    // them) and in the shape of link plumbing; anything else of their types is an ICMPv6
    // packet decided by policy (its type and code are already in `out`).
    if next == IPPROTO_ICMPV6 && matches!(out.fragment, Fragment::No) {
        return Ok(link_plumbing(
            (out.icmp_type_code >> 8) as u8,
            hop_limit,
            &out.src,
            &out.dst,
        ));
    }
    Ok(Parsed::Ip)
}

/// Whether ICMPv6 neighbour discovery (133 router solicitation, 134 router advertisement,
/// 135 neighbour solicitation, 136 neighbour advertisement, 137 redirect) or MLD (130 query,
/// 131 and 143 reports, 132 done) is link plumbing between an endpoint and its own node, from
/// fields the parser has read anyway. A campaign of crafted packets showed these types, passed
/// whatever their shape, to be a covert channel between pods (routed through the node, from
/// foreign sources, with large payloads). They are plumbing only when:
///
/// * on-link: hop limit 255 (neighbour and router discovery) or 1 (MLD). A packet the node
///   forwarded has had its hop limit decremented, so it is never plumbing where it arrives;
/// * to a link-scope destination: link-local unicast, the all-nodes, all-routers or
///   MLDv2-routers group, a solicited-node group (`ff02::1:ffXX:XXXX`), and for MLD any
///   `ff02::/16` group (reports and queries go to the group they are about). Link-scope
///   destinations are never forwarded;
/// * from a link-local or the unspecified address, as RFC 4861 and 3810 have them sent
///   ([`Parsed::Infrastructure`]); or a neighbour solicitation or advertisement, which
///   RFC 4861 lets carry a routable source, from the endpoint's own address
///   ([`Parsed::OwnInfrastructure`]: the binding is checked by the caller);
/// * or a neighbour solicitation or advertisement on-link to a routable address: the node
///   probing the reachability of an endpoint's own address (RFC 4861 section 7.3.3), plumbing
///   only when delivered to that endpoint ([`Parsed::OwnInfrastructure`]).
///
/// Everything else is [`Parsed::Ip`]: decided by policy, keyed by type and code like any
/// ICMPv6 packet.
#[inline(always)]
fn link_plumbing(icmp_type: u8, hop_limit: u8, src: &[u8; 16], dst: &[u8; 16]) -> Parsed {
    let mld = matches!(icmp_type, 130..=132 | 143);
    let nd = matches!(icmp_type, 133..=137);
    let on_link = (nd && hop_limit == ND_HOP_LIMIT) || (mld && hop_limit == MLD_HOP_LIMIT);
    if !on_link {
        return Parsed::Ip;
    }
    // NS and NA: the types that carry routable addresses in practice (address resolution
    // from the address of the packet that needed it, reachability probes to a unicast
    // address). RFC 4861 has advertisements and redirects sent from link-local addresses, and
    // Linux sends router solicitations from one (or the unspecified address).
    let neighbour = matches!(icmp_type, 135 | 136);
    let link_scope_dst = if dst[0] == 0xff {
        // ff02::/16, and within it the groups plumbing goes to. The rest of the address as
        // two words: ff02::X is zeros then X; a solicited-node group is ff02::1:ffXX:XXXX.
        let (high, low) = words(dst);
        let group = low & 0xffff_ffff_ff00_0000;
        dst[1] == 0x02
            && (mld
                || (high == 0xff02_0000_0000_0000
                    && (matches!(low, 1 | 2 | 0x16) || group == 0x0000_0001_ff00_0000)))
    } else {
        is_link_local(dst)
    };
    let (src_high, src_low) = words(src);
    let link_src = is_link_local(src) || (src_high == 0 && src_low == 0);
    if link_scope_dst && link_src {
        Parsed::Infrastructure
    } else if neighbour && (link_scope_dst || dst[0] != 0xff) {
        Parsed::OwnInfrastructure
    } else {
        Parsed::Ip
    }
}

/// `fe80::/10`.
#[inline(always)]
fn is_link_local(addr: &[u8; 16]) -> bool {
    addr[0] == 0xfe && addr[1] & 0xc0 == 0x80
}

/// An address as its two big-endian 64-bit halves.
#[inline(always)]
fn words(addr: &[u8; 16]) -> (u64, u64) {
    // SAFETY: two unaligned 8-byte reads inside the 16-byte array.
    unsafe {
        let p = addr.as_ptr();
        (
            u64::from_be(core::ptr::read_unaligned(p.cast::<u64>())),
            u64::from_be(core::ptr::read_unaligned(p.add(8).cast::<u64>())),
        )
    }
}

#[inline(always)]
fn is_ipv4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff
}

/// The transport fields of a packet without (readable) ports, flags or quote.
#[inline(always)]
fn no_transport(out: &mut Flow) {
    out.sport = 0;
    out.dport = 0;
    out.tcp_flags = 0;
    out.quoted.valid = false;
    out.icmp_type_code = 0;
    out.fingerprint = 0;
}

/// (source, destination) port: TCP, UDP and SCTP all start with them.
#[inline(always)]
fn ports(ctx: &TcContext, l4_offset: usize) -> Result<(u16, u16), ()> {
    let ports: [u8; 4] = read(ctx, l4_offset)?;
    Ok((
        u16::from_be_bytes([ports[0], ports[1]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    ))
}

/// Fills in what the transport header says (`out`'s transport fields start cleared).
/// `ip_end`: where the IP packet ends in the frame (its length field, already checked against
/// the frame).
#[inline(always)]
fn transport(
    ctx: &TcContext,
    protocol: u8,
    l4_offset: usize,
    ip_end: usize,
    out: &mut Flow,
) -> Result<(), ()> {
    match protocol {
        IPPROTO_TCP => {
            // Ports, data offset and flags in one read: bytes 0-3, 12 and 13 of the header.
            let header: [u8; 14] = read(ctx, l4_offset)?;
            // A data offset inside the fixed header is no TCP header a receiver accepts: judging
            // it by its ports would pass what the endpoint's stack discards as malformed.
            if header[12] >> 4 < TCP_MIN_DATA_OFFSET {
                return Err(());
            }
            out.sport = u16::from_be_bytes([header[0], header[1]]);
            out.dport = u16::from_be_bytes([header[2], header[3]]);
            out.fingerprint = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            out.tcp_flags = header[13];
        }
        IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_UDPLITE => {
            (out.sport, out.dport) = ports(ctx, l4_offset)?;
            if protocol == IPPROTO_UDP {
                // A UDP length shorter than the header, or (unfragmented: a first fragment's
                // length is the whole datagram's) longer than the IP payload, is a lie about
                // where the datagram is; the receiving stack drops it. (UDP-Lite has a
                // checksum coverage there instead.)
                let len = usize::from(u16::from_be(read::<u16>(ctx, l4_offset + 4)?));
                if len < UDP_HDR_LEN
                    || (matches!(out.fragment, Fragment::No) && l4_offset + len > ip_end)
                {
                    return Err(());
                }
            }
            // A payload too short to hold one simply has none (0).
            let at = if protocol == IPPROTO_SCTP { 16 } else { 8 };
            out.fingerprint = read::<u32>(ctx, l4_offset + at).unwrap_or(0);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => icmp(ctx, protocol, l4_offset, out)?,
        _ => {}
    }
    Ok(())
}

/// ICMP: echo requests and replies are tracked by identifier (as ports, so the reply is the
/// request's reversed tuple); errors carry the packet they are about.
#[inline(always)]
fn icmp(ctx: &TcContext, protocol: u8, offset: usize, out: &mut Flow) -> Result<(), ()> {
    let header: [u8; 8] = read(ctx, offset)?;
    let id = u16::from_be_bytes([header[4], header[5]]);
    out.icmp_type_code = u16::from_be_bytes([header[0], header[1]]);
    let v6 = protocol == IPPROTO_ICMPV6;
    let (request, reply) = if v6 { (128, 129) } else { (8, 0) };
    let error = if v6 {
        matches!(header[0], 1..=4)
    } else {
        matches!(header[0], 3 | 11 | 12)
    };
    if header[0] == request {
        out.sport = id;
    } else if header[0] == reply {
        out.dport = id;
    } else if error {
        // A quote we cannot read makes the error unrelated, not malformed: policy decides.
        out.quoted.valid = if v6 {
            quoted_ipv6(ctx, offset + 8, &mut out.quoted)
        } else {
            quoted_ipv4(ctx, offset + 8, &mut out.quoted)
        };
    }
    Ok(())
}

#[inline(always)]
fn quoted_ports(ctx: &TcContext, protocol: u8, offset: usize) -> Result<(u16, u16), ()> {
    match protocol {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_UDPLITE => ports(ctx, offset),
        _ => Ok((0, 0)),
    }
}

/// Reads the IPv4 packet an ICMP error quotes into `out`; whether it could.
#[inline(always)]
fn quoted_ipv4(ctx: &TcContext, offset: usize, out: &mut Quoted) -> bool {
    let Ok(header) = read::<Ipv4Header>(ctx, offset) else {
        return false;
    };
    let header_len = usize::from(header.version_ihl & 0x0f) * 4;
    if header.version_ihl >> 4 != 4 || header_len < IPV4_MIN_HDR_LEN {
        return false;
    }
    let Ok((sport, dport)) = quoted_ports(ctx, header.protocol, offset + header_len) else {
        return false;
    };
    set_ipv4_mapped(&mut out.src, header.src);
    set_ipv4_mapped(&mut out.dst, header.dst);
    out.protocol = header.protocol;
    out.sport = sport;
    out.dport = dport;
    true
}

/// Reads the IPv6 packet an ICMPv6 error quotes into `out`; whether it could.
#[inline(always)]
fn quoted_ipv6(ctx: &TcContext, offset: usize, out: &mut Quoted) -> bool {
    let Ok(header) = read::<Ipv6Header>(ctx, offset) else {
        return false;
    };
    if header.version_class_flow[0] >> 4 != 6 {
        return false;
    }
    let Ok((sport, dport)) = quoted_ports(ctx, header.next_header, offset + IPV6_HDR_LEN) else {
        return false;
    };
    out.src = header.src;
    out.dst = header.dst;
    out.protocol = header.next_header;
    out.sport = sport;
    out.dport = dport;
    true
}
