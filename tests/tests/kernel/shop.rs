//! The small namespace several kernel tests run crafted packets in: `web` (10.42.0.20),
//! `client` (10.42.0.21) and `bad` (10.42.0.22) in namespace `shop`, and TCP segments to web.

use std::net::IpAddr;

use policy_agent::replay::Packet;

/// The three pods, as manifests.
pub const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx}]}
status: {podIP: 10.42.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.21}
---
apiVersion: v1
kind: Pod
metadata: {name: bad, namespace: shop, labels: {app: bad}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.22}
"#;

pub const WEB: &str = "10.42.0.20";
pub const CLIENT: &str = "10.42.0.21";
pub const BAD: &str = "10.42.0.22";

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// A TCP segment from `src` to web with these flags, and its frame.
pub fn tcp(src: &str, sport: u16, dport: u16, flags: u8) -> (Packet, Vec<u8>) {
    let packet = Packet {
        src: ip(src),
        dst: ip(WEB),
        protocol: 6,
        sport,
        dport,
    };
    let mut frame = packet.to_frame();
    // Ethernet 14 + IPv4 20: the TCP flags are at byte 13 of the TCP header.
    frame[14 + 20 + 13] = flags;
    (packet, frame)
}
