//! NetworkPolicies, and the label selectors they (and ClusterNetworkPolicies) use.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::networking::v1::{self as networking, NetworkPolicyPeer, NetworkPolicyPort},
    apimachinery::pkg::{apis::meta::v1 as meta, util::intstr::IntOrString},
};

use crate::model::{
    LabelSelector, NamespaceMatch, NetworkPolicy, Peer, PortMatch, Rule, selector::Requirement,
};

use super::fields::{
    ConvertError, invalid, is_port_name, object_name, object_namespace, parse_cidr, port_number,
    protocol,
};

pub fn network_policy(np: &networking::NetworkPolicy) -> Result<NetworkPolicy, ConvertError> {
    let name = object_name(&np.metadata)?;
    let namespace = object_namespace(&np.metadata);
    let spec = np
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec", "required"))?;
    let pod_selector = label_selector(spec.pod_selector.as_ref(), "spec.podSelector")?;

    let mut ingress_rules = Vec::new();
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let field = format!("spec.ingress[{i}]");
        ingress_rules.push(convert_rule(
            rule.from.as_deref(),
            rule.ports.as_deref(),
            &namespace,
            &field,
            "from",
        )?);
    }
    let mut egress_rules = Vec::new();
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let field = format!("spec.egress[{i}]");
        egress_rules.push(convert_rule(
            rule.to.as_deref(),
            rule.ports.as_deref(),
            &namespace,
            &field,
            "to",
        )?);
    }

    // policyTypes defaulting, as the API documents it: without the field a policy always
    // applies to ingress, and to egress only when it has egress rules.
    let (has_ingress, has_egress) = match &spec.policy_types {
        None => (true, !egress_rules.is_empty()),
        Some(types) => {
            let mut ingress = false;
            let mut egress = false;
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => ingress = true,
                    "Egress" => egress = true,
                    other => {
                        return Err(invalid(
                            format!("spec.policyTypes[{i}]"),
                            format!(
                                "unsupported value {other:?}: expected \"Ingress\" or \"Egress\""
                            ),
                        ));
                    }
                }
            }
            (ingress, egress)
        }
    };

    Ok(NetworkPolicy {
        namespace,
        name,
        pod_selector,
        ingress: has_ingress.then_some(ingress_rules),
        egress: has_egress.then_some(egress_rules),
    })
}

fn convert_rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    namespace: &str,
    field: &str,
    peers_field: &str,
) -> Result<Rule, ConvertError> {
    // An empty list means the same as an absent one: match all.
    let peers = match peers {
        None | Some([]) => None,
        Some(peers) => Some(
            peers
                .iter()
                .enumerate()
                .map(|(i, p)| peer(p, namespace, &format!("{field}.{peers_field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let ports = match ports {
        None | Some([]) => None,
        Some(ports) => Some(
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| port(p, &format!("{field}.ports[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Rule { peers, ports })
}

fn peer(peer: &NetworkPolicyPeer, namespace: &str, field: &str) -> Result<Peer, ConvertError> {
    if let Some(block) = &peer.ip_block {
        if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
            return Err(invalid(
                field,
                "ipBlock cannot be combined with podSelector or namespaceSelector",
            ));
        }
        return ip_block(block, &format!("{field}.ipBlock"));
    }
    let pods = label_selector(peer.pod_selector.as_ref(), &format!("{field}.podSelector"))?;
    let namespaces = match &peer.namespace_selector {
        Some(sel) => NamespaceMatch::Selector(label_selector(
            Some(sel),
            &format!("{field}.namespaceSelector"),
        )?),
        None if peer.pod_selector.is_some() => NamespaceMatch::Exactly(namespace.to_owned()),
        None => {
            return Err(invalid(
                field,
                "must specify one of podSelector, namespaceSelector or ipBlock",
            ));
        }
    };
    Ok(Peer::Pods { namespaces, pods })
}

fn ip_block(block: &networking::IPBlock, field: &str) -> Result<Peer, ConvertError> {
    let cidr = parse_cidr(&block.cidr, &format!("{field}.cidr"))?;
    let mut except = Vec::new();
    for (i, e) in block.except.iter().flatten().enumerate() {
        let e_field = format!("{field}.except[{i}]");
        let e = parse_cidr(e, &e_field)?;
        if !cidr.contains(&e) || e.prefix_len() <= cidr.prefix_len() {
            return Err(invalid(
                e_field,
                format!("{e} must be a strict subset of cidr {cidr}"),
            ));
        }
        except.push(e);
    }
    except.sort();
    except.dedup();
    Ok(Peer::IpBlock { cidr, except })
}

fn port(port: &NetworkPolicyPort, field: &str) -> Result<PortMatch, ConvertError> {
    let protocol = protocol(port.protocol.as_deref(), &format!("{field}.protocol"))?;
    match &port.port {
        None => {
            if port.end_port.is_some() {
                return Err(invalid(
                    format!("{field}.endPort"),
                    "may not be specified without port",
                ));
            }
            Ok(PortMatch::AllPorts(protocol))
        }
        Some(IntOrString::Int(first)) => {
            let first = port_number(*first, &format!("{field}.port"))?;
            let last = match port.end_port {
                None => first,
                Some(end) => {
                    let end = port_number(end, &format!("{field}.endPort"))?;
                    if end < first {
                        return Err(invalid(
                            format!("{field}.endPort"),
                            format!("{end} must be greater than or equal to port {first}"),
                        ));
                    }
                    end
                }
            };
            Ok(PortMatch::Range {
                protocol,
                first,
                last,
            })
        }
        Some(IntOrString::String(name)) => {
            if port.end_port.is_some() {
                return Err(invalid(
                    format!("{field}.endPort"),
                    "may not be specified with a named port",
                ));
            }
            if let Ok(number) = name.parse::<i32>() {
                // "80" as a string is how some tools write numeric ports.
                let number = port_number(number, &format!("{field}.port"))?;
                return Ok(PortMatch::Range {
                    protocol,
                    first: number,
                    last: number,
                });
            }
            if !is_port_name(name) {
                return Err(invalid(
                    format!("{field}.port"),
                    format!(
                        "{name:?} is not a valid port name (1-15 lowercase letters, digits and '-', with at least one letter)"
                    ),
                ));
            }
            Ok(PortMatch::Named {
                protocol,
                name: name.clone(),
            })
        }
    }
}

pub(crate) fn label_selector(
    selector: Option<&meta::LabelSelector>,
    field: &str,
) -> Result<LabelSelector, ConvertError> {
    let Some(selector) = selector else {
        return Ok(LabelSelector::default());
    };
    let mut requirements = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        requirements.push(Requirement::In {
            key: key.clone(),
            values: BTreeSet::from([value.clone()]),
        });
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("{field}.matchExpressions[{i}]");
        let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
        let key = expr.key.clone();
        if key.is_empty() {
            return Err(invalid(format!("{field}.key"), "required"));
        }
        let requirement = match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(invalid(
                    format!("{field}.values"),
                    format!("must be non-empty for operator {}", expr.operator),
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(invalid(
                    format!("{field}.values"),
                    format!("must be empty for operator {}", expr.operator),
                ));
            }
            "In" => Requirement::In { key, values },
            "NotIn" => Requirement::NotIn { key, values },
            "Exists" => Requirement::Exists { key },
            "DoesNotExist" => Requirement::DoesNotExist { key },
            other => {
                return Err(invalid(
                    format!("{field}.operator"),
                    format!(
                        "unsupported operator {other:?}: expected In, NotIn, Exists or DoesNotExist"
                    ),
                ));
            }
        };
        requirements.push(requirement);
    }
    requirements.sort();
    requirements.dedup();
    Ok(LabelSelector { requirements })
}
