//! One policy set, three renderings: NetworkPolicies for Palisade, an iptables-restore file
//! shaped like Calico's iptables dataplane, and an nftables file with sets and verdict maps
//! like kube-network-policies.
//!
//! The set is N (peer address, port) entries that admit ingress to the server, TCP and UDP;
//! the one that admits the real client is *last*, so a linear walk visits every other first.

use std::{fmt::Write as _, net::Ipv4Addr};

use serde_json::{Value, json};

/// The server port every measurement targets.
pub const SERVER_PORT: u16 = 8080;

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub peer: Ipv4Addr,
    pub port: u16,
}

/// `n` entries; entries before the last name addresses no pod has (10.201.0.0/16 up).
pub fn entries(n: usize, client: Ipv4Addr) -> Vec<Entry> {
    let mut out: Vec<Entry> = (0..n.saturating_sub(1))
        .map(|i| {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            Entry {
                peer: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 201, 0, 0)).saturating_add(i)),
                port: u16::try_from(10_000 + i % 50_000).unwrap_or(u16::MAX),
            }
        })
        .collect();
    out.push(Entry {
        peer: client,
        port: SERVER_PORT,
    });
    out
}

/// One NetworkPolicy per entry, each selecting the server.
pub fn policies(entries: &[Entry]) -> Vec<Value> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": format!("bench-{i}"), "namespace": "default"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "server"}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [{"ipBlock": {"cidr": format!("{}/32", e.peer)}}],
                        "ports": [
                            {"protocol": "TCP", "port": e.port},
                            {"protocol": "UDP", "port": e.port}
                        ]
                    }]
                }
            })
        })
        .collect()
}

/// Calico's iptables shape, reduced to what decides here: FORWARD drops INVALID and accepts
/// RELATED/ESTABLISHED first, then dispatches by interface to a per-endpoint chain holding
/// the endpoint's rules one after another, ending in a drop. `to_if` is the server's
/// host-side interface; the client's own (from-workload) chain is empty (not isolated).
pub fn iptables(entries: &[Entry], to_if: &str, from_if: &str) -> String {
    let mut s =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    let tw = format!("cali-tw-{to_if}");
    let fw = format!("cali-fw-{from_if}");
    for chain in [
        "cali-FORWARD",
        "cali-to-wl-dispatch",
        "cali-from-wl-dispatch",
        &tw,
        &fw,
    ] {
        let _ = writeln!(s, ":{chain} - [0:0]");
    }
    s.push_str("-A FORWARD -j cali-FORWARD\n");
    s.push_str("-A cali-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    s.push_str("-A cali-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    s.push_str("-A cali-FORWARD -i plh+ -j cali-from-wl-dispatch\n");
    s.push_str("-A cali-FORWARD -o plh+ -j cali-to-wl-dispatch\n");
    let _ = writeln!(s, "-A cali-from-wl-dispatch -i {from_if} -g {fw}");
    let _ = writeln!(s, "-A cali-to-wl-dispatch -o {to_if} -g {tw}");
    let _ = writeln!(s, "-A {fw} -j RETURN");
    for e in entries {
        for proto in ["tcp", "udp"] {
            let _ = writeln!(
                s,
                "-A {tw} -p {proto} -s {}/32 -m {proto} --dport {} -j ACCEPT",
                e.peer, e.port
            );
        }
    }
    let _ = writeln!(s, "-A {tw} -j DROP");
    s.push_str("COMMIT\n");
    s
}

/// kube-network-policies' nftables shape: established traffic first, then a verdict map from
/// the output interface to the endpoint's chain, whose allowed (peer, protocol, port) tuples
/// are one set lookup.
pub fn nftables(entries: &[Entry], to_if: &str) -> String {
    let mut elements = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            elements.push_str(",\n");
        }
        let _ = write!(
            elements,
            "      {} . tcp . {}, {} . udp . {}",
            e.peer, e.port, e.peer, e.port
        );
    }
    format!(
        "table inet palisade-bench {{
  set allow-{to_if} {{
    type ipv4_addr . inet_proto . inet_service
    elements = {{
{elements}
    }}
  }}
  map to-endpoint {{
    type ifname : verdict
    elements = {{ \"{to_if}\" : jump ep-{to_if} }}
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state invalid drop
    ct state established,related accept
    oifname vmap @to-endpoint
  }}
  chain ep-{to_if} {{
    ip saddr . meta l4proto . th dport @allow-{to_if} accept
    drop
  }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_entry_is_last_in_every_rendering() {
        let client = Ipv4Addr::new(10, 42, 0, 10);
        let e = entries(3, client);
        assert_eq!(e.len(), 3);
        let ipt = iptables(&e, "plh1", "plh0");
        let last_accept = ipt
            .lines()
            .rfind(|l| l.contains("ACCEPT") && l.contains("cali-tw"));
        assert_eq!(
            last_accept,
            Some("-A cali-tw-plh1 -p udp -s 10.42.0.10/32 -m udp --dport 8080 -j ACCEPT")
        );
        assert!(nftables(&e, "plh1").contains("10.42.0.10 . tcp . 8080"));
        let p = policies(&e);
        assert_eq!(
            p[2]["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"],
            "10.42.0.10/32"
        );
    }
}
