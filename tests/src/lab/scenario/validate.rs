//! The checks every scenario passes before the lab creates anything: references, limits,
//! addresses, names.

use super::*;

impl Scenario {
    /// Checks every reference before anything is created.
    pub(super) fn validate(&self) -> Result<(), ScenarioError> {
        if self.steps.len() > MAX_STEPS {
            return Err(ScenarioError::TooManySteps {
                count: self.steps.len(),
                max: MAX_STEPS,
            });
        }
        let mut present: BTreeSet<ObjectKey> = BTreeSet::new();
        for (i, object) in self.resources.iter().enumerate() {
            if !present.insert(object.key.clone()) {
                return Err(ScenarioError::Duplicate {
                    at: format!("resources[{i}]"),
                    key: object.key.clone(),
                });
            }
        }
        let pods = self.pods()?;
        if pods.len() > MAX_PODS {
            return Err(ScenarioError::TooManyPods {
                count: pods.len(),
                max: MAX_PODS,
            });
        }
        let nodes = self.nodes()?;
        if nodes.len() > MAX_NODES {
            return Err(ScenarioError::TooManyNodes {
                count: nodes.len(),
                max: MAX_NODES,
            });
        }
        let namespaces = self.namespaces();
        let mut addresses: BTreeMap<IpAddr, &PodRef> = BTreeMap::new();
        for (i, pod) in pods.iter().enumerate() {
            if pod.pod.namespace != DEFAULT_NAMESPACE && !namespaces.contains(&pod.pod.namespace) {
                return Err(ScenarioError::UndeclaredNamespace {
                    at: format!("pod {i}"),
                    pod: pod.pod.clone(),
                    namespace: pod.pod.namespace.clone(),
                });
            }
            for ip in &pod.ips {
                if let Some(first) = addresses.insert(*ip, &pod.pod) {
                    return Err(ScenarioError::DuplicateAddress {
                        address: *ip,
                        first: first.clone(),
                        second: pod.pod.clone(),
                    });
                }
            }
        }
        let by_ref: BTreeMap<&PodRef, &PodInfo> = pods.iter().map(|p| (&p.pod, p)).collect();
        let services = crate::lab::services::plan(self)?;
        let heps = self.host_endpoints()?;
        let heps: BTreeMap<&str, &HostEndpointInfo> =
            heps.iter().map(|h| (h.name.as_str(), h)).collect();
        let mut files: BTreeSet<String> = BTreeSet::new();
        let mut kept: BTreeMap<&str, &Probe> = BTreeMap::new();
        for (s, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{s}]");
            for (i, object) in step.apply.iter().enumerate() {
                let at = format!("{at}.apply[{i}]");
                if let Some(pod) = object.as_pod() {
                    let pod = pod.map_err(|source| ScenarioError::InvalidPod {
                        at: at.clone(),
                        source,
                    })?;
                    let info = pod_info(&at, &object.key, &pod)?;
                    let Some(declared) = by_ref.get(&info.pod) else {
                        return Err(ScenarioError::UnknownPod { at, pod: info.pod });
                    };
                    if !info.ips.is_empty() && info.ips != declared.ips {
                        return Err(ScenarioError::PodAddressChanged { at, pod: info.pod });
                    }
                    if info.node.is_some() && info.node != declared.node {
                        return Err(ScenarioError::PodNodeChanged { at, pod: info.pod });
                    }
                }
                present.insert(object.key.clone());
            }
            for (i, reference) in step.delete.iter().enumerate() {
                let key = reference.key();
                if !present.remove(&key) {
                    return Err(ScenarioError::DeleteMissing {
                        at: format!("{at}.delete[{i}]"),
                        key,
                    });
                }
            }
            for (i, file) in step.write_files.iter().enumerate() {
                if !is_plain_manifest_name(&file.name) {
                    return Err(ScenarioError::BadFileName {
                        at: format!("{at}.writeFiles[{i}]"),
                        name: file.name.clone(),
                    });
                }
                files.insert(file.name.clone());
            }
            for (i, name) in step.remove_files.iter().enumerate() {
                if !files.remove(name) {
                    return Err(ScenarioError::RemoveMissing {
                        at: format!("{at}.removeFiles[{i}]"),
                        name: name.clone(),
                    });
                }
            }
            if step.probes.len() > MAX_PROBES_PER_STEP {
                return Err(ScenarioError::TooManyProbes {
                    at,
                    count: step.probes.len(),
                    max: MAX_PROBES_PER_STEP,
                });
            }
            for (i, probe) in step.probes.iter().enumerate() {
                let at = format!("{at}.probes[{i}]");
                validate_probe(&at, probe, &by_ref, &heps)?;
                if let Some(target) = &probe.service {
                    services.check_probe(&at, probe, target, &nodes)?;
                }
                if let Some(name) = &probe.over {
                    // Kept by an earlier step, between the same pods on the same port.
                    let same = |k: &&Probe| {
                        (&k.from, &k.to, k.port, k.protocol, k.family)
                            == (
                                &probe.from,
                                &probe.to,
                                probe.port,
                                probe.protocol,
                                probe.family,
                            )
                    };
                    if !kept.get(name.as_str()).is_some_and(same) {
                        return Err(ScenarioError::BadOver {
                            at,
                            name: name.clone(),
                        });
                    }
                }
            }
            for (i, probe) in step.probes.iter().enumerate() {
                if let Some(name) = &probe.keep {
                    let at = format!("{at}.probes[{i}]");
                    let keepable = matches!(probe.protocol, Protocol::Tcp | Protocol::Udp)
                        && probe.over.is_none()
                        && probe.expect == Verdict::Allow;
                    if !keepable || kept.insert(name, probe).is_some() {
                        return Err(ScenarioError::BadKeep {
                            at,
                            name: name.clone(),
                        });
                    }
                }
            }
            for (i, expected) in step.expect_errors.iter().enumerate() {
                if expected.is_empty() {
                    return Err(ScenarioError::EmptyExpectedError {
                        at: format!("{at}.expectErrors[{i}]"),
                    });
                }
            }
        }
        Ok(())
    }
}

pub(super) fn validate_probe(
    at: &str,
    probe: &Probe,
    pods: &BTreeMap<&PodRef, &PodInfo>,
    heps: &BTreeMap<&str, &HostEndpointInfo>,
) -> Result<(), ScenarioError> {
    match probe.protocol {
        Protocol::Icmp if probe.port != 0 => {
            return Err(ScenarioError::IcmpPort { at: at.to_owned() });
        }
        Protocol::Icmp => {}
        _ if probe.port == 0 => return Err(ScenarioError::PortZero { at: at.to_owned() }),
        _ => {}
    }
    if probe
        .timeout_ms
        .is_some_and(|t| t == 0 || t > MAX_PROBE_TIMEOUT_MS)
    {
        return Err(ScenarioError::BadTimeout {
            at: at.to_owned(),
            max: MAX_PROBE_TIMEOUT_MS,
        });
    }
    if probe.dns_query.is_some() && probe.protocol != Protocol::Udp {
        return Err(ScenarioError::BadService {
            at: at.to_owned(),
            detail: "dnsQuery needs protocol UDP".to_owned(),
        });
    }
    let ends: &[&PodRef] = if probe.service.is_some() {
        &[&probe.from]
    } else {
        &[&probe.from, &probe.to]
    };
    for &pod in ends {
        if let Some(name) = pod.host_endpoint_name() {
            match (heps.get(name), pods.contains_key(pod)) {
                (Some(_), true) => {
                    return Err(ScenarioError::AmbiguousEndpoint {
                        at: at.to_owned(),
                        reference: pod.clone(),
                        name: name.to_owned(),
                    });
                }
                (Some(hep), false) => {
                    if hep.ip(probe.family).is_none() {
                        return Err(ScenarioError::HostEndpointNoAddress {
                            at: at.to_owned(),
                            name: name.to_owned(),
                            family: probe.family.number(),
                        });
                    }
                    continue;
                }
                (None, false) => {
                    return Err(ScenarioError::UnknownHostEndpoint {
                        at: at.to_owned(),
                        reference: pod.clone(),
                        name: name.to_owned(),
                    });
                }
                // A pod in a namespace `hep`, with no host endpoint of its name.
                (None, true) => {}
            }
        }
        let Some(info) = pods.get(pod) else {
            return Err(ScenarioError::UnknownPod {
                at: at.to_owned(),
                pod: pod.clone(),
            });
        };
        match probe.family {
            Family::V6 if !info.ips.iter().any(IpAddr::is_ipv6) => {
                return Err(ScenarioError::NoIpv6 {
                    at: at.to_owned(),
                    pod: pod.clone(),
                });
            }
            // A pod without any address gets a lab-assigned IPv4 one.
            Family::V4 if !info.ips.is_empty() && !info.ips.iter().any(IpAddr::is_ipv4) => {
                return Err(ScenarioError::NoIpv4 {
                    at: at.to_owned(),
                    pod: pod.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `name` is a file name the agent reads and the lab may write: no directories, no
/// leading `.` (the agent skips those, and the lab uses them for temporary files).
pub fn is_plain_manifest_name(name: &str) -> bool {
    !name.contains('/')
        && !name.contains('\0')
        && policy_agent::datastore::digest::is_manifest_name(name)
}
