//! `policy-agent explain --to service/NS/NAME`: the verdict on a connection to a Service's
//! cluster IP, for each backend kube-proxy may translate it to.
//!
//! The datapath judges a pod's Service traffic on the backend kube-proxy chose and its target
//! port, as if the client had connected to the backend directly; so each backend's
//! explanation is [`super::verdict::explain`] of the direct packet to the backend's address
//! and port. The backends are those of the Service's ClusterIP frontend in
//! [`crate::services::service_table`], the same set the agent programs.

use std::{fmt::Write as _, net::IpAddr};

use serde_json::{Value, json};
use thiserror::Error;

use super::verdict::{self, ExplainError};
use crate::{
    compiler::{
        Scope,
        trace::{PacketTrace, TracePacket},
    },
    model::{Cluster, Family, Protocol, ServicePort, ServiceType, TargetPort},
    services::{Backend, FrontendKind, service_table},
};

/// How `--to` names a Service: `service/NS/NAME`.
const PREFIX: &str = "service/";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error("service/{namespace}/{name}: no Service {namespace}/{name} in the datastore")]
    UnknownService { namespace: String, name: String },
    #[error(
        "service/{namespace}/{name}: an ExternalName Service (a DNS name): kube-proxy gives it no cluster IP and no backends"
    )]
    ExternalName { namespace: String, name: String },
    #[error(
        "service/{namespace}/{name}: no cluster IP (a headless Service, or spec.clusterIP unset): kube-proxy does not proxy it; name a backend pod or address instead"
    )]
    Headless { namespace: String, name: String },
    #[error("service/{namespace}/{name}: no IPv{family} cluster IP (it has {cluster_ips})")]
    NoFamily {
        namespace: String,
        name: String,
        family: u8,
        cluster_ips: String,
    },
    #[error("service/{namespace}/{name}: no port {port}/{protocol} (its ports: {ports})")]
    NoSuchPort {
        namespace: String,
        name: String,
        port: u16,
        protocol: String,
        ports: String,
    },
    #[error("--protocol {protocol}: Services carry TCP, UDP and SCTP only")]
    Protocol { protocol: u8 },
    #[error(transparent)]
    Packet(#[from] ExplainError),
}

/// `service/NS/NAME` as (namespace, name); `None` for anything else (a pod or an address).
pub fn parse(given: &str) -> Option<(String, String)> {
    let rest = given.strip_prefix(PREFIX)?;
    let (namespace, name) = rest.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (namespace.to_owned(), name.to_owned()))
}

/// One backend and the walk of the direct packet to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendExplanation {
    pub backend: Backend,
    /// (namespace, name) of the pod whose address the endpoint is, if any.
    pub pod: Option<(String, String)>,
    pub trace: PacketTrace,
}

/// The walks for a connection to a Service port's cluster IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceExplanation {
    /// (namespace, name).
    pub service: (String, String),
    pub cluster_ip: IpAddr,
    pub port: ServicePort,
    /// The client's node when the Service's `internalTrafficPolicy` is `Local` (kube-proxy
    /// there picks the endpoints on that node only), else `None`.
    pub local_to: Option<Option<String>>,
    /// Empty: kube-proxy rejects the connection (no policy verdict).
    pub backends: Vec<BackendExplanation>,
}

/// Which of allow/deny the backends' verdicts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    NoBackends,
    AllAllow,
    AllDeny,
    Differs,
}

impl ServiceExplanation {
    pub fn summary(&self) -> Summary {
        let allowed = self.backends.iter().filter(|b| b.trace.allowed()).count();
        match (self.backends.len(), allowed) {
            (0, _) => Summary::NoBackends,
            (n, a) if a == n => Summary::AllAllow,
            (_, 0) => Summary::AllDeny,
            _ => Summary::Differs,
        }
    }
}

fn protocol_of(number: u8) -> Option<Protocol> {
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
        .into_iter()
        .find(|p| p.number() == number)
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn target_port(port: &TargetPort) -> String {
    match port {
        TargetPort::Number(n) => n.to_string(),
        TargetPort::Name(name) => name.clone(),
    }
}

/// `80/TCP (http)`, as `kubectl get service` lists ports (with the name).
fn port_label(port: &ServicePort) -> String {
    let mut label = format!("{}/{}", port.port, protocol_name(port.protocol));
    if !port.name.is_empty() {
        let _ = write!(label, " ({})", port.name);
    }
    label
}

/// The pod (an endpoint, not a terminated or host-network one) that owns `addr`.
fn pod_at(cluster: &Cluster, addr: IpAddr) -> Option<(String, String)> {
    cluster
        .pods
        .values()
        .find(|pod| pod.is_endpoint() && pod.ips.contains(&addr))
        .map(|pod| (pod.namespace.clone(), pod.name.clone()))
}

/// What a connection from `src` (source port `sport`) to `service`'s cluster IP of `family`
/// (4 or 6) on Service port `port` and `protocol` (a number) meets: for each backend
/// kube-proxy may choose, the walk of the packet as the datapath judges it (to the backend's
/// address and target port).
#[allow(clippy::too_many_arguments)]
pub fn explain(
    cluster: &Cluster,
    scope: &Scope,
    src: IpAddr,
    sport: u16,
    service: &(String, String),
    port: u16,
    protocol: u8,
    family: u8,
) -> Result<ServiceExplanation, ServiceError> {
    let (namespace, name) = service;
    let named = || (namespace.clone(), name.clone());
    let svc = cluster
        .services
        .get(service)
        .ok_or_else(|| ServiceError::UnknownService {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    if svc.service_type == ServiceType::ExternalName {
        let (namespace, name) = named();
        return Err(ServiceError::ExternalName { namespace, name });
    }
    if svc.cluster_ips.is_empty() {
        let (namespace, name) = named();
        return Err(ServiceError::Headless { namespace, name });
    }
    let want = if family == 6 {
        Family::Ipv6
    } else {
        Family::Ipv4
    };
    let Some(&cluster_ip) = svc.cluster_ips.iter().find(|ip| Family::of(ip) == want) else {
        let (namespace, name) = named();
        return Err(ServiceError::NoFamily {
            namespace,
            name,
            family,
            cluster_ips: svc
                .cluster_ips
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let proto = protocol_of(protocol).ok_or(ServiceError::Protocol { protocol })?;
    let Some(service_port) = svc
        .ports
        .iter()
        .find(|p| p.port == port && p.protocol == proto)
    else {
        let (namespace, name) = named();
        let ports: Vec<String> = svc.ports.iter().map(port_label).collect();
        return Err(ServiceError::NoSuchPort {
            namespace,
            name,
            port,
            protocol: protocol_name(proto).to_owned(),
            ports: if ports.is_empty() {
                "none".to_owned()
            } else {
                ports.join(", ")
            },
        });
    };

    // kube-proxy on the client's node decides; only `internalTrafficPolicy: Local` makes the
    // node matter (its endpoints only), so the table of no node serves every other Service.
    let (node, local_to) = if svc.internal_traffic_local {
        let node = cluster
            .pods
            .values()
            .find(|pod| pod.is_endpoint() && pod.ips.contains(&src))
            .and_then(|pod| pod.node_name.clone());
        (node.clone(), Some(node))
    } else {
        (None, None)
    };
    let table = service_table(cluster, node.as_deref(), &[]);
    let backends: Vec<Backend> = table
        .frontends
        .iter()
        .find(|(frontend, info)| {
            frontend.addr == cluster_ip
                && frontend.protocol == proto
                && frontend.port == port
                && info.kind == FrontendKind::ClusterIp
                && &info.service == service
        })
        .map(|(_, info)| info.backends.iter().copied().collect())
        .unwrap_or_default();

    let mut explanations = Vec::new();
    for backend in backends {
        let packet = TracePacket {
            src,
            dst: backend.addr,
            protocol,
            sport,
            dport: backend.port,
        };
        explanations.push(BackendExplanation {
            backend,
            pod: pod_at(cluster, backend.addr),
            trace: verdict::explain(cluster, scope, &packet)?,
        });
    }
    Ok(ServiceExplanation {
        service: service.clone(),
        cluster_ip,
        port: service_port.clone(),
        local_to,
        backends: explanations,
    })
}

fn backend_name(backend: &BackendExplanation) -> String {
    match &backend.pod {
        Some((namespace, name)) => format!(
            "pod {namespace}/{name} ({}) port {}",
            backend.backend.addr, backend.backend.port
        ),
        None => format!(
            "{} port {} (not a pod)",
            backend.backend.addr, backend.backend.port
        ),
    }
}

fn backend_short(backend: &BackendExplanation) -> String {
    match &backend.pod {
        Some((namespace, name)) => format!("{namespace}/{name}:{}", backend.backend.port),
        None => match backend.backend.addr {
            IpAddr::V6(addr) => format!("[{addr}]:{}", backend.backend.port),
            IpAddr::V4(addr) => format!("{addr}:{}", backend.backend.port),
        },
    }
}

fn summary_text(explanation: &ServiceExplanation) -> String {
    let n = explanation.backends.len();
    match explanation.summary() {
        Summary::NoBackends => "no backends: kube-proxy rejects the connection".to_owned(),
        Summary::AllAllow => format!("allow for all {n} backend(s)"),
        Summary::AllDeny => format!("deny for all {n} backend(s)"),
        Summary::Differs => {
            let list = |allow: bool| -> String {
                explanation
                    .backends
                    .iter()
                    .filter(|b| b.trace.allowed() == allow)
                    .map(backend_short)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "differs per backend: allow for {}; deny for {}",
                list(true),
                list(false)
            )
        }
    }
}

fn local_note(explanation: &ServiceExplanation) -> Option<String> {
    explanation.local_to.as_ref().map(|node| match node {
        Some(node) => format!(
            "internalTrafficPolicy Local: only endpoints on the client's node {node} are used"
        ),
        None => "internalTrafficPolicy Local: the client is not a pod on a node, so no endpoint is local".to_owned(),
    })
}

/// The walks as text: a heading, each backend's walk under a line naming it, a summary.
pub fn render_text(explanation: &ServiceExplanation) -> String {
    let mut out = String::new();
    let (namespace, name) = &explanation.service;
    let port = &explanation.port;
    let _ = writeln!(
        out,
        "service {namespace}/{name} port {}: cluster IP {}, targetPort {}",
        port_label(port),
        explanation.cluster_ip,
        target_port(&port.target_port)
    );
    if let Some(note) = local_note(explanation) {
        let _ = writeln!(out, "{note}");
    }
    if explanation.backends.is_empty() {
        let _ = writeln!(
            out,
            "no ready backends: kube-proxy rejects connections to {} port {} (no policy verdict)",
            explanation.cluster_ip, port.port
        );
    }
    let count = explanation.backends.len();
    for (i, backend) in explanation.backends.iter().enumerate() {
        let _ = writeln!(
            out,
            "backend {} of {count}: {}",
            i + 1,
            backend_name(backend)
        );
        out.push_str(&verdict::render_text(&backend.trace));
    }
    let _ = writeln!(out, "summary: {}", summary_text(explanation));
    out
}

/// The walks as one JSON object: the Service, its port, and each backend's walk in
/// [`verdict::render_json`]'s shape with a `backend` member added.
pub fn render_json(explanation: &ServiceExplanation) -> Value {
    let (namespace, name) = &explanation.service;
    let port = &explanation.port;
    let backends: Vec<Value> = explanation
        .backends
        .iter()
        .map(|backend| {
            let mut value = verdict::render_json(&backend.trace);
            if let Value::Object(map) = &mut value {
                map.insert(
                    "backend".to_owned(),
                    json!({
                        "address": backend.backend.addr.to_string(),
                        "port": backend.backend.port,
                        "pod": backend.pod.as_ref().map(|(ns, n)| format!("{ns}/{n}")),
                    }),
                );
            }
            value
        })
        .collect();
    let summary = match explanation.summary() {
        Summary::NoBackends => "no backends",
        Summary::AllAllow => "allow",
        Summary::AllDeny => "deny",
        Summary::Differs => "differs",
    };
    json!({
        "service": format!("{namespace}/{name}"),
        "cluster_ip": explanation.cluster_ip.to_string(),
        "port": port.port,
        "protocol": protocol_name(port.protocol),
        "port_name": port.name,
        "target_port": match &port.target_port {
            TargetPort::Number(n) => json!(n),
            TargetPort::Name(name) => json!(name),
        },
        "internal_traffic_policy": if explanation.local_to.is_some() { "Local" } else { "Cluster" },
        "backends": backends,
        "summary": summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_service_ns_name() {
        assert_eq!(
            parse("service/shop/web"),
            Some(("shop".to_owned(), "web".to_owned()))
        );
        assert_eq!(parse("shop/web"), None);
        assert_eq!(parse("service/web"), None);
        assert_eq!(parse("service//web"), None);
        assert_eq!(parse("service/shop/web/x"), None);
        assert_eq!(parse("10.96.0.1"), None);
    }
}
