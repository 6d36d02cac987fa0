//! The ordered content of one endpoint direction: which tiers and policies apply, in which
//! order, and each rule with the endpoint's own side already decided.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;

use super::{
    CalicoContext, CalicoMatch, KubernetesMatch, KubernetesPeer, KubernetesPort, Matcher,
    OrderedContent, OrderedPolicy, OrderedRule, OrderedTier, PeerEntity, PortRule, ServiceAccounts,
    owners::{self, Owner},
    service_match,
};
use crate::{
    calico::{
        resources::{
            self as calico, Action, DEFAULT_TIER, EntityRule, HostEndpoint, IpVersion, Policy,
            TierAction, cmp_optional_order,
        },
        selector::Scope,
    },
    cluster_policy,
    compiler::{
        policy_name::{PolicyDirection, PolicyKind, PolicyName},
        relevance::{Relevance, model_protocol},
        views::named_port,
    },
    model::{Cluster, NetworkPolicy, Peer, Pod, PortMatch, Rule},
};

/// The order of the `default` tier when no Tier resource declares it (libcalico-go's
/// `DefaultTierOrder`).
const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;
/// Where Calico places Kubernetes NetworkPolicies in the `default` tier.
const KUBERNETES_POLICY_ORDER: f64 = 1000.0;

/// A policy that applies to the endpoint, before ordering.
struct Applying<'a> {
    tier: &'a str,
    order: Option<f64>,
    /// Felix's tie-breaker: `<namespace>/<name>` for namespaced policies, `<name>` for global
    /// ones (Kubernetes policies are `knp.default.<name>`).
    key: String,
    source: Source<'a>,
}

enum Source<'a> {
    Calico(&'a Policy),
    Kubernetes(&'a NetworkPolicy),
}

/// Whether a direction with these applying policies needs an ordered table: some Calico
/// policy applies, or the `default` tier passes (then even Kubernetes policies alone are not
/// Kubernetes' union).
fn needs_ordered(applying: &[Applying<'_>], cluster: &Cluster) -> bool {
    applying
        .iter()
        .any(|a| matches!(a.source, Source::Calico(_)))
        || (!applying.is_empty() && tier_default_action(cluster, DEFAULT_TIER) == TierAction::Pass)
}

/// The ordered content of `pod`'s `direction`, when it needs one.
pub fn build(
    pod: &Pod,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
) -> Option<OrderedContent> {
    let only_kubernetes_semantics = cluster.calico.policies.is_empty()
        && tier_default_action(cluster, DEFAULT_TIER) == TierAction::Deny;
    if only_kubernetes_semantics {
        return None;
    }
    let applying = applying(pod, cluster, direction);
    needs_ordered(&applying, cluster)
        .then(|| pod_content(pod, applying, cluster, relevance, context, direction))
}

/// The ordered content of `pod`'s `direction` even where Kubernetes policies alone apply
/// (`explain` walks every endpoint this way; for Kubernetes policies alone the walk gives
/// their union: the first allow in tier `default`, else its default Deny).
pub fn build_always(
    pod: &Pod,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
) -> OrderedContent {
    let applying = applying(pod, cluster, direction);
    pod_content(pod, applying, cluster, relevance, context, direction)
}

fn pod_content(
    pod: &Pod,
    applying: Vec<Applying<'_>>,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
) -> OrderedContent {
    let local = Local::pod(pod, cluster, context);
    OrderedContent {
        tiers: ordered_tiers(applying, cluster, relevance, &local, direction),
        profile_allows: true,
    }
}

/// Calico's built-in profile that allows everything: kube-controllers gives it to the
/// automatic host endpoints it creates, so that protecting a node does not cut its traffic.
pub const DEFAULT_ALLOW_PROFILE: &str = "projectcalico-default-allow";

/// The ordered content of a host endpoint's direction: Calico's failsafe ports first, then the
/// GlobalNetworkPolicies selecting it, and a deny when nothing decides (Calico's default for
/// host endpoints without an allowing policy), unless the host endpoint lists the
/// [`DEFAULT_ALLOW_PROFILE`], whose allow then decides. Other profiles name Profile resources,
/// which Palisade does not read: they change nothing.
pub fn build_host(
    host: &HostEndpoint,
    cluster: &Cluster,
    relevance: &Relevance,
    context: &CalicoContext,
    direction: PolicyDirection,
    failsafe: &[(u8, u16)],
) -> OrderedContent {
    let local = Local::host(host, context);
    let mut tiers = vec![failsafe_tier(&local, failsafe)];
    tiers.extend(ordered_tiers(
        applying_host(host, cluster, direction),
        cluster,
        relevance,
        &local,
        direction,
    ));
    OrderedContent {
        tiers,
        profile_allows: host.profiles.iter().any(|p| p == DEFAULT_ALLOW_PROFILE),
    }
}

/// Allow rules for the failsafe (protocol, port)s, in a tier that passes everything else.
fn failsafe_tier(local: &Local<'_>, failsafe: &[(u8, u16)]) -> OrderedTier {
    let has = [local.addrs[0].is_some(), local.addrs[1].is_some()];
    let rules = failsafe
        .iter()
        .enumerate()
        .map(|(index, (protocol, port))| OrderedRule {
            action: Action::Allow,
            index: rule_index(index),
            matcher: Matcher::Calico(Box::new(CalicoMatch {
                local_ok: has,
                protocol: Some(*protocol),
                not_protocol: None,
                icmp: None,
                not_icmp: None,
                peer: PeerEntity {
                    nets: Vec::new(),
                    not_nets: Vec::new(),
                    selector: None,
                    not_selector: None,
                    namespace_selector: None,
                    service_accounts: None,
                    policy_namespace: None,
                },
                ports: Some(vec![PortRule::Range {
                    first: *port,
                    last: *port,
                }]),
                not_ports: None,
                source_ports: None,
                not_source_ports: None,
            })),
        })
        .collect();
    OrderedTier {
        name: "failsafe".to_owned(),
        default_action: TierAction::Pass,
        policies: vec![OrderedPolicy {
            name: PolicyName {
                kind: PolicyKind::Failsafe,
                namespace: String::new(),
                name: "failsafe".to_owned(),
            },
            rules,
        }],
    }
}

/// Applying policies grouped into tiers, both in Calico's order.
fn ordered_tiers(
    mut applying: Vec<Applying<'_>>,
    cluster: &Cluster,
    relevance: &Relevance,
    local: &Local<'_>,
    direction: PolicyDirection,
) -> Vec<OrderedTier> {
    applying.sort_by(|a, b| cmp_optional_order(a.order, b.order).then_with(|| a.key.cmp(&b.key)));
    let mut by_tier: BTreeMap<&str, Vec<Applying<'_>>> = BTreeMap::new();
    for policy in applying {
        by_tier.entry(policy.tier).or_default().push(policy);
    }
    let mut tiers: Vec<(&str, Vec<Applying<'_>>)> = by_tier.into_iter().collect();
    tiers.sort_by(|(a, _), (b, _)| {
        cmp_optional_order(tier_order(cluster, a), tier_order(cluster, b)).then_with(|| a.cmp(b))
    });
    tiers
        .into_iter()
        .map(|(name, policies)| OrderedTier {
            name: name.to_owned(),
            default_action: tier_default_action(cluster, name),
            policies: policies
                .iter()
                .map(|policy| ordered_policy(policy, cluster, relevance, local, direction))
                .collect(),
        })
        .collect()
}

/// The GlobalNetworkPolicies applying to a host endpoint: selected by its labels (as a
/// global resource), with no `namespaceSelector` or `serviceAccountSelector` (a host endpoint
/// has neither a namespace nor a service account). `preDNAT`, `doNotTrack` and
/// `applyOnForward` policies apply too, to the host endpoint's own traffic.
fn applying_host<'a>(
    host: &HostEndpoint,
    cluster: &'a Cluster,
    direction: PolicyDirection,
) -> Vec<Applying<'a>> {
    cluster
        .calico
        .policies
        .values()
        .filter(|policy| {
            let types_ok = match direction {
                PolicyDirection::Ingress => policy.types.ingress,
                PolicyDirection::Egress => policy.types.egress,
            };
            types_ok
                && policy.namespace.is_none()
                && policy.namespace_selector.is_none()
                && policy.service_account_selector.is_none()
                && policy.selector.evaluate(&host.labels, Scope::GLOBAL)
        })
        .map(|policy| Applying {
            tier: &policy.tier,
            order: policy.order,
            key: policy.name.clone(),
            source: Source::Calico(policy),
        })
        .collect()
}

/// A tier's order: as declared, else the built-in tier's (Calico creates `default`,
/// `kube-admin` and `kube-baseline` itself; validation refuses other values for them).
fn tier_order(cluster: &Cluster, name: &str) -> Option<f64> {
    match cluster.calico.tiers.get(name) {
        Some(tier) => tier.order,
        None => builtin_tier(name).map(|(order, _)| order),
    }
}

fn tier_default_action(cluster: &Cluster, name: &str) -> TierAction {
    match cluster.calico.tiers.get(name) {
        Some(tier) => tier.default_action,
        None => builtin_tier(name).map_or(TierAction::Deny, |(_, action)| action),
    }
}

/// (order, default action) of Calico's built-in tiers.
pub fn builtin_tier(name: &str) -> Option<(f64, TierAction)> {
    match name {
        DEFAULT_TIER => Some((DEFAULT_TIER_ORDER, TierAction::Deny)),
        cluster_policy::ADMIN_TIER => Some((cluster_policy::ADMIN_TIER_ORDER, TierAction::Pass)),
        cluster_policy::BASELINE_TIER => {
            Some((cluster_policy::BASELINE_TIER_ORDER, TierAction::Pass))
        }
        _ => None,
    }
}

/// Every policy applying to `pod` in `direction`.
fn applying<'a>(pod: &Pod, cluster: &'a Cluster, direction: PolicyDirection) -> Vec<Applying<'a>> {
    let labels = owners::pod_labels(&pod.labels, &pod.namespace, &pod.service_account);
    let namespace_labels =
        owners::namespace_labels(cluster.namespace_labels(&pod.namespace), &pod.namespace);
    let account_labels = owners::service_account_labels(&pod.service_account);
    let mut out = Vec::new();
    for policy in cluster.calico.policies.values() {
        let types_ok = match direction {
            PolicyDirection::Ingress => policy.types.ingress,
            PolicyDirection::Egress => policy.types.egress,
        };
        let scope_ok = match &policy.namespace {
            Some(ns) => *ns == pod.namespace,
            // preDNAT and doNotTrack policies apply only to host endpoints.
            None => {
                !policy.pre_dnat
                    && !policy.do_not_track
                    && policy
                        .namespace_selector
                        .as_ref()
                        .is_none_or(|s| s.evaluate(&namespace_labels, Scope::NAMESPACED))
            }
        };
        let selected = policy.selector.evaluate(&labels, Scope::NAMESPACED)
            && policy
                .service_account_selector
                .as_ref()
                .is_none_or(|s| s.evaluate(&account_labels, Scope::NAMESPACED));
        if types_ok && scope_ok && selected {
            out.push(Applying {
                tier: &policy.tier,
                order: policy.order,
                key: match &policy.namespace {
                    Some(ns) => format!("{ns}/{}", policy.name),
                    None => policy.name.clone(),
                },
                source: Source::Calico(policy),
            });
        }
    }
    let in_namespace = cluster
        .policies
        .range((pod.namespace.clone(), String::new())..)
        .take_while(|((ns, _), _)| *ns == pod.namespace)
        .map(|(_, policy)| policy);
    for policy in in_namespace {
        let applies = match direction {
            PolicyDirection::Ingress => policy.ingress.is_some(),
            PolicyDirection::Egress => policy.egress.is_some(),
        };
        if applies && policy.pod_selector.matches(&pod.labels) {
            out.push(Applying {
                tier: DEFAULT_TIER,
                order: Some(KUBERNETES_POLICY_ORDER),
                key: format!("{}/knp.default.{}", policy.namespace, policy.name),
                source: Source::Kubernetes(policy),
            });
        }
    }
    out
}

/// The endpoint as its own side of a rule sees it.
struct Local<'a> {
    owner: LocalOwner<'a>,
    context: &'a CalicoContext,
    /// The endpoint's IPv4 and IPv6 address.
    addrs: [Option<IpAddr>; 2],
}

enum LocalOwner<'a> {
    Pod {
        pod: &'a Pod,
        labels: crate::model::Labels,
        namespace_labels: crate::model::Labels,
    },
    Host(&'a HostEndpoint),
}

impl<'a> Local<'a> {
    fn pod(pod: &'a Pod, cluster: &Cluster, context: &'a CalicoContext) -> Self {
        let family = |v6: bool| pod.ips.iter().copied().find(|ip| ip.is_ipv6() == v6);
        Local {
            owner: LocalOwner::Pod {
                pod,
                labels: owners::pod_labels(&pod.labels, &pod.namespace, &pod.service_account),
                namespace_labels: owners::namespace_labels(
                    cluster.namespace_labels(&pod.namespace),
                    &pod.namespace,
                ),
            },
            context,
            addrs: [family(false), family(true)],
        }
    }

    fn host(host: &'a HostEndpoint, context: &'a CalicoContext) -> Self {
        let family = |v6: bool| {
            host.expected_ips
                .iter()
                .copied()
                .find(|ip| ip.is_ipv6() == v6)
        };
        Local {
            owner: LocalOwner::Host(host),
            context,
            addrs: [family(false), family(true)],
        }
    }

    /// Whether the endpoint side of a rule holds for the endpoint's address of each family.
    fn holds(&self, entity: &PeerEntity, ip_version: Option<IpVersion>) -> [bool; 2] {
        [false, true].map(|v6| {
            let version_ok = match ip_version {
                None => true,
                Some(IpVersion::V4) => !v6,
                Some(IpVersion::V6) => v6,
            };
            let Some(addr) = self.addrs[usize::from(v6)] else {
                return false;
            };
            let mut owners = vec![match &self.owner {
                LocalOwner::Pod {
                    pod,
                    labels,
                    namespace_labels,
                } => Owner::Pod {
                    labels,
                    namespace: &pod.namespace,
                    namespace_labels,
                    service_account: &pod.service_account,
                },
                LocalOwner::Host(host) => Owner::Host {
                    labels: &host.labels,
                },
            }];
            owners.extend(owners::set_owners_by_address(self.context, addr));
            version_ok && owners::entity_holds(entity, |(net, _)| net.contains(&addr), &owners)
        })
    }

    /// The number of the endpoint's own port called `name` for `protocol`.
    fn named_port(&self, protocol: crate::model::Protocol, name: &str) -> Option<u16> {
        match &self.owner {
            LocalOwner::Pod { pod, .. } => named_port(pod, protocol, name),
            LocalOwner::Host(host) => host
                .ports
                .iter()
                .find(|p| p.name == name && p.protocol.0 == protocol.number())
                .map(|p| p.port),
        }
    }

    /// A named port on the endpoint itself, for each protocol the rule can match.
    fn named(&self, protocol: Option<calico::Protocol>, name: &str) -> Vec<PortRule> {
        let protocols = match protocol {
            Some(p) => model_protocol(p).into_iter().collect(),
            None => vec![
                crate::model::Protocol::Tcp,
                crate::model::Protocol::Udp,
                crate::model::Protocol::Sctp,
            ],
        };
        protocols
            .into_iter()
            .filter_map(|p| {
                self.named_port(p, name).map(|port| PortRule::Exact {
                    protocol: p.number(),
                    port,
                })
            })
            .collect()
    }
}

fn ordered_policy(
    policy: &Applying<'_>,
    cluster: &Cluster,
    relevance: &Relevance,
    local: &Local<'_>,
    direction: PolicyDirection,
) -> OrderedPolicy {
    match policy.source {
        Source::Calico(calico_policy) => {
            let rules = match direction {
                PolicyDirection::Ingress => &calico_policy.ingress,
                PolicyDirection::Egress => &calico_policy.egress,
            };
            // An administrators' policy is named as written, and its rules by their written
            // position (one written rule is several Calico rules).
            let origin = cluster_policy::origin_of(&calico_policy.name);
            let name = match origin {
                Some((kind, _, name)) => PolicyName {
                    kind: PolicyKind::Cluster(kind),
                    namespace: String::new(),
                    name: name.to_owned(),
                },
                None => PolicyName {
                    kind: if calico_policy.namespace.is_some() {
                        PolicyKind::CalicoNetworkPolicy
                    } else {
                        PolicyKind::GlobalNetworkPolicy
                    },
                    namespace: calico_policy.namespace.clone().unwrap_or_default(),
                    name: calico_policy.name.clone(),
                },
            };
            OrderedPolicy {
                name,
                rules: rules
                    .iter()
                    .enumerate()
                    .flat_map(|(index, rule)| {
                        let index = match origin {
                            Some(_) => {
                                cluster_policy::translate::written_index(rule).unwrap_or(index)
                            }
                            None => index,
                        };
                        let matched = calico_match(
                            rule,
                            calico_policy.namespace.as_deref(),
                            relevance,
                            local,
                            direction,
                        );
                        service_matches(rule, matched, cluster, relevance, direction)
                            .into_iter()
                            .map(move |matcher| OrderedRule {
                                action: rule.action,
                                index: rule_index(index),
                                matcher: Matcher::Calico(Box::new(matcher)),
                            })
                    })
                    .collect(),
            }
        }
        Source::Kubernetes(np) => {
            let rules = match direction {
                PolicyDirection::Ingress => np.ingress.as_deref(),
                PolicyDirection::Egress => np.egress.as_deref(),
            };
            OrderedPolicy {
                name: PolicyName {
                    kind: PolicyKind::Kubernetes,
                    namespace: np.namespace.clone(),
                    name: np.name.clone(),
                },
                rules: rules
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| OrderedRule {
                        action: Action::Allow,
                        index: rule_index(index),
                        matcher: Matcher::Kubernetes(kubernetes_match(
                            rule, local, relevance, direction,
                        )),
                    })
                    .collect(),
            }
        }
    }
}

fn rule_index(index: usize) -> u16 {
    u16::try_from(index).unwrap_or(u16::MAX).min(0xfffe)
}

fn calico_match(
    rule: &calico::Rule,
    policy_namespace: Option<&str>,
    relevance: &Relevance,
    local: &Local<'_>,
    direction: PolicyDirection,
) -> CalicoMatch {
    let (local_side, peer_side) = match direction {
        PolicyDirection::Ingress => (&rule.destination, &rule.source),
        PolicyDirection::Egress => (&rule.source, &rule.destination),
    };
    let entity = |side: &EntityRule| PeerEntity {
        nets: blocks(&side.nets, relevance),
        not_nets: blocks(&side.not_nets, relevance),
        selector: side.selector.clone(),
        not_selector: side.not_selector.clone(),
        namespace_selector: side.namespace_selector.clone(),
        service_accounts: side
            .service_accounts
            .as_ref()
            .filter(|m| !m.names.is_empty() || m.selector.is_some())
            .map(|m| ServiceAccounts {
                names: m.names.clone(),
                selector: m.selector.clone(),
            }),
        policy_namespace: policy_namespace.map(str::to_owned),
    };
    let protocol = rule.protocol.map(|p| p.0);
    // Destination ports: the endpoint's own for ingress (named ports resolve on it), the
    // peer's for egress (named ports resolve per pod identity). Source ports the other way
    // round.
    let ports = |list: &[calico::PortMatch], local_side: bool| -> Option<Vec<PortRule>> {
        if list.is_empty() {
            return None;
        }
        Some(
            list.iter()
                .flat_map(|entry| -> Vec<PortRule> {
                    match entry {
                        calico::PortMatch::Range { first, last } => vec![PortRule::Range {
                            first: *first,
                            last: *last,
                        }],
                        calico::PortMatch::Named(name) if local_side => {
                            local.named(rule.protocol, name)
                        }
                        calico::PortMatch::Named(name) => vec![PortRule::PeerNamed(name.clone())],
                    }
                })
                .collect(),
        )
    };
    CalicoMatch {
        local_ok: local.holds(&entity(local_side), rule.ip_version),
        protocol,
        not_protocol: rule.not_protocol.map(|p| p.0),
        icmp: rule.icmp.and_then(|m| m.icmp_type.map(|t| (t, m.code))),
        not_icmp: rule.not_icmp.and_then(|m| m.icmp_type.map(|t| (t, m.code))),
        peer: entity(peer_side),
        ports: ports(
            &rule.destination.ports,
            direction == PolicyDirection::Ingress,
        ),
        not_ports: ports(
            &rule.destination.not_ports,
            direction == PolicyDirection::Ingress,
        ),
        source_ports: ports(&rule.source.ports, direction == PolicyDirection::Egress),
        not_source_ports: ports(&rule.source.not_ports, direction == PolicyDirection::Egress),
    }
}

/// A rule whose peer side matches a Service, as the rules it amounts to: the peer's `nets`
/// become the Service's endpoint addresses; for a destination, one rule per set of slice
/// ports, each matching its addresses with its (protocol, port) pairs. A Service without
/// endpoints (or, as a destination, without endpoint ports) matches nothing: no rule. Those
/// rules have the rule's action and index, so that the first to match decides as the rule
/// would. A rule without `services` is itself.
fn service_matches(
    rule: &calico::Rule,
    matched: CalicoMatch,
    cluster: &Cluster,
    relevance: &Relevance,
    direction: PolicyDirection,
) -> Vec<CalicoMatch> {
    let (local_side, peer_side) = match direction {
        PolicyDirection::Ingress => (&rule.destination, &rule.source),
        PolicyDirection::Egress => (&rule.source, &rule.destination),
    };
    // Validation refuses `services` on the endpoint's own side; a rule built by hand with
    // one there is not enforced loosely: it matches nothing.
    if local_side.services.is_some() {
        return Vec::new();
    }
    let Some(service) = &peer_side.services else {
        return vec![matched];
    };
    let nets = |addrs: &mut dyn Iterator<Item = IpAddr>| -> Vec<(IpNet, usize)> {
        let nets: Vec<IpNet> = addrs.map(IpNet::from).collect();
        blocks(&nets, relevance)
    };
    match direction {
        // Source addresses only (Felix's `svcnoport` IP set); the rule's own source ports
        // still apply.
        PolicyDirection::Ingress => {
            let addrs = service_match::addresses(cluster, service);
            if addrs.is_empty() {
                return Vec::new();
            }
            let mut only = matched;
            only.peer.nets = nets(&mut addrs.into_iter());
            vec![only]
        }
        // (address, protocol, port): validation leaves the rule no destination ports.
        PolicyDirection::Egress => service_match::endpoint_groups(cluster, service)
            .into_iter()
            .filter(|(ports, _)| !ports.is_empty())
            .map(|(ports, addrs)| {
                let mut one = matched.clone();
                one.peer.nets = nets(&mut addrs.into_iter());
                one.ports = Some(
                    ports
                        .into_iter()
                        .map(|(protocol, port)| PortRule::Exact { protocol, port })
                        .collect(),
                );
                one.not_ports = None;
                one
            })
            .collect(),
    }
}

fn blocks(nets: &[IpNet], relevance: &Relevance) -> Vec<(IpNet, usize)> {
    nets.iter()
        .map(|net| {
            let net = net.trunc();
            // Every peer-side net is a block (see `Relevance::numbered_after`); an endpoint-side net that
            // is not is only ever matched by address.
            (net, relevance.block_index(&net, &[]).unwrap_or(usize::MAX))
        })
        .collect()
}

fn kubernetes_match(
    rule: &Rule,
    local: &Local<'_>,
    relevance: &Relevance,
    direction: PolicyDirection,
) -> KubernetesMatch {
    let peers = rule.peers.as_ref().map(|peers| {
        peers
            .iter()
            .map(|peer| match peer {
                Peer::Pods { namespaces, pods } => KubernetesPeer::Pods {
                    namespaces: namespaces.clone(),
                    pods: pods.clone(),
                },
                Peer::IpBlock { cidr, except } => {
                    KubernetesPeer::Block(relevance.block_index(cidr, except).unwrap_or(usize::MAX))
                }
            })
            .collect()
    });
    let ports = rule.ports.as_ref().map(|ports| {
        ports
            .iter()
            .filter_map(|port| match port {
                PortMatch::AllPorts(protocol) => Some(KubernetesPort::Range {
                    protocol: protocol.number(),
                    first: 0,
                    last: u16::MAX,
                }),
                PortMatch::Range {
                    protocol,
                    first,
                    last,
                } => Some(KubernetesPort::Range {
                    protocol: protocol.number(),
                    first: *first,
                    last: *last,
                }),
                PortMatch::Named { protocol, name } => match direction {
                    PolicyDirection::Ingress => {
                        local
                            .named_port(*protocol, name)
                            .map(|port| KubernetesPort::Range {
                                protocol: protocol.number(),
                                first: port,
                                last: port,
                            })
                    }
                    PolicyDirection::Egress => Some(KubernetesPort::PeerNamed {
                        protocol: protocol.number(),
                        name: name.clone(),
                    }),
                },
            })
            .collect()
    });
    KubernetesMatch { peers, ports }
}
