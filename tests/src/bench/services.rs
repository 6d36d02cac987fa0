//! Through a Service: new TCP connections per second and small UDP packets per second, client
//! pod → server pod, addressed to the server's pod IP or to the ClusterIP of a Service in front
//! of it (one backend, kube-proxy's iptables-mode rules in the node namespace, written by the
//! lab), without an agent and with the real agent enforcing a policy that admits the flow.
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

/// The Service in front of the server pod: TCP and UDP, `port` 80 → `targetPort` 8080.
pub fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "server", "namespace": "default"},
        "spec": {
            "clusterIP": CLUSTER_IP,
            "selector": {"app": "server"},
            "ports": [
                {"name": "tcp", "protocol": "TCP", "port": SERVICE_PORT, "targetPort": SERVER_PORT},
                {"name": "udp", "protocol": "UDP", "port": SERVICE_PORT, "targetPort": SERVER_PORT}
            ]
        }
    })
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

fn resources() -> anyhow::Result<Vec<Object>> {
    std::iter::once(service())
        .chain(policies())
        .map(|m| Object::from_manifest(m).context("building a manifest"))
        .collect()
}

/// Runs the part and prints one JSON line per measurement:
/// `{"kind": "service_traffic", "enforcer": "none"|"palisade", "to": "pod"|"service", ...}`.
pub fn run(budget: &Budget) -> anyhow::Result<()> {
    let started = Instant::now();
    let plain = Testbed::start(resources()?, false)
        .context("starting the lab with the Service, without an agent")?;
    let palisade = Testbed::start(resources()?, true)
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policies_admit_the_target_port_not_the_service_port() {
        let s = service();
        assert_eq!(s["spec"]["ports"][0]["targetPort"], SERVER_PORT);
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
