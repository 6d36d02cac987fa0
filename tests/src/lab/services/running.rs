//! The Services of a running lab: the cluster's current objects, the EndpointSlices derived
//! from them, and kube-proxy's rules in every node, rewritten as steps change them.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use anyhow::Context as _;
use k8s_openapi::api::{
    core::v1::{Pod, Service},
    discovery::v1::EndpointSlice,
};
use serde_json::{Value, json};

use crate::lab::{
    netns,
    scenario::{Family, KubeProxyMode, Object, ObjectKey, Protocol, Scenario},
    topology::{NodePlan, PodPlan},
};

use super::{addresses::*, dns::DnsTable, kube_proxy, plan::*};

/// The cluster as the lab last wrote it, and what it derived from it.
pub struct ServiceLab {
    plans: ServicePlans,
    mode: KubeProxyMode,
    /// Completed manifests of the Pods, Services and EndpointSlices now in the datastore
    /// (the ones the scenario writes; derived slices are in `derived`).
    objects: BTreeMap<ObjectKey, Value>,
    /// EndpointSlices the lab derived and wrote, by key.
    derived: BTreeMap<ObjectKey, Value>,
    /// Node namespaces, and the rules last written there per family.
    nodes: Vec<String>,
    written: Option<kube_proxy::Rules>,
    pub dns: DnsTable,
}

impl ServiceLab {
    pub fn new(
        scenario: &Scenario,
        mode: KubeProxyMode,
        nodes: Vec<String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            plans: plan(scenario)?,
            mode,
            objects: BTreeMap::new(),
            derived: BTreeMap::new(),
            nodes,
            written: None,
            dns: Arc::default(),
        })
    }

    pub fn plans(&self) -> &ServicePlans {
        &self.plans
    }

    pub fn active(&self) -> bool {
        self.plans.any
    }

    /// Completes a Service's manifest (others are left alone).
    pub fn complete(&self, object: &Object) -> Object {
        let mut object = object.clone();
        if object.key.kind == "Service" {
            let namespace = object.key.namespace.clone().unwrap_or_default();
            self.plans
                .complete(&mut object.manifest, &namespace, &object.key.name);
        }
        object
    }

    /// Records an object the lab wrote (already completed).
    pub fn applied(&mut self, key: &ObjectKey, manifest: Value) {
        if matches!(key.kind.as_str(), "Pod" | "Service" | "EndpointSlice") {
            self.objects.insert(key.clone(), manifest);
        }
    }

    pub fn deleted(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
    }

    /// Derives the EndpointSlices of every selector Service from the pods as they are now,
    /// and returns what to write and what to remove from the datastore.
    pub fn derive_slices(&mut self) -> anyhow::Result<(Vec<Object>, Vec<ObjectKey>)> {
        let mut pods: Vec<(ObjectKey, Pod)> = Vec::new();
        let mut services: Vec<(ObjectKey, Service)> = Vec::new();
        for (key, manifest) in &self.objects {
            match key.kind.as_str() {
                "Pod" => pods.push((key.clone(), serde_json::from_value(manifest.clone())?)),
                "Service" => {
                    services.push((key.clone(), serde_json::from_value(manifest.clone())?))
                }
                _ => {}
            }
        }
        let mut wanted: BTreeMap<ObjectKey, Value> = BTreeMap::new();
        for (key, service) in &services {
            let namespace = key.namespace.clone().unwrap_or_default();
            let Some(plan) = self.plans.get(&namespace, &key.name) else {
                continue;
            };
            let spec = service.spec.clone().unwrap_or_default();
            let Some(selector) = spec.selector.filter(|s| !s.is_empty()) else {
                continue;
            };
            let ports: Vec<PortPlan> = spec
                .ports
                .iter()
                .flatten()
                .filter_map(version_port)
                .collect();
            for family in &plan.families {
                // Endpoints grouped by their resolved ports, one slice per group.
                let mut groups: BTreeMap<Vec<(String, u16, Protocol)>, Vec<Value>> =
                    BTreeMap::new();
                for (pod_key, pod) in &pods {
                    if pod_key.namespace.as_deref() != Some(namespace.as_str())
                        || !labels_match(&selector, pod.metadata.labels.as_ref())
                    {
                        continue;
                    }
                    let status = pod.status.as_ref();
                    let ip = status
                        .and_then(|s| s.pod_ips.as_ref())
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.ip.parse::<IpAddr>().ok())
                        .find(|ip| family_of(*ip) == *family);
                    let Some(ip) = ip else { continue };
                    let resolved: Vec<(String, u16, Protocol)> = ports
                        .iter()
                        .filter_map(|p| {
                            resolve_target(&p.target, p.protocol, pod)
                                .map(|n| (p.name.clone(), n, p.protocol))
                        })
                        .collect();
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                    groups.entry(resolved).or_default().push(json!({
                        "addresses": [ip.to_string()],
                        "conditions": {"ready": true, "serving": true, "terminating": false},
                        "nodeName": node,
                        "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod_key.name},
                    }));
                }
                let address_type = format!("IPv{}", family.number());
                let base = format!("{}-ipv{}", key.name, family.number());
                if groups.is_empty() {
                    // The controller keeps one placeholder slice for a Service without
                    // endpoints.
                    groups.insert(Vec::new(), Vec::new());
                }
                for (i, (resolved, endpoints)) in groups.into_iter().enumerate() {
                    let name = if i == 0 {
                        base.clone()
                    } else {
                        format!("{base}-{i}")
                    };
                    let slice_key = ObjectKey::new("EndpointSlice", Some(&namespace), &name);
                    let mut slice = json!({
                        "apiVersion": "discovery.k8s.io/v1",
                        "kind": "EndpointSlice",
                        "metadata": {
                            "name": name,
                            "namespace": namespace,
                            "labels": {SERVICE_NAME_LABEL: key.name, MANAGED_BY_LABEL: MANAGED_BY},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": key.name, "uid": format!("lab-{namespace}-{}", key.name), "controller": true, "blockOwnerDeletion": true}],
                        },
                        "addressType": address_type,
                        "endpoints": endpoints,
                    });
                    if !(resolved.is_empty()
                        && slice["endpoints"].as_array().is_some_and(Vec::is_empty))
                    {
                        slice["ports"] = json!(
                            resolved
                                .iter()
                                .map(|(n, port, protocol)| json!({"name": n, "port": port, "protocol": protocol.to_string()}))
                                .collect::<Vec<_>>()
                        );
                    }
                    wanted.insert(slice_key, slice);
                }
            }
        }
        let mut write = Vec::new();
        for (key, slice) in &wanted {
            if self.derived.get(key) != Some(slice) {
                write.push(Object {
                    key: key.clone(),
                    manifest: slice.clone(),
                });
            }
        }
        let remove: Vec<ObjectKey> = self
            .derived
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        self.derived = wanted;
        Ok((write, remove))
    }

    /// What kube-proxy would see now: every Service port with the ready endpoints of its
    /// EndpointSlices (the lab's and the scenario's), per family.
    pub(super) fn proxy_view(&self) -> anyhow::Result<Vec<kube_proxy::ServicePort>> {
        let mut slices: Vec<EndpointSlice> = Vec::new();
        for (key, manifest) in self
            .objects
            .iter()
            .filter(|(k, _)| k.kind == "EndpointSlice")
            .chain(self.derived.iter())
        {
            let mut slice: EndpointSlice = serde_json::from_value(manifest.clone())
                .with_context(|| format!("reading {key}"))?;
            if slice.metadata.namespace.is_none() {
                slice.metadata.namespace.clone_from(&key.namespace);
            }
            slices.push(slice);
        }
        let mut out = Vec::new();
        for (key, manifest) in self.objects.iter().filter(|(k, _)| k.kind == "Service") {
            let service: Service = serde_json::from_value(manifest.clone())?;
            let namespace = key.namespace.clone().unwrap_or_default();
            let Some(plan) = self.plans.get(&namespace, &key.name) else {
                continue;
            };
            let spec = service.spec.clone().unwrap_or_default();
            for pp in spec.ports.iter().flatten().filter_map(version_port) {
                let name = pp.name.clone();
                let protocol = pp.protocol.to_string();
                if pp.protocol == Protocol::Sctp {
                    continue;
                }
                for family in &plan.families {
                    let Some(cluster_ip) = plan.cluster_ip(*family) else {
                        continue;
                    };
                    let mut endpoints: BTreeSet<(IpAddr, u16)> = BTreeSet::new();
                    for slice in &slices {
                        let owned = slice.metadata.namespace.as_deref() == Some(namespace.as_str())
                            && slice
                                .metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                                == Some(&key.name)
                            && slice.address_type == format!("IPv{}", family.number());
                        if !owned {
                            continue;
                        }
                        let Some(slice_port) = slice.ports.iter().flatten().find(|p| {
                            p.name.clone().unwrap_or_default() == name
                                && p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())
                                    == protocol
                        }) else {
                            continue;
                        };
                        let Some(number) = slice_port.port.and_then(|n| u16::try_from(n).ok())
                        else {
                            continue;
                        };
                        for endpoint in &slice.endpoints {
                            let ready = endpoint
                                .conditions
                                .as_ref()
                                .and_then(|c| c.ready)
                                .unwrap_or(true);
                            if !ready {
                                continue;
                            }
                            if let Some(ip) = endpoint
                                .addresses
                                .first()
                                .and_then(|a| a.parse::<IpAddr>().ok())
                                && family_of(ip) == *family
                            {
                                endpoints.insert((ip, number));
                            }
                        }
                    }
                    out.push(kube_proxy::ServicePort {
                        namespace: namespace.clone(),
                        service: key.name.clone(),
                        port_name: name.clone(),
                        protocol: pp.protocol,
                        family: *family,
                        cluster_ip,
                        port: pp.port,
                        node_port: if spec.type_.as_deref() == Some("NodePort") {
                            pp.node_port
                        } else {
                            None
                        },
                        endpoints: endpoints.into_iter().collect(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Writes kube-proxy's rules in every node when they changed, and updates the DNS table.
    pub fn sync_rules(&mut self) -> anyhow::Result<()> {
        let view = self.proxy_view()?;
        let rules = kube_proxy::render(self.mode, &view);
        if self.written.as_ref() != Some(&rules) {
            for node in &self.nodes {
                kube_proxy::apply(node, self.mode, &rules).with_context(|| {
                    format!("writing kube-proxy ({}) rules in {node}", self.mode)
                })?;
            }
            self.written = Some(rules);
        }
        let mut table: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for key in self.objects.keys().filter(|k| k.kind == "Service") {
            let namespace = key.namespace.clone().unwrap_or_default();
            if let Some(plan) = self.plans.get(&namespace, &key.name) {
                table.insert(
                    format!("{}.{namespace}.svc.{CLUSTER_DOMAIN}", key.name),
                    plan.cluster_ips.clone(),
                );
            }
        }
        if let Ok(mut dns) = self.dns.write() {
            *dns = table;
        }
        Ok(())
    }
}

/// A node's address: its fabric address, else the same address given on [`SERVICE_IF`].
pub fn node_address(node: &NodePlan, family: Family) -> IpAddr {
    let host = u32::try_from(node.index + 1).unwrap_or(1);
    match family {
        Family::V4 => node.fabric_v4.map_or(
            IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(198, 18, 0, 0)) + host,
            )),
            IpAddr::V4,
        ),
        Family::V6 => node.fabric_v6.map_or(
            IpAddr::V6(Ipv6Addr::from(
                u128::from(Ipv6Addr::new(0xfd00, 0xfab, 0, 0, 0, 0, 0, 0)) + u128::from(host),
            )),
            IpAddr::V6,
        ),
    }
}

/// Prepares every node for Services: the Service ranges routed to [`SERVICE_IF`] (one end of a
/// veth pair whose other end answers nothing, like an uplink with no router for them), the node's own address there when it has no fabric (the source address
/// masquerade picks for hairpin and NodePort traffic), and with IPv6, proxy NDP entries on
/// every pod interface for the IPv6 ClusterIPs and the nodes' IPv6 addresses.
pub fn set_up_nodes(
    id: &str,
    nodes: &[NodePlan],
    pods: &[PodPlan],
    plans: &ServicePlans,
) -> anyhow::Result<()> {
    let any_v6 = pods.iter().any(|p| p.ipv6.is_some())
        || plans
            .services
            .values()
            .any(|s| s.families.contains(&Family::V6));
    for node in nodes {
        let ns = node.netns(id);
        // A veth pair whose other end answers nothing: this kernel has no dummy interfaces.
        netns::ip_in(
            &ns,
            &[
                "link",
                "add",
                SERVICE_IF,
                "type",
                "veth",
                "peer",
                "name",
                SERVICE_PEER,
            ],
        )?;
        netns::ip_in(&ns, &["link", "set", SERVICE_PEER, "up"])?;
        netns::ip_in(&ns, &["link", "set", SERVICE_IF, "up"])?;
        let v4 = format!("{}/{}", SERVICE_RANGE_V4.0, SERVICE_RANGE_V4.1);
        netns::ip_in(&ns, &["route", "add", &v4, "dev", SERVICE_IF])?;
        if node.fabric_v4.is_none() {
            let address = format!("{}/32", node_address(node, Family::V4));
            netns::ip_in(&ns, &["addr", "add", &address, "dev", SERVICE_IF])?;
        }
        if any_v6 {
            let v6 = format!("{}/{}", SERVICE_RANGE_V6.0, SERVICE_RANGE_V6.1);
            netns::ip_in(&ns, &["-6", "route", "add", &v6, "dev", SERVICE_IF])?;
            if node.fabric_v6.is_none() {
                let address = format!("{}/128", node_address(node, Family::V6));
                netns::ip_in(
                    &ns,
                    &["-6", "addr", "add", &address, "dev", SERVICE_IF, "nodad"],
                )?;
            }
            let targets: Vec<IpAddr> = plans
                .services
                .values()
                .filter_map(|s| s.cluster_ip(Family::V6))
                .chain(nodes.iter().map(|n| node_address(n, Family::V6)))
                .collect();
            for pod in pods
                .iter()
                .filter(|p| p.node == node.name && p.ipv6.is_some())
            {
                for ip in &targets {
                    let ip = ip.to_string();
                    netns::ip_in(
                        &ns,
                        &["-6", "neigh", "add", "proxy", &ip, "dev", &pod.host_if()],
                    )?;
                }
            }
        }
    }
    Ok(())
}
