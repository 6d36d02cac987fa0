//! The rules kube-proxy writes for Services, in its two Linux modes, following kubernetes'
//! `pkg/proxy/iptables/proxier.go` and `pkg/proxy/nftables/proxier.go` (chain names, hashes,
//! match order, marks) for what the lab has: ClusterIP and NodePort Services with
//! `internalTrafficPolicy`/`externalTrafficPolicy` Cluster, no session affinity, no
//! `--cluster-cidr` (so no masquerade of off-cluster traffic to ClusterIPs), no load balancers
//! or external IPs, no health-check node ports. tests/README.md lists what is left out.

use std::{
    fmt::Write as _,
    io::Write as _,
    net::IpAddr,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use super::super::scenario::{Family, KubeProxyMode, Protocol};

/// kube-proxy's default `--iptables-masquerade-bit` 14.
const MASQ_MARK: u32 = 1 << 14;

/// One Service port of one family, with the ready endpoints kube-proxy would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    pub port_name: String,
    pub protocol: Protocol,
    pub family: Family,
    pub cluster_ip: IpAddr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Sorted, without repeats.
    pub endpoints: Vec<(IpAddr, u16)>,
}

impl ServicePort {
    /// `ServicePortName.String()`: `ns/name:port`, or `ns/name` for an unnamed port.
    fn name_string(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.service)
        } else {
            format!("{}/{}:{}", self.namespace, self.service, self.port_name)
        }
    }

    fn proto(&self) -> &'static str {
        match self.protocol {
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
            _ => "tcp",
        }
    }
}

/// `net.JoinHostPort`.
fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// RFC 4648 base32 (Go's `base32.StdEncoding`), without padding (only prefixes are used).
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for byte in data {
        buffer = (buffer << 8) | u64::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                ALPHABET[usize::try_from((buffer >> bits) & 31).unwrap_or(0)],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::try_from((buffer << (5 - bits)) & 31).unwrap_or(0)],
        ));
    }
    out
}

fn sha256_base32(text: &str) -> String {
    base32(&Sha256::digest(text.as_bytes()))
}

/// The rules of both families, as the text handed to `iptables-restore`/`ip6tables-restore`
/// or `nft -f`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub v4: String,
    pub v6: String,
}

pub fn render(mode: KubeProxyMode, ports: &[ServicePort]) -> Rules {
    let of = |family: Family| -> Vec<&ServicePort> {
        let mut v: Vec<&ServicePort> = ports.iter().filter(|p| p.family == family).collect();
        v.sort_by_key(|p| (p.name_string(), p.proto()));
        v
    };
    match mode {
        KubeProxyMode::Iptables => Rules {
            v4: iptables(Family::V4, &of(Family::V4)),
            v6: iptables(Family::V6, &of(Family::V6)),
        },
        KubeProxyMode::Nftables => Rules {
            v4: nftables(Family::V4, &of(Family::V4)),
            v6: nftables(Family::V6, &of(Family::V6)),
        },
    }
}

/// Writes the rules in the network namespace `netns`: one `iptables-restore` (it replaces
/// the filter and nat tables it names in one commit) or one `nft -f` (one transaction) per
/// family.
pub fn apply(netns: &str, mode: KubeProxyMode, rules: &Rules) -> anyhow::Result<()> {
    let runs: [(&str, &[&str], &str); 2] = match mode {
        KubeProxyMode::Iptables => [
            ("iptables-restore", &["-w"], &rules.v4),
            ("ip6tables-restore", &["-w"], &rules.v6),
        ],
        KubeProxyMode::Nftables => [
            ("nft", &["-f", "-"], &rules.v4),
            ("nft", &["-f", "-"], &rules.v6),
        ],
    };
    for (program, args, input) in runs {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("running {program} (install iptables and nftables: cargo xtask setup)")
            })?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "{program} failed ({}): {}\ninput:\n{input}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// iptables mode

/// `portProtoHash`: the first 16 base32 characters of sha256(servicePortName + protocol).
fn port_proto_hash(port: &ServicePort) -> String {
    sha256_base32(&format!("{}{}", port.name_string(), port.proto()))[..16].to_owned()
}

fn svc_chain(port: &ServicePort) -> String {
    format!("KUBE-SVC-{}", port_proto_hash(port))
}

fn ext_chain(port: &ServicePort) -> String {
    format!("KUBE-EXT-{}", port_proto_hash(port))
}

/// `servicePortEndpointChainName`: sha256(servicePortName + protocol + "ip:port").
fn sep_chain(port: &ServicePort, endpoint: (IpAddr, u16)) -> String {
    let hash = sha256_base32(&format!(
        "{}{}{}",
        port.name_string(),
        port.proto(),
        host_port(endpoint.0, endpoint.1)
    ));
    format!("KUBE-SEP-{}", &hash[..16])
}

fn cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

fn iptables(family: Family, ports: &[&ServicePort]) -> String {
    let reject = match family {
        Family::V4 => "REJECT --reject-with icmp-port-unreachable",
        Family::V6 => "REJECT --reject-with icmp6-port-unreachable",
    };
    let mut filter = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n\
         :KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n\
         -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n\
         -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    let _ = write!(
        filter,
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n\
         -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK:#x}/{MASQ_MARK:#x} -j ACCEPT\n\
         -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    );
    let mut nat_chains = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n",
    );
    let mut nat = String::new();
    let _ = write!(
        nat,
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK:#x}\n\
         -A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK:#x}/{MASQ_MARK:#x} -j RETURN\n\
         -A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK:#x}\n\
         -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n"
    );
    let mut services = String::new();
    let mut nodeports = String::new();
    let mut per_service = String::new();
    for port in ports {
        let name = port.name_string();
        let proto = port.proto();
        let (ip, number) = (cidr(port.cluster_ip), port.port);
        if port.endpoints.is_empty() {
            let _ = writeln!(
                filter,
                "-A KUBE-SERVICES -m comment --comment \"{name} has no endpoints\" -m {proto} -p {proto} -d {ip} --dport {number} -j {reject}"
            );
            if let Some(node_port) = port.node_port {
                let _ = writeln!(
                    filter,
                    "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"{name} has no endpoints\" -m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {node_port} -j {reject}"
                );
            }
            continue;
        }
        let svc = svc_chain(port);
        let _ = writeln!(nat_chains, ":{svc} - [0:0]");
        let _ = writeln!(
            services,
            "-A KUBE-SERVICES -m comment --comment \"{name} cluster IP\" -m {proto} -p {proto} -d {ip} --dport {number} -j {svc}"
        );
        if let Some(node_port) = port.node_port {
            let ext = ext_chain(port);
            let _ = writeln!(nat_chains, ":{ext} - [0:0]");
            let _ = writeln!(
                nodeports,
                "-A KUBE-NODEPORTS -m comment --comment \"{name}\" -m {proto} -p {proto} --dport {node_port} -j {ext}"
            );
            let _ = writeln!(
                per_service,
                "-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ\n-A {ext} -j {svc}"
            );
        }
        let n = port.endpoints.len();
        for (i, endpoint) in port.endpoints.iter().enumerate() {
            let sep = sep_chain(port, *endpoint);
            let target = host_port(endpoint.0, endpoint.1);
            let statistic = if i + 1 < n {
                #[expect(clippy::cast_precision_loss, reason = "a handful of endpoints")]
                let probability = 1.0 / (n - i) as f64;
                format!(" -m statistic --mode random --probability {probability:.10}")
            } else {
                String::new()
            };
            let _ = writeln!(
                per_service,
                "-A {svc} -m comment --comment \"{name} -> {target}\"{statistic} -j {sep}"
            );
            let _ = writeln!(nat_chains, ":{sep} - [0:0]");
            let _ = writeln!(
                per_service,
                "-A {sep} -m comment --comment \"{name}\" -s {} -j KUBE-MARK-MASQ\n\
                 -A {sep} -m comment --comment \"{name}\" -m {proto} -p {proto} -j DNAT --to-destination {target}",
                cidr(endpoint.0)
            );
        }
    }
    filter.push_str("COMMIT\n");
    let _ = writeln!(
        services,
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    );
    format!("{filter}{nat_chains}{nat}{nodeports}{services}{per_service}COMMIT\n")
}

// ---------------------------------------------------------------------------------------------
// nftables mode

/// `hashAndTruncate`: the first 8 base32 characters of sha256(name), `-`, name.
fn hash_and_truncate(name: &str) -> String {
    let mut out = format!("{}-{name}", &sha256_base32(name)[..8]);
    // knftables.NameLengthMax (256) - chainNamePrefixLengthMax (16).
    if out.len() > 240 {
        out.truncate(237);
        out.push_str("...");
    }
    out
}

fn nft_service_base(port: &ServicePort) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        port.namespace,
        port.service,
        port.proto(),
        port.port_name
    ))
}

fn nft_endpoint_chain(port: &ServicePort, endpoint: (IpAddr, u16)) -> String {
    let ip = endpoint.0.to_string().replace(':', ".");
    format!(
        "endpoint-{}",
        hash_and_truncate(&format!(
            "{}/{}/{}/{}__{ip}/{}",
            port.namespace,
            port.service,
            port.proto(),
            port.port_name,
            endpoint.1
        ))
    )
}

fn nftables(family: Family, ports: &[&ServicePort]) -> String {
    let (nft_family, ip_x, addr_type, no_localhost) = match family {
        Family::V4 => ("ip", "ip", "ipv4_addr", "ip daddr != 127.0.0.0/8"),
        Family::V6 => ("ip6", "ip6", "ipv6_addr", "ip6 daddr != ::1"),
    };
    let table = format!("{nft_family} kube-proxy");
    let mark = format!("{MASQ_MARK:#08x}");
    let mut chains = String::new();
    let mut rules = String::new();
    let mut elements = String::new();
    // The table is replaced as a whole, in the same transaction (kube-proxy flushes its
    // chains and maps instead; the lab owns the namespace, so the result is the same).
    let _ = writeln!(chains, "add table {table}\ndelete table {table}");
    let _ = writeln!(
        chains,
        "add table {table} {{ comment \"rules for kube-proxy\" ; }}"
    );
    // kube-proxy's priorities `dstnat-10`, `dstnat` and `srcnat`, as numbers: this nft
    // (1.0.6) accepts the names only on the hooks they were defined for (knftables writes
    // numbers for older nft too).
    for (name, kind, hook, priority) in [
        ("filter-prerouting", "filter", "prerouting", "-110"),
        ("filter-input", "filter", "input", "-110"),
        ("filter-forward", "filter", "forward", "-110"),
        ("filter-output", "filter", "output", "-110"),
        ("nat-prerouting", "nat", "prerouting", "-100"),
        ("nat-output", "nat", "output", "-100"),
        ("nat-postrouting", "nat", "postrouting", "100"),
    ] {
        let _ = writeln!(
            chains,
            "add chain {table} {name} {{ type {kind} hook {hook} priority {priority} ; }}"
        );
    }
    for name in [
        "endpoints-check",
        "firewall-check",
        "services",
        "masquerading",
        "mark-for-masquerade",
    ] {
        let _ = writeln!(chains, "add chain {table} {name}");
    }
    let _ = writeln!(
        chains,
        "add chain {table} reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"
    );
    for (chain, rule) in [
        ("filter-input", "ct state new jump endpoints-check"),
        ("filter-forward", "ct state new jump endpoints-check"),
        ("filter-output", "ct state new jump endpoints-check"),
        ("filter-prerouting", "ct state new jump firewall-check"),
        ("filter-output", "ct state new jump firewall-check"),
        ("nat-output", "jump services"),
        ("nat-prerouting", "jump services"),
        ("nat-postrouting", "jump masquerading"),
    ] {
        let _ = writeln!(rules, "add rule {table} {chain} {rule}");
    }
    let _ = writeln!(
        rules,
        "add rule {table} mark-for-masquerade mark set mark or {mark}\n\
         add rule {table} masquerading mark and {mark} == 0 return\n\
         add rule {table} masquerading mark set mark xor {mark}\n\
         add rule {table} masquerading masquerade fully-random"
    );
    for (name, key, comment) in [
        (
            "no-endpoint-services",
            format!("{addr_type} . inet_proto . inet_service"),
            "vmap to drop or reject packets to services with no endpoints",
        ),
        (
            "no-endpoint-nodeports",
            "inet_proto . inet_service".to_owned(),
            "vmap to drop or reject packets to service nodeports with no endpoints",
        ),
        (
            "firewall-ips",
            format!("{addr_type} . inet_proto . inet_service"),
            "destinations that are subject to LoadBalancerSourceRanges",
        ),
        (
            "service-ips",
            format!("{addr_type} . inet_proto . inet_service"),
            "ClusterIP, ExternalIP and LoadBalancer IP traffic",
        ),
        (
            "service-nodeports",
            "inet_proto . inet_service".to_owned(),
            "NodePort traffic",
        ),
    ] {
        let _ = writeln!(
            chains,
            "add map {table} {name} {{ type {key} : verdict ; comment \"{comment}\" ; }}"
        );
    }
    let _ = writeln!(
        rules,
        "add rule {table} reject-chain reject\n\
         add rule {table} endpoints-check {ip_x} daddr . meta l4proto . th dport vmap @no-endpoint-services\n\
         add rule {table} endpoints-check fib daddr type local {no_localhost} meta l4proto . th dport vmap @no-endpoint-nodeports\n\
         add rule {table} firewall-check {ip_x} daddr . meta l4proto . th dport vmap @firewall-ips\n\
         add rule {table} services {ip_x} daddr . meta l4proto . th dport vmap @service-ips\n\
         add rule {table} services fib daddr type local {no_localhost} meta l4proto . th dport vmap @service-nodeports"
    );
    for port in ports {
        let name = port.name_string();
        let proto = port.proto();
        let base = nft_service_base(port);
        let service_chain = format!("service-{base}");
        let external_chain = format!("external-{base}");
        if port.endpoints.is_empty() {
            let _ = writeln!(
                elements,
                "add element {table} no-endpoint-services {{ {} . {proto} . {} comment \"{name}\" : goto reject-chain }}",
                port.cluster_ip, port.port
            );
            if let Some(node_port) = port.node_port {
                let _ = writeln!(
                    elements,
                    "add element {table} no-endpoint-nodeports {{ {proto} . {node_port} comment \"{name}\" : goto reject-chain }}"
                );
            }
            continue;
        }
        let _ = writeln!(chains, "add chain {table} {service_chain}");
        let _ = writeln!(
            elements,
            "add element {table} service-ips {{ {} . {proto} . {} : goto {service_chain} }}",
            port.cluster_ip, port.port
        );
        if let Some(node_port) = port.node_port {
            let _ = writeln!(chains, "add chain {table} {external_chain}");
            let _ = writeln!(
                elements,
                "add element {table} service-nodeports {{ {proto} . {node_port} : goto {external_chain} }}"
            );
            let _ = writeln!(
                rules,
                "add rule {table} {external_chain} jump mark-for-masquerade\n\
                 add rule {table} {external_chain} goto {service_chain}"
            );
        }
        let mut vmap = Vec::new();
        for (i, endpoint) in port.endpoints.iter().enumerate() {
            let chain = nft_endpoint_chain(port, *endpoint);
            let _ = writeln!(chains, "add chain {table} {chain}");
            let _ = writeln!(
                rules,
                "add rule {table} {chain} {ip_x} saddr {} jump mark-for-masquerade\n\
                 add rule {table} {chain} meta l4proto {proto} dnat to {}",
                endpoint.0,
                host_port(endpoint.0, endpoint.1)
            );
            vmap.push(format!("{i} : goto {chain}"));
        }
        let _ = writeln!(
            rules,
            "add rule {table} {service_chain} numgen random mod {} vmap {{ {} }}",
            port.endpoints.len(),
            vmap.join(" , ")
        );
    }
    format!("{chains}{rules}{elements}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(endpoints: Vec<(IpAddr, u16)>) -> ServicePort {
        ServicePort {
            namespace: "ns1".into(),
            service: "svc1".into(),
            port_name: "p80".into(),
            protocol: Protocol::Tcp,
            family: Family::V4,
            cluster_ip: "172.30.0.41".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: 80,
            node_port: None,
            endpoints,
        }
    }

    /// Chain names as kubernetes' own proxier tests spell them.
    #[test]
    fn chain_names_match_kube_proxy() {
        let p = port(vec![(IpAddr::from([10, 180, 0, 1]), 80)]);
        assert_eq!(svc_chain(&p), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(
            sep_chain(&p, (IpAddr::from([10, 180, 0, 1]), 80)),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
        assert_eq!(nft_service_base(&p), "ULMVA6XW-ns1/svc1/tcp/p80");
        assert_eq!(
            nft_endpoint_chain(&p, (IpAddr::from([10, 180, 0, 1]), 80)),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
    }

    #[test]
    fn probabilities_spread_evenly() {
        let p = port(vec![
            (IpAddr::from([10, 180, 0, 1]), 80),
            (IpAddr::from([10, 180, 0, 2]), 80),
            (IpAddr::from([10, 180, 0, 3]), 80),
        ]);
        let text = iptables(Family::V4, &[&p]);
        assert!(text.contains("--probability 0.3333333333"), "{text}");
        assert!(text.contains("--probability 0.5000000000"), "{text}");
        assert!(
            text.contains("-j DNAT --to-destination 10.180.0.3:80"),
            "{text}"
        );
    }
}
