//! Crafted packets on a lab pod's real interface: frame builders with correct checksums
//! (Ethernet, IPv4 and IPv6 with fragments, TCP, UDP, ICMP and ICMPv6), `AF_PACKET` sockets that
//! send such frames out of a pod's `eth0` and capture what its `eth0` receives, and markers that
//! name the case a frame belongs to so a capture can count each case on its own.
//!
//! The sockets are made on a thread inside the pod's network namespace (see
//! [`Netns::run`](crate::lab::netns::Netns::run)): an `AF_PACKET` socket belongs to the
//! namespace it was created in and keeps working there from any thread. No scapy, no tcpdump:
//! only the kernel's packet sockets.

use std::{
    collections::BTreeMap,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Command,
};

use anyhow::{Context as _, bail};
use nix::libc;

use crate::lab::netns::Netns;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
const IPV6_FRAGMENT: u8 = 44;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ALL: u16 = 0x0003;

/// A MAC address.
pub type Mac = [u8; 6];

// ---------------------------------------------------------------------------------------------
// Markers

/// The marker of case `case`: `<PALX` five digits `>`, ASCII, so it survives in any payload.
pub fn marker(case: u16) -> Vec<u8> {
    format!("<PALX{case:05}>").into_bytes()
}

/// `len` bytes of case `case`'s marker repeated (any fragment of it holds a whole marker when
/// it is at least twice the marker's 11 bytes long).
pub fn filler(case: u16, len: usize) -> Vec<u8> {
    marker(case).into_iter().cycle().take(len).collect()
}

/// The cases whose markers appear in `data`, each once.
pub fn cases_in(data: &[u8]) -> std::collections::BTreeSet<u16> {
    let mut found = std::collections::BTreeSet::new();
    let mut i = 0;
    while i + 11 <= data.len() {
        if &data[i..i + 5] == b"<PALX" && data[i + 10] == b'>' {
            let digits = &data[i + 5..i + 10];
            if digits.iter().all(u8::is_ascii_digit) {
                let n = digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                if let Ok(case) = u16::try_from(n) {
                    found.insert(case);
                }
                i += 11;
                continue;
            }
        }
        i += 1;
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Builders

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo header of `src` → `dst` for a transport segment of `len` bytes.
fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend(s.octets());
            out.extend(d.octets());
            out.extend([0, protocol]);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.extend(v6(src).octets());
            out.extend(v6(dst).octets());
            out.extend((len as u32).to_be_bytes());
            out.extend([0, 0, 0, protocol]);
        }
    }
    out
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// Fills the checksum at `at` of `segment` (a transport segment, or an ICMPv6 message) with
/// the pseudo header of `src` → `dst`.
fn fill_transport_checksum(src: IpAddr, dst: IpAddr, protocol: u8, segment: &mut [u8], at: usize) {
    segment[at] = 0;
    segment[at + 1] = 0;
    let mut data = pseudo_header(src, dst, protocol, segment.len());
    data.extend_from_slice(segment);
    let mut sum = checksum(&data);
    if protocol == IPPROTO_UDP && sum == 0 {
        sum = 0xffff;
    }
    segment[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// A TCP segment (20-byte header, no options) with its checksum.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + payload.len());
    out.extend(sport.to_be_bytes());
    out.extend(dport.to_be_bytes());
    out.extend(seq.to_be_bytes());
    out.extend(ack.to_be_bytes());
    out.extend([5 << 4, flags]);
    out.extend(window.to_be_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend_from_slice(payload);
    fill_transport_checksum(src, dst, IPPROTO_TCP, &mut out, 16);
    out
}

/// A UDP datagram with its checksum.
pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend(sport.to_be_bytes());
    out.extend(dport.to_be_bytes());
    out.extend(((8 + payload.len()) as u16).to_be_bytes());
    out.extend([0, 0]);
    out.extend_from_slice(payload);
    fill_transport_checksum(src, dst, IPPROTO_UDP, &mut out, 6);
    out
}

/// An ICMP (IPv4 addresses) or ICMPv6 (IPv6 addresses) message with its checksum: type, code,
/// the 4 bytes after the checksum, then `body`.
pub fn icmp(src: IpAddr, dst: IpAddr, kind: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend([kind, code, 0, 0]);
    out.extend(rest);
    out.extend_from_slice(body);
    if src.is_ipv4() {
        let sum = checksum(&out);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
    } else {
        fill_transport_checksum(src, dst, IPPROTO_ICMPV6, &mut out, 2);
    }
    out
}

/// The ICMP protocol number of `ip`'s family.
pub fn icmp_protocol(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        IPPROTO_ICMP
    } else {
        IPPROTO_ICMPV6
    }
}

/// An IPv4 header and `payload`. `fragment`: the flags and offset field (`0x4000`: don't
/// fragment; `0x2000 | offset/8`: more fragments).
pub fn ipv4_with(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    id: u16,
    fragment: u16,
    payload: &[u8],
) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend([0x45, 0]);
    out.extend((total as u16).to_be_bytes());
    out.extend(id.to_be_bytes());
    out.extend(fragment.to_be_bytes());
    out.extend([ttl, protocol, 0, 0]);
    out.extend(src.octets());
    out.extend(dst.octets());
    let sum = checksum(&out);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An IPv6 header (next header `next`) and `payload`.
pub fn ipv6_with(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + payload.len());
    out.extend([0x60, 0, 0, 0]);
    out.extend((payload.len() as u16).to_be_bytes());
    out.extend([next, hop_limit]);
    out.extend(src.octets());
    out.extend(dst.octets());
    out.extend_from_slice(payload);
    out
}

/// An unfragmented IP packet of `src`'s family (IPv4: don't fragment, identification `id`).
pub fn ip(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    hop_limit: u8,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4_with(s, d, protocol, hop_limit, id, 0x4000, payload),
        _ => ipv6_with(v6(src), v6(dst), protocol, hop_limit, payload),
    }
}

/// `payload` (a whole transport segment or ICMP message) as two IP fragments: the first holds
/// `first_len` bytes of it (rounded down to a multiple of 8), the second the rest.
pub fn fragments(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    hop_limit: u8,
    id: u16,
    payload: &[u8],
    first_len: usize,
) -> Vec<Vec<u8>> {
    let split = (first_len / 8 * 8).clamp(8, payload.len().saturating_sub(1) / 8 * 8);
    let (first, second) = payload.split_at(split);
    let offset_units = (split / 8) as u16;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => vec![
            ipv4_with(s, d, protocol, hop_limit, id, 0x2000, first),
            ipv4_with(s, d, protocol, hop_limit, id, offset_units, second),
        ],
        _ => {
            let header = |offset_units: u16, more: bool| {
                let mut h = vec![protocol, 0];
                h.extend((offset_units << 3 | u16::from(more)).to_be_bytes());
                h.extend(u32::from(id).to_be_bytes());
                h
            };
            let mut one = header(0, true);
            one.extend_from_slice(first);
            let mut two = header(offset_units, false);
            two.extend_from_slice(second);
            vec![
                ipv6_with(v6(src), v6(dst), IPV6_FRAGMENT, hop_limit, &one),
                ipv6_with(v6(src), v6(dst), IPV6_FRAGMENT, hop_limit, &two),
            ]
        }
    }
}

/// An Ethernet frame around an IP packet (the ethertype from its version).
pub fn ethernet(dst: Mac, src: Mac, packet: &[u8]) -> Vec<u8> {
    let ethertype = if packet.first().is_some_and(|b| b >> 4 == 6) {
        ETH_P_IPV6
    } else {
        ETH_P_IP
    };
    let mut out = Vec::with_capacity(14 + packet.len());
    out.extend(dst);
    out.extend(src);
    out.extend(ethertype.to_be_bytes());
    out.extend_from_slice(packet);
    out
}

/// An ICMP error of `kind`/`code` (`rest`: the 4 bytes after the checksum: MTU, pointer) from
/// `src` to `dst` quoting `quoted` (an IP packet), unfragmented, IPv4 TTL / IPv6 hop limit 64.
pub fn icmp_error(
    src: IpAddr,
    dst: IpAddr,
    kind: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let message = icmp(src, dst, kind, code, rest, quoted);
    ip(src, dst, icmp_protocol(src), 64, 0x5a17, &message)
}

// ---------------------------------------------------------------------------------------------
// Reading frames

/// A frame's IP addresses, protocol and ports (0 for protocols without them), when it is an
/// unfragmented (or first-fragment) IPv4 or IPv6 packet without IPv6 extension headers.
pub fn tuple(frame: &[u8]) -> Option<(IpAddr, IpAddr, u8, u16, u16)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (src, dst, protocol, l4) = match ethertype {
        ETH_P_IP => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let offset = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
            if offset != 0 {
                return None;
            }
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                IpAddr::from(src),
                IpAddr::from(dst),
                *ip.get(9)?,
                ip.get(ihl..)?,
            )
        }
        ETH_P_IPV6 => {
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                IpAddr::from(src),
                IpAddr::from(dst),
                *ip.get(6)?,
                ip.get(40..)?,
            )
        }
        _ => return None,
    };
    let (sport, dport) = if matches!(protocol, IPPROTO_TCP | IPPROTO_UDP) {
        (
            u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
            u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
        )
    } else {
        (0, 0)
    };
    Some((src, dst, protocol, sport, dport))
}

// ---------------------------------------------------------------------------------------------
// Sockets

/// One received frame: whether the interface sent it (`PACKET_OUTGOING`) or received it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub outgoing: bool,
    pub data: Vec<u8>,
}

/// A pod's interface in a running lab: its namespace, index and MAC, the MAC of its peer (the
/// host-side veth in the node namespace, where every frame the pod sends goes), and a socket
/// that sends raw frames out of it.
pub struct PodInterface {
    pub netns: Netns,
    pub name: String,
    pub ifindex: i32,
    pub mac: Mac,
    pub peer_mac: Mac,
    sender: OwnedFd,
}

impl PodInterface {
    /// The interface `name` of pod namespace `pod_netns`, whose peer is `peer` in
    /// `node_netns`.
    pub fn open(pod_netns: &str, name: &str, node_netns: &str, peer: &str) -> anyhow::Result<Self> {
        let netns = Netns::open(pod_netns)?;
        let mac = link_mac(pod_netns, name)?;
        let peer_mac = link_mac(node_netns, peer)?;
        let ifname = name.to_owned();
        let (ifindex, sender) = netns.run(move || -> anyhow::Result<(i32, OwnedFd)> {
            let ifindex = nix::net::if_::if_nametoindex(ifname.as_str())
                .with_context(|| format!("no interface {ifname}"))?;
            Ok((i32::try_from(ifindex)?, packet_socket(0)?))
        })??;
        Ok(Self {
            netns,
            name: name.to_owned(),
            ifindex,
            mac,
            peer_mac,
            sender,
        })
    }

    /// `packet` (an IP packet) in an Ethernet frame from this interface to its peer.
    pub fn frame(&self, packet: &[u8]) -> Vec<u8> {
        ethernet(self.peer_mac, self.mac, packet)
    }

    /// Sends `packet` (an IP packet) out of the interface, to the node.
    pub fn send(&self, packet: &[u8]) -> anyhow::Result<()> {
        let frame = self.frame(packet);
        let mut address = link_address(self.ifindex, 0);
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&self.peer_mac);
        // SAFETY: the frame and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.sender.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const address).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("sending a {}-byte frame on {}", frame.len(), self.name));
        }
        anyhow::ensure!(
            sent as usize == frame.len(),
            "sent {sent} of {} bytes on {}",
            frame.len(),
            self.name
        );
        Ok(())
    }

    /// Sends every packet of `packets`.
    pub fn send_all(&self, packets: &[Vec<u8>]) -> anyhow::Result<()> {
        packets.iter().try_for_each(|p| self.send(p))
    }

    /// Starts capturing every frame the interface sends or receives.
    pub fn capture(&self) -> anyhow::Result<Capture> {
        let ifindex = self.ifindex;
        let fd = self.netns.run(move || -> anyhow::Result<OwnedFd> {
            let fd = packet_socket(0)?;
            let size: libc::c_int = 16 << 20;
            // SAFETY: an int option of the right size. SO_RCVBUFFORCE as root (the lab runs as
            // root); a failure leaves the default size, which the drop count would reveal.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            let address = link_address(ifindex, ETH_P_ALL);
            // SAFETY: a valid sockaddr_ll of the given length.
            let bound = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const address).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if bound < 0 {
                return Err(io::Error::last_os_error()).context("binding a capture socket");
            }
            Ok(fd)
        })??;
        let capture = Capture {
            fd,
            name: self.name.clone(),
        };
        // Whatever was queued before the bind took effect is not ours to count.
        capture.drain()?;
        Ok(capture)
    }
}

/// A capture on one interface (see [`PodInterface::capture`]).
pub struct Capture {
    fd: OwnedFd,
    name: String,
}

/// At most this many frames are read per drain: a bound on the loop (the tests send far fewer).
const MAX_FRAMES_PER_DRAIN: usize = 200_000;

impl Capture {
    /// Every frame queued so far; fails when the kernel dropped some (the receive buffer
    /// overflowed): a count from a lossy capture would prove nothing.
    pub fn drain(&self) -> anyhow::Result<Vec<Frame>> {
        let mut frames = Vec::new();
        let mut buffer = vec![0u8; 65_536];
        for _ in 0..MAX_FRAMES_PER_DRAIN {
            // SAFETY: zeroed sockaddr_ll is valid; the kernel writes at most `len` bytes.
            let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: the buffer and address are valid for the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut address).cast(),
                    &raw mut len,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                return Err(error).with_context(|| format!("capturing on {}", self.name));
            }
            frames.push(Frame {
                outgoing: address.sll_pkttype == libc::PACKET_OUTGOING,
                data: buffer[..n as usize].to_vec(),
            });
        }
        let dropped = self.dropped()?;
        if dropped > 0 {
            bail!(
                "the capture on {} lost {dropped} frames (receive buffer overflow)",
                self.name
            );
        }
        Ok(frames)
    }

    /// Frames the kernel dropped for this socket since the last call.
    fn dropped(&self) -> anyhow::Result<u32> {
        // SAFETY: zeroed tpacket_stats is valid; the kernel fills at most `len` bytes.
        let mut stats: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: as above.
        let got = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut len,
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error()).context("reading PACKET_STATISTICS");
        }
        Ok(stats.tp_drops)
    }
}

/// How many frames of `frames` the interface received (not sent) carry each case's marker.
pub fn received_by_case(frames: &[Frame]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for frame in frames.iter().filter(|f| !f.outgoing) {
        for case in cases_in(&frame.data) {
            *counts.entry(case).or_insert(0) += 1;
        }
    }
    counts
}

/// An `AF_PACKET`/`SOCK_RAW` socket of the calling thread's namespace; `protocol` 0 receives
/// nothing until bound with a protocol.
fn packet_socket(protocol: u16) -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(protocol.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("creating an AF_PACKET socket");
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn link_address(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = ifindex;
    address
}

/// The MAC address of `link` in namespace `netns` (`ip -j -n NETNS link show dev LINK`).
pub fn link_mac(netns: &str, link: &str) -> anyhow::Result<Mac> {
    let output = Command::new("ip")
        .args(["-j", "-n", netns, "link", "show", "dev", link])
        .output()
        .context("running ip link show")?;
    anyhow::ensure!(
        output.status.success(),
        "ip -n {netns} link show dev {link}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let links: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let text = links
        .get(0)
        .and_then(|l| l.get("address"))
        .and_then(serde_json::Value::as_str)
        .with_context(|| format!("no address for {link} in {netns}"))?;
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC address {text}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC address {text} is not 6 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_once_per_frame_and_across_fragments() {
        let data = [b"xx".as_slice(), &filler(42, 40), &marker(7), b"<PALX1234>"].concat();
        let found: Vec<u16> = cases_in(&data).into_iter().collect();
        assert_eq!(found, [7, 42]);
        // A 24-byte piece of a filler holds at least one whole marker.
        let long = filler(3, 200);
        for start in 0..20 {
            assert!(cases_in(&long[start..start + 24]).contains(&3));
        }
    }

    #[test]
    fn checksums_verify() {
        let src: IpAddr = "10.42.0.10".parse().expect("address");
        let dst: IpAddr = "10.42.0.11".parse().expect("address");
        let packet = ip(
            src,
            dst,
            IPPROTO_UDP,
            64,
            1,
            &udp(src, 1000, dst, 53, b"hello"),
        );
        assert_eq!(checksum(&packet[..20]), 0, "IPv4 header");
        let segment = &packet[20..];
        let mut data = pseudo_header(src, dst, IPPROTO_UDP, segment.len());
        data.extend_from_slice(segment);
        assert_eq!(checksum(&data), 0, "UDP");
        let s6: IpAddr = "fd00:42::10".parse().expect("address");
        let d6: IpAddr = "fd00:42::11".parse().expect("address");
        let message = icmp(s6, d6, 128, 0, [0; 4], b"ping");
        let mut data = pseudo_header(s6, d6, IPPROTO_ICMPV6, message.len());
        data.extend_from_slice(&message);
        assert_eq!(checksum(&data), 0, "ICMPv6");
        let frame = ethernet(
            [2; 6],
            [4; 6],
            &ip(
                s6,
                d6,
                IPPROTO_TCP,
                64,
                0,
                &tcp(s6, 1, d6, 2, 3, 4, TCP_ACK, 5, b"x"),
            ),
        );
        assert_eq!(tuple(&frame), Some((s6, d6, IPPROTO_TCP, 1, 2)));
    }

    #[test]
    fn fragments_split_on_eight_bytes() {
        let src: IpAddr = "10.42.0.10".parse().expect("address");
        let dst: IpAddr = "10.42.0.11".parse().expect("address");
        let payload = filler(1, 300);
        let parts = fragments(src, dst, IPPROTO_ICMP, 64, 9, &payload, 130);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len() - 20, 128);
        assert_eq!(u16::from_be_bytes([parts[1][6], parts[1][7]]), 16);
        let s6: IpAddr = "fd00:42::10".parse().expect("address");
        let d6: IpAddr = "fd00:42::11".parse().expect("address");
        let parts = fragments(s6, d6, IPPROTO_ICMPV6, 64, 9, &payload, 130);
        assert_eq!(parts[0][6], IPV6_FRAGMENT);
        assert_eq!(
            parts[1][40 + 3] & 1,
            0,
            "the last fragment has no more-fragments bit"
        );
    }
}
