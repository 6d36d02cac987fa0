//! Namespaces and Pods.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1 as core;

use crate::model::{ContainerPort, NAMESPACE_NAME_LABEL, Namespace, Pod};

use super::fields::{ConvertError, object_name, object_namespace, parse_ip, port_number, protocol};

pub fn namespace(ns: &core::Namespace) -> Result<Namespace, ConvertError> {
    let name = object_name(&ns.metadata)?;
    let mut labels = ns.metadata.labels.clone().unwrap_or_default();
    // The API server sets this label on every namespace and refuses other values.
    labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
    Ok(Namespace { name, labels })
}

pub fn pod(pod: &core::Pod) -> Result<Pod, ConvertError> {
    let name = object_name(&pod.metadata)?;
    let namespace = object_namespace(&pod.metadata);
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();

    let mut ips = BTreeSet::new();
    match status.and_then(|s| s.pod_ips.as_ref()) {
        Some(pod_ips) if !pod_ips.is_empty() => {
            for (i, pod_ip) in pod_ips.iter().enumerate() {
                ips.insert(parse_ip(&pod_ip.ip, &format!("status.podIPs[{i}].ip"))?);
            }
        }
        _ => {
            if let Some(ip) = status.and_then(|s| s.pod_ip.as_deref()) {
                ips.insert(parse_ip(ip, "status.podIP")?);
            }
        }
    }

    let mut container_ports = Vec::new();
    for (c, container) in spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        for (p, port) in container.ports.iter().flatten().enumerate() {
            let field = format!("spec.containers[{c}].ports[{p}]");
            container_ports.push(ContainerPort {
                name: port.name.clone().filter(|n| !n.is_empty()),
                port: port_number(port.container_port, &format!("{field}.containerPort"))?,
                protocol: protocol(port.protocol.as_deref(), &format!("{field}.protocol"))?,
            });
        }
    }

    let phase = status.and_then(|s| s.phase.as_deref());
    Ok(Pod {
        namespace,
        name,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ips,
        container_ports,
        service_account: spec
            .and_then(|s| s.service_account_name.as_deref())
            .or_else(|| spec.and_then(|s| s.service_account.as_deref()))
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned(),
        node_name: spec.and_then(|s| s.node_name.clone()),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        terminated: matches!(phase, Some("Succeeded" | "Failed")),
    })
}
