//! Through a Service: new TCP connections per second and small UDP packets per second, client
//! pod → server pod, addressed to the server's pod IP or to the ClusterIP of a Service in front
//! of it (one backend, kube-proxy's iptables-mode rules in the node namespace, written by the
//! lab; see [`service`]), without an agent and with the real agent enforcing a policy that admits the flow.
//!
//! With the agent, the client's egress and the server's ingress are both isolated and each is
//! admitted by pod selector on the target port, so a flow to the ClusterIP takes the deferred
//! path: the client's interface (tc ingress) leaves the egress decision open, kube-proxy's DNAT
//! picks the backend, and `palisade_after_nat` on the server's interface (tc egress) decides it
//! on the backend and its target port. A flow to the pod IP is decided at once.
//!
//! Two labs side by side (the same pods, Service and policies; one with the agent), and the
//! four cases interleaved within each repetition, so every ratio comes from the same minutes
//! of the same machine.

use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{Budget, emit, rules::SERVER_PORT, traffic::Testbed};
use crate::lab::scenario::Object;

/// The Service's ClusterIP (fixed, in the lab's 10.96.0.0/16 range) and port; its target
/// port is the server's [`SERVER_PORT`].
pub const CLUSTER_IP: &str = "10.96.0.80";
pub const SERVICE_PORT: u16 = 80;
/// The pods' addresses, fixed so that the Service's EndpointSlice can name the server's.
pub const CLIENT_IP: &str = "10.42.0.10";
pub const SERVER_IP: &str = "10.42.0.11";
/// The Service's namespace: one without pods (see [`service`]).
pub const SERVICE_NAMESPACE: &str = "bench-svc";

/// The client and server pods, as in the traffic part, with fixed addresses.
pub fn pods() -> Vec<Value> {
    [("client", CLIENT_IP), ("server", SERVER_IP)]
        .into_iter()
        .map(|(name, ip)| {
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
                "status": {"podIPs": [{"ip": ip}]},
            })
        })
        .collect()
}

/// The Service in front of the server pod (TCP and UDP, `port` 80 → `targetPort` 8080) and its
/// EndpointSlice, naming the server pod's address as the one ready endpoint.
///
/// Written by hand, in a namespace of its own, rather than derived by the lab from a selector:
/// the lab serves every target port of every Service on every pod of the Service's namespace
/// (its own echo servers, bound to the pod's address), so a selector Service in `default`
/// would leave port 8080 of the server pod taken and the load generator's server could not
/// bind it. kube-proxy's rules (KUBE-SERVICES → KUBE-SVC-* → KUBE-SEP-* with DNAT) and the
/// agent's view (a backend address that is the server pod's) are the same as for a selector
/// Service with that one backend.
pub fn service() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": SERVICE_NAMESPACE},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server", "namespace": SERVICE_NAMESPACE},
            "spec": {
                "clusterIP": CLUSTER_IP,
                "ports": [
                    {"name": "tcp", "protocol": "TCP", "port": SERVICE_PORT, "targetPort": SERVER_PORT},
                    {"name": "udp", "protocol": "UDP", "port": SERVICE_PORT, "targetPort": SERVER_PORT}
                ]
            }
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "server",
                "namespace": SERVICE_NAMESPACE,
                "labels": {"kubernetes.io/service-name": "server"}
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [SERVER_IP], "conditions": {"ready": true}}],
            "ports": [
                {"name": "tcp", "protocol": "TCP", "port": SERVER_PORT},
                {"name": "udp", "protocol": "UDP", "port": SERVER_PORT}
            ]
        }),
    ]
}

/// Client egress and server ingress isolated, each admitting the other by pod selector on the
/// target port (TCP and UDP): the flow is allowed on the backend, never on the Service port.
pub fn policies() -> Vec<Value> {
    let ports = json!([
        {"protocol": "TCP", "port": SERVER_PORT},
        {"protocol": "UDP", "port": SERVER_PORT}
    ]);
    vec![
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "client-egress", "namespace": "default"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "client"}},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{"podSelector": {"matchLabels": {"app": "server"}}}],
                    "ports": ports
                }]
            }
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "server-ingress", "namespace": "default"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "server"}},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                    "ports": ports
                }]
            }
        }),
    ]
}

fn objects(manifests: Vec<Value>) -> anyhow::Result<Vec<Object>> {
    manifests
        .into_iter()
        .map(|m| Object::from_manifest(m).context("building a manifest"))
        .collect()
}

/// Runs the part and prints one JSON line per measurement:
/// `{"kind": "service_traffic", "enforcer": "none"|"palisade", "to": "pod"|"service", ...}`.
pub fn run(budget: &Budget) -> anyhow::Result<()> {
    emit_load("start");
    let started = Instant::now();
    let extra = || objects(service().into_iter().chain(policies()).collect());
    let plain = Testbed::start_with(objects(pods())?, extra()?, false)
        .context("starting the lab with the Service, without an agent")?;
    let palisade = Testbed::start_with(objects(pods())?, extra()?, true)
        .context("starting the lab with the Service and the agent")?;
    eprintln!(
        "services: both labs up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let service = format!("{CLUSTER_IP}:{SERVICE_PORT}");
    for rep in 0..budget.reps {
        for (enforcer, bed) in [("none", &plain), ("palisade", &palisade)] {
            let pod = format!("{}:{SERVER_PORT}", bed.server_ip);
            for (to, addr) in [("pod", &pod), ("service", &service)] {
                let what = || format!("{enforcer}, to the {to} address {addr}");
                let tcp = bed
                    .tcp_rate_to(addr, budget.seconds)
                    .with_context(|| format!("{}: TCP", what()))?;
                let udp = bed
                    .udp_rate_to(addr, budget.seconds)
                    .with_context(|| format!("{}: UDP", what()))?;
                eprintln!(
                    "services: rep {rep}: {enforcer:<9} to {to:<7} {tcp:>9.0} conn/s {udp:>10.0} UDP pkt/s"
                );
                for (metric, value) in [("tcp_conn_per_s", tcp), ("udp_pkt_per_s", udp)] {
                    emit(
                        &json!({"kind": "service_traffic", "enforcer": enforcer, "to": to,
                        "rep": rep, "metric": metric, "value": value}),
                    );
                }
            }
        }
    }
    emit_load("end");
    Ok(())
}

/// How busy the machine was (the 1, 5 and 15-minute load averages, /proc/loadavg) and when:
/// the report prints both beside the figures, which other load on a shared machine moves.
fn emit_load(when: &str) {
    let loadavg: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    emit(
        &json!({"kind": "part_load", "part": "services", "when": when, "unix": unix,
        "loadavg": loadavg, "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get)}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policies_admit_the_target_port_not_the_service_port() {
        let s = service();
        assert_eq!(s[1]["spec"]["ports"][0]["targetPort"], SERVER_PORT);
        assert_eq!(s[2]["endpoints"][0]["addresses"][0], SERVER_IP);
        for p in policies() {
            let rules = p["spec"]["egress"]
                .as_array()
                .or_else(|| p["spec"]["ingress"].as_array())
                .cloned()
                .unwrap_or_default();
            assert_eq!(rules.len(), 1);
            let ports: Vec<&Value> = rules[0]["ports"]
                .as_array()
                .map(|a| a.iter().map(|p| &p["port"]).collect())
                .unwrap_or_default();
            assert_eq!(ports, [&json!(SERVER_PORT), &json!(SERVER_PORT)]);
        }
    }
}
