//! The evaluation itself: which policies apply, tier by tier, rule by rule.

use std::{cmp::Ordering, collections::BTreeMap, net::IpAddr};

use k8s_openapi::{
    api::{core::v1::Pod, networking::v1::NetworkPolicy},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
};
use policy_agent::{
    calico::selector::Selector,
    cluster_policy::{
        ApiKind, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, PolicyTier, RuleAction,
        Subject,
    },
    model::{Protocol as ModelProtocol, selector::Requirement},
};

use super::{
    super::reference,
    resources::{
        ADMIN_TIER_ORDER, Action, BASELINE_TIER_ORDER, DEFAULT_TIER, EntityRule, HostEndpoint,
        Icmp as IcmpMatch, IpVersion, NetworkSet, Policy, Port as PortMatch, Rule,
        Service as ServiceMatch, TierAction,
    },
    trace::{
        ADMIN_TIER, BASELINE_TIER, DecidedBy, Decision, Direction, EndpointId, EndpointTrace,
        PolicyId, PolicyKind, PolicyTrace, RuleTrace, Side, TierEnd, TierTrace,
    },
    world::{CalicoWorld, DEFAULT_TIER_ORDER, Packet},
};

type Labels = BTreeMap<String, String>;

const KNP_ORDER: f64 = 1000.0;
const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";
const LABEL_NAME: &str = "projectcalico.org/name";

/// Calico's selector meaning, written independently of `Selector::evaluate`: `labels` belong
/// to something namespaced (`namespaced`) or not (for `global()`).
pub fn selector_matches(selector: &Selector, labels: &Labels, namespaced: bool) -> bool {
    let get = |key: &String| labels.get(key);
    match selector {
        Selector::All => true,
        Selector::Global => !namespaced,
        Selector::Equal { key, value } => get(key) == Some(value),
        Selector::NotEqual { key, value } => get(key) != Some(value),
        Selector::Has { key } => get(key).is_some(),
        Selector::In { key, values } => match get(key) {
            Some(v) => values.contains(v),
            None => false,
        },
        Selector::NotIn { key, values } => match get(key) {
            Some(v) => !values.contains(v),
            None => true,
        },
        Selector::Contains { key, value } => get(key).is_some_and(|v| v.contains(value.as_str())),
        Selector::StartsWith { key, value } => {
            get(key).is_some_and(|v| v.starts_with(value.as_str()))
        }
        Selector::EndsWith { key, value } => get(key).is_some_and(|v| v.ends_with(value.as_str())),
        Selector::Not(inner) => !selector_matches(inner, labels, namespaced),
        Selector::And(operands) => operands
            .iter()
            .all(|operand| selector_matches(operand, labels, namespaced)),
        Selector::Or(operands) => operands
            .iter()
            .any(|operand| selector_matches(operand, labels, namespaced)),
    }
}

/// The verdict on `packet` in `world`.
pub fn verdict(world: &CalicoWorld, packet: &Packet) -> Decision {
    let ctx = Ctx { world, packet };
    let egress = ctx.side(packet.src, packet.dst, Direction::Egress);
    let ingress = ctx.side(packet.dst, packet.src, Direction::Ingress);
    Decision {
        packet: *packet,
        allowed: egress.allowed() && ingress.allowed(),
        egress,
        ingress,
    }
}

struct Ctx<'a> {
    world: &'a CalicoWorld,
    packet: &'a Packet,
}

/// Something an address can belong to, for rule selectors.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Pod(&'a Pod),
    Set(&'a NetworkSet),
    Host(&'a HostEndpoint),
}

/// A policy applying to the endpoint, Calico's, a Kubernetes one or an administrators' one.
enum Source<'a> {
    Calico(&'a Policy),
    Kubernetes(&'a NetworkPolicy),
    Cluster(&'a ClusterPolicy),
}

struct Applying<'a> {
    id: PolicyId,
    tier: String,
    order: Option<f64>,
    source: Source<'a>,
}

struct TierInfo {
    name: String,
    order: Option<f64>,
    default_action: TierAction,
}

fn cmp_order(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl<'a> Ctx<'a> {
    /// One side: `own` is the endpoint's address, `peer` the other end.
    fn side(&self, own: IpAddr, peer: IpAddr, direction: Direction) -> Side {
        let Some(pod) = self.live_pod(own) else {
            return Side::NotAnEndpoint;
        };
        let endpoint = EndpointId {
            namespace: reference::namespace_of(&pod.metadata),
            name: pod.metadata.name.clone().unwrap_or_default(),
        };
        if self.world.node_addrs.contains(&peer) {
            return Side::NodeTraffic { endpoint };
        }
        Side::Evaluated(self.evaluate(pod, endpoint, direction))
    }

    fn evaluate(&self, pod: &'a Pod, endpoint: EndpointId, direction: Direction) -> EndpointTrace {
        let applying = self.applying(pod, direction);
        let mut tier_names: Vec<&str> = applying.iter().map(|a| a.tier.as_str()).collect();
        tier_names.sort_unstable();
        tier_names.dedup();
        let mut tiers: Vec<TierInfo> = tier_names.into_iter().map(|n| self.tier(n)).collect();
        tiers.sort_by(|a, b| cmp_order(a.order, b.order).then_with(|| a.name.cmp(&b.name)));

        let mut traces = Vec::new();
        for tier in tiers {
            let mut policies: Vec<&Applying> =
                applying.iter().filter(|a| a.tier == tier.name).collect();
            policies.sort_by(|a, b| {
                cmp_order(a.order, b.order).then_with(|| a.id.key().cmp(&b.id.key()))
            });
            let mut policy_traces = Vec::new();
            let mut end = None;
            for policy in policies {
                let mut rules = Vec::new();
                for (index, action, mismatch) in self.rules(policy, direction) {
                    rules.push(RuleTrace {
                        index,
                        action,
                        mismatch,
                    });
                    if mismatch.is_some() {
                        continue;
                    }
                    match action {
                        Action::Log => continue,
                        Action::Allow | Action::Deny => {
                            end = Some(TierEnd::Decided {
                                policy: policy.id.clone(),
                                rule: index,
                                action,
                            });
                        }
                        Action::Pass => {
                            end = Some(TierEnd::Passed {
                                policy: policy.id.clone(),
                                rule: index,
                            });
                        }
                    }
                    break;
                }
                policy_traces.push(PolicyTrace {
                    policy: policy.id.clone(),
                    order: policy.order,
                    rules,
                });
                if end.is_some() {
                    break;
                }
            }
            let end = end.unwrap_or(TierEnd::Default(tier.default_action));
            let decided = match &end {
                TierEnd::Decided {
                    policy,
                    rule,
                    action,
                } => Some((
                    *action == Action::Allow,
                    DecidedBy::Rule {
                        tier: tier.name.clone(),
                        policy: policy.clone(),
                        rule: *rule,
                        action: *action,
                    },
                )),
                TierEnd::Default(TierAction::Deny) => Some((
                    false,
                    DecidedBy::TierDefault {
                        tier: tier.name.clone(),
                    },
                )),
                TierEnd::Passed { .. } | TierEnd::Default(TierAction::Pass) => None,
            };
            traces.push(TierTrace {
                name: tier.name,
                order: tier.order,
                default_action: tier.default_action,
                policies: policy_traces,
                end,
            });
            if let Some((allowed, decided_by)) = decided {
                return EndpointTrace {
                    direction,
                    endpoint,
                    tiers: traces,
                    allowed,
                    decided_by,
                };
            }
        }
        EndpointTrace {
            direction,
            endpoint,
            tiers: traces,
            allowed: true,
            decided_by: DecidedBy::Profile,
        }
    }

    /// The tier named `name`: declared, the implicit `default`, or an undeclared one.
    fn tier(&self, name: &str) -> TierInfo {
        if let Some(tier) = self.world.tiers.iter().find(|t| t.name == name) {
            return TierInfo {
                name: tier.name.clone(),
                order: tier.order,
                default_action: tier.default_action,
            };
        }
        // Calico creates these tiers itself: administrators' tiers end in Pass, so a policy
        // there that decides nothing leaves the packet to the next tier.
        let (order, default_action) = match name {
            DEFAULT_TIER => (Some(DEFAULT_TIER_ORDER), TierAction::Deny),
            ADMIN_TIER => (Some(ADMIN_TIER_ORDER), TierAction::Pass),
            BASELINE_TIER => (Some(BASELINE_TIER_ORDER), TierAction::Pass),
            _ => (None, TierAction::Deny),
        };
        TierInfo {
            name: name.to_owned(),
            order,
            default_action,
        }
    }

    /// Every policy applying to `pod` in `direction`.
    fn applying(&self, pod: &'a Pod, direction: Direction) -> Vec<Applying<'a>> {
        let ns = reference::namespace_of(&pod.metadata);
        let labels = endpoint_labels(pod);
        let sa_labels = service_account_labels(&service_account(pod));
        let ns_labels = self.namespace_labels(&ns);
        let mut out = Vec::new();
        for policy in &self.world.policies {
            let types_ok = match direction {
                Direction::Ingress => policy.types.ingress,
                Direction::Egress => policy.types.egress,
            };
            let scope_ok = match &policy.namespace {
                Some(policy_ns) => *policy_ns == ns,
                None => {
                    !policy.pre_dnat
                        && !policy.do_not_track
                        && policy
                            .namespace_selector
                            .as_ref()
                            .is_none_or(|s| selector_matches(s, &ns_labels, true))
                }
            };
            let selected = selector_matches(&policy.selector, &labels, true)
                && policy
                    .service_account_selector
                    .as_ref()
                    .is_none_or(|s| selector_matches(s, &sa_labels, true));
            if types_ok && scope_ok && selected {
                out.push(Applying {
                    id: PolicyId {
                        kind: if policy.namespace.is_some() {
                            PolicyKind::NetworkPolicy
                        } else {
                            PolicyKind::GlobalNetworkPolicy
                        },
                        namespace: policy.namespace.clone(),
                        name: policy.name.clone(),
                    },
                    tier: policy.tier.clone(),
                    order: policy.order,
                    source: Source::Calico(policy),
                });
            }
        }
        for np in &self.world.k8s_policies {
            let spec = np.spec.as_ref();
            let types_ok = match direction {
                Direction::Ingress => reference::applies_to_ingress(np),
                Direction::Egress => reference::applies_to_egress(np),
            };
            let selected = reference::namespace_of(&np.metadata) == ns
                && reference::selector_matches(
                    spec.and_then(|s| s.pod_selector.as_ref()),
                    pod.metadata.labels.as_ref(),
                );
            if types_ok && selected {
                out.push(Applying {
                    id: PolicyId {
                        kind: PolicyKind::KubernetesNetworkPolicy,
                        namespace: Some(reference::namespace_of(&np.metadata)),
                        name: format!(
                            "knp.default.{}",
                            np.metadata.name.as_deref().unwrap_or_default()
                        ),
                    },
                    tier: DEFAULT_TIER.to_owned(),
                    order: Some(KNP_ORDER),
                    source: Source::Kubernetes(np),
                });
            }
        }
        for policy in &self.world.cluster_policies {
            // A policy without rules in a direction does not touch it.
            let has_rules = !cluster_rules(policy, direction).is_empty();
            if has_rules && self.cluster_subject_matches(&policy.subject, pod) {
                let baseline = policy.tier == PolicyTier::Baseline;
                out.push(Applying {
                    id: PolicyId {
                        kind: match policy.kind {
                            ApiKind::ClusterNetworkPolicy => {
                                PolicyKind::ClusterNetworkPolicy { baseline }
                            }
                            ApiKind::AdminNetworkPolicy => PolicyKind::AdminNetworkPolicy,
                            ApiKind::BaselineAdminNetworkPolicy => {
                                PolicyKind::BaselineAdminNetworkPolicy
                            }
                        },
                        namespace: None,
                        name: policy.name.clone(),
                    },
                    tier: if baseline { BASELINE_TIER } else { ADMIN_TIER }.to_owned(),
                    // Lower priorities first; equal ones by `PolicyId::key`.
                    order: Some(f64::from(policy.priority)),
                    source: Source::Cluster(policy),
                });
            }
        }
        out
    }

    // ---- Administrators' policy (network-policy-api), evaluated on the objects ----

    /// Whether `subject` selects `pod` (a live, non-host-network pod: only those are
    /// endpoints).
    fn cluster_subject_matches(&self, subject: &Subject, pod: &Pod) -> bool {
        let (namespaces, pods) = match subject {
            Subject::Namespaces(namespaces) => (namespaces, None),
            Subject::Pods { namespaces, pods } => (namespaces, Some(pods)),
        };
        self.pod_in(pod, namespaces, pods)
    }

    /// Whether `pod`'s namespace matches `namespaces` and its own labels `pods` (if any), by
    /// the Kubernetes model's selector matching.
    fn pod_in(
        &self,
        pod: &Pod,
        namespaces: &policy_agent::model::LabelSelector,
        pods: Option<&policy_agent::model::LabelSelector>,
    ) -> bool {
        let ns = reference::namespace_of(&pod.metadata);
        k8s_selector_matches(namespaces, &self.k8s_namespace_labels(&ns))
            && pods.is_none_or(|s| {
                k8s_selector_matches(s, &pod.metadata.labels.clone().unwrap_or_default())
            })
    }

    /// `(index, action, mismatch)` for each written rule of `policy` in `direction`: the
    /// peer is the packet's source for ingress and its destination for egress; ports are
    /// always the destination's.
    fn cluster_rules(
        &self,
        policy: &ClusterPolicy,
        direction: Direction,
    ) -> Vec<(usize, Action, Option<&'static str>)> {
        let p = self.packet;
        let (peer, peers_field) = match direction {
            Direction::Ingress => (p.src, "from"),
            Direction::Egress => (p.dst, "to"),
        };
        let ports_field = match policy.kind {
            ApiKind::ClusterNetworkPolicy => "protocols",
            ApiKind::AdminNetworkPolicy | ApiKind::BaselineAdminNetworkPolicy => "ports",
        };
        let peer_pod = self.live_pod(peer);
        cluster_rules(policy, direction)
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let action = match rule.action {
                    RuleAction::Accept => Action::Allow,
                    RuleAction::Deny => Action::Deny,
                    RuleAction::Pass => Action::Pass,
                };
                let mismatch = if !rule
                    .peers
                    .iter()
                    .any(|peer_match| self.cluster_peer_matches(peer_match, peer, peer_pod))
                {
                    Some(peers_field)
                } else if !self.cluster_ports_match(rule) {
                    Some(ports_field)
                } else {
                    None
                };
                (i, action, mismatch)
            })
            .collect()
    }

    /// `namespaces` and `pods` peers are pods (live, not host-network: `peer_pod`), and
    /// nothing else; `networks` are addresses, pods' included.
    fn cluster_peer_matches(
        &self,
        peer: &ClusterPeer,
        addr: IpAddr,
        peer_pod: Option<&Pod>,
    ) -> bool {
        match peer {
            ClusterPeer::Namespaces(namespaces) => {
                peer_pod.is_some_and(|pod| self.pod_in(pod, namespaces, None))
            }
            ClusterPeer::Pods { namespaces, pods } => {
                peer_pod.is_some_and(|pod| self.pod_in(pod, namespaces, Some(pods)))
            }
            ClusterPeer::Networks(nets) => nets.iter().any(|n| n.contains(&addr)),
        }
    }

    /// No ports: everything, ICMP included. Otherwise a packet with ports whose
    /// (protocol, destination port) is in a range, or is a container port of the live pod at
    /// the destination with that name (the container port's own protocol).
    fn cluster_ports_match(&self, rule: &ClusterRule) -> bool {
        let Some(ports) = &rule.ports else {
            return true;
        };
        let p = self.packet;
        ports.iter().any(|port| match port {
            ClusterPort::Range {
                protocol,
                first,
                last,
            } => protocol_number(*protocol) == p.protocol && (*first..=*last).contains(&p.dst_port),
            ClusterPort::Named(name) => self
                .live_pod(p.dst)
                .is_some_and(|pod| named_port(pod, name, p.protocol, p.dst_port)),
        })
    }

    /// `(index, action, mismatch)` for each rule of `policy` in `direction`.
    fn rules(
        &self,
        policy: &Applying<'a>,
        direction: Direction,
    ) -> Vec<(usize, Action, Option<&'static str>)> {
        match policy.source {
            Source::Calico(p) => {
                let rules = match direction {
                    Direction::Ingress => &p.ingress,
                    Direction::Egress => &p.egress,
                };
                rules
                    .iter()
                    .enumerate()
                    .map(|(i, rule)| {
                        (
                            i,
                            rule.action,
                            self.rule_mismatch(rule, p.namespace.as_deref()),
                        )
                    })
                    .collect()
            }
            Source::Kubernetes(np) => self.knp_rules(np, direction),
            Source::Cluster(cp) => self.cluster_rules(cp, direction),
        }
    }

    // ---- Calico rules ----

    /// The first field of `rule` that does not hold for the packet, or None when it matches.
    /// `policy_ns` is the namespace of a namespaced policy.
    fn rule_mismatch(&self, rule: &Rule, policy_ns: Option<&str>) -> Option<&'static str> {
        let p = self.packet;
        if let Some(version) = rule.ip_version {
            let family_ok = match version {
                IpVersion::V4 => p.src.is_ipv4(),
                IpVersion::V6 => p.src.is_ipv6(),
            };
            if !family_ok {
                return Some("ipVersion");
            }
        }
        if rule.protocol.is_some_and(|proto| proto != p.protocol) {
            return Some("protocol");
        }
        if rule.not_protocol.is_some_and(|proto| proto == p.protocol) {
            return Some("notProtocol");
        }
        if let Some(icmp) = &rule.icmp
            && !icmp_is_empty(icmp)
            && !self.icmp_matches(icmp)
        {
            return Some("icmp");
        }
        if let Some(icmp) = &rule.not_icmp
            && !icmp_is_empty(icmp)
            && self.icmp_matches(icmp)
        {
            return Some("notICMP");
        }
        let sides = [
            (&rule.source, p.src, p.src_port, SOURCE_FIELDS),
            (&rule.destination, p.dst, p.dst_port, DESTINATION_FIELDS),
        ];
        for (entity, addr, port, fields) in sides {
            if let Some(field) = self.entity_mismatch(entity, addr, port, policy_ns, fields) {
                return Some(field);
            }
        }
        None
    }

    fn icmp_matches(&self, icmp: &IcmpMatch) -> bool {
        let p = self.packet;
        if !p.is_icmp() {
            return false;
        }
        let Some(header) = p.icmp else {
            return false;
        };
        icmp.icmp_type.is_none_or(|t| t == header.icmp_type)
            && icmp.code.is_none_or(|c| c == header.code)
    }

    fn entity_mismatch(
        &self,
        entity: &EntityRule,
        addr: IpAddr,
        port: u16,
        policy_ns: Option<&str>,
        fields: &EntityFields,
    ) -> Option<&'static str> {
        if !entity.nets.is_empty() && !entity.nets.iter().any(|n| n.contains(&addr)) {
            return Some(fields.nets);
        }
        if entity.not_nets.iter().any(|n| n.contains(&addr)) {
            return Some(fields.not_nets);
        }
        if let Some(service) = &entity.services
            && !self.service_matches(service, addr, port, fields.destination)
        {
            return Some(fields.services);
        }
        let owners = self.owners(addr);
        if !self.positive_selector_holds(entity, &owners, policy_ns) {
            return Some(fields.selector);
        }
        if let Some(not_selector) = &entity.not_selector
            && owners.iter().any(|o| {
                let (labels, namespaced) = owner_labels(*o);
                selector_matches(not_selector, &labels, namespaced)
            })
        {
            return Some(fields.not_selector);
        }
        let any_port = |list: &[PortMatch]| list.iter().any(|m| self.port_matches(m, addr, port));
        // Neither `ports` nor `notPorts` matches a packet without ports.
        let ports_ok = self.packet.has_ports() && any_port(&entity.ports);
        if !entity.ports.is_empty() && !ports_ok {
            return Some(fields.ports);
        }
        let not_ports_ok = self.packet.has_ports() && !any_port(&entity.not_ports);
        if !entity.not_ports.is_empty() && !not_ports_ok {
            return Some(fields.not_ports);
        }
        None
    }

    /// libcalico-go's combined selector: `selector`, `serviceAccounts` and the namespace
    /// restriction, on one owner of the address.
    fn positive_selector_holds(
        &self,
        entity: &EntityRule,
        owners: &[Owner<'a>],
        policy_ns: Option<&str>,
    ) -> bool {
        let service_accounts = entity
            .service_accounts
            .as_ref()
            .filter(|m| !m.names.is_empty() || m.selector.is_some());
        let any_selector_field = entity.selector.is_some()
            || service_accounts.is_some()
            || entity.not_selector.is_some()
            || entity.namespace_selector.is_some();
        if !any_selector_field {
            return true;
        }
        // The namespace restriction applies whenever a selector field is set (and there is a
        // namespace selector or the policy is namespaced).
        let namespace_ok = |owner: Owner<'a>| -> bool {
            let owner_ns = owner_namespace(owner);
            match (&entity.namespace_selector, policy_ns) {
                (Some(Selector::Global), _) => owner_ns.is_none(),
                (Some(ns_selector), _) => owner_ns.is_some_and(|ns| {
                    selector_matches(ns_selector, &self.namespace_labels(&ns), true)
                }),
                (None, Some(policy_ns)) => owner_ns.as_deref() == Some(policy_ns),
                (None, None) => true,
            }
        };
        let has_positive = entity.selector.is_some()
            || service_accounts.is_some()
            || entity.namespace_selector.is_some()
            || policy_ns.is_some();
        if !has_positive {
            // A global policy's notSelector-only rule: no positive part.
            return true;
        }
        owners.iter().any(|&owner| {
            let (labels, namespaced) = owner_labels(owner);
            namespace_ok(owner)
                && entity
                    .selector
                    .as_ref()
                    .is_none_or(|s| selector_matches(s, &labels, namespaced))
                && service_accounts.is_none_or(|m| match owner {
                    Owner::Pod(pod) => {
                        let sa = service_account(pod);
                        (m.names.is_empty() || m.names.contains(&sa))
                            && m.selector.as_ref().is_none_or(|s| {
                                selector_matches(s, &service_account_labels(&sa), true)
                            })
                    }
                    Owner::Set(_) | Owner::Host(_) => false,
                })
        })
    }

    /// A `services` match, as Felix's service index builds its IP sets: the EndpointSlices
    /// in the match's namespace labelled `kubernetes.io/service-name: <name>` (the Service
    /// object is not consulted); every address of every endpoint (whatever its conditions)
    /// that parses as an IP; as a destination, only with a port of the same slice that has a
    /// number, its protocol (TCP unless UDP or SCTP) and number those of the packet.
    fn service_matches(
        &self,
        service: &ServiceMatch,
        addr: IpAddr,
        port: u16,
        destination: bool,
    ) -> bool {
        self.world.endpoint_slices.iter().any(|slice| {
            let meta = &slice.metadata;
            let labelled = meta
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|name| *name == service.name);
            if meta.namespace.as_deref().unwrap_or("default") != service.namespace || !labelled {
                return false;
            }
            let holds_addr = slice.endpoints.iter().any(|endpoint| {
                endpoint
                    .addresses
                    .iter()
                    .any(|a| a.parse::<IpAddr>().is_ok_and(|a| a == addr))
            });
            if !holds_addr {
                return false;
            }
            if !destination {
                return true;
            }
            slice.ports.iter().flatten().any(|p| {
                let protocol = match p.protocol.as_deref() {
                    Some("UDP") => 17,
                    Some("SCTP") => 132,
                    _ => 6,
                };
                p.port.is_some_and(|n| i64::from(n) == i64::from(port))
                    && protocol == self.packet.protocol
                    && self.packet.has_ports()
            })
        })
    }

    fn port_matches(&self, port_match: &PortMatch, addr: IpAddr, port: u16) -> bool {
        match port_match {
            PortMatch::Range { first, last } => (*first..=*last).contains(&port),
            PortMatch::Named(name) => {
                self.live_pod(addr)
                    .is_some_and(|pod| named_port(pod, name, self.packet.protocol, port))
                    || self.world.host_endpoints.iter().any(|host| {
                        host.expected_ips.contains(&addr)
                            && host.ports.iter().any(|p| {
                                p.name == *name
                                    && p.protocol == self.packet.protocol
                                    && p.port == port
                            })
                    })
            }
        }
    }

    /// The live pod and the network sets that `addr` belongs to.
    fn owners(&self, addr: IpAddr) -> Vec<Owner<'a>> {
        let mut owners: Vec<Owner<'a>> = self.live_pod(addr).map(Owner::Pod).into_iter().collect();
        owners.extend(
            self.world
                .network_sets
                .iter()
                .filter(|s| s.nets.iter().any(|n| n.contains(&addr)))
                .map(Owner::Set),
        );
        owners.extend(
            self.world
                .host_endpoints
                .iter()
                .filter(|h| h.expected_ips.contains(&addr))
                .map(Owner::Host),
        );
        owners
    }

    // ---- Kubernetes NetworkPolicy rules: matched by crate::reference itself ----

    fn knp_rules(
        &self,
        np: &NetworkPolicy,
        direction: Direction,
    ) -> Vec<(usize, Action, Option<&'static str>)> {
        let p = self.packet;
        let spec = np.spec.as_ref();
        let dst_pod = self.live_pod(p.dst);
        match direction {
            Direction::Ingress => {
                let src_pod = self.live_pod(p.src);
                spec.and_then(|s| s.ingress.as_ref())
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, rule)| {
                        let mismatch = if !reference::peers_match(
                            &self.world.namespaces,
                            rule.from.as_deref(),
                            np,
                            p.src,
                            src_pod,
                        ) {
                            Some("from")
                        } else if !reference::ports_match(
                            rule.ports.as_deref(),
                            &k8s_flow(p),
                            dst_pod,
                        ) {
                            Some("ports")
                        } else {
                            None
                        };
                        (i, Action::Allow, mismatch)
                    })
                    .collect()
            }
            Direction::Egress => spec
                .and_then(|s| s.egress.as_ref())
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, rule)| {
                    let mismatch = if !reference::peers_match(
                        &self.world.namespaces,
                        rule.to.as_deref(),
                        np,
                        p.dst,
                        dst_pod,
                    ) {
                        Some("to")
                    } else if !reference::ports_match(rule.ports.as_deref(), &k8s_flow(p), dst_pod)
                    {
                        Some("ports")
                    } else {
                        None
                    };
                    (i, Action::Allow, mismatch)
                })
                .collect(),
        }
    }

    fn live_pod(&self, ip: IpAddr) -> Option<&'a Pod> {
        reference::live_pod(&self.world.pods, ip)
    }

    /// A namespace's labels as Kubernetes selectors see them.
    fn k8s_namespace_labels(&self, name: &str) -> Labels {
        reference::namespace_labels(&self.world.namespaces, name)
    }

    /// A namespace's labels as Calico `namespaceSelector`s see them.
    fn namespace_labels(&self, name: &str) -> Labels {
        let mut labels = self.k8s_namespace_labels(name);
        labels.insert(LABEL_NAME.to_owned(), name.to_owned());
        labels
    }
}

/// The written rules of `policy` in `direction`.
fn cluster_rules(policy: &ClusterPolicy, direction: Direction) -> &[ClusterRule] {
    match direction {
        Direction::Ingress => &policy.ingress,
        Direction::Egress => &policy.egress,
    }
}

/// IANA numbers, written here rather than asked of the agent's model.
fn protocol_number(protocol: ModelProtocol) -> u8 {
    match protocol {
        ModelProtocol::Tcp => 6,
        ModelProtocol::Udp => 17,
        ModelProtocol::Sctp => 132,
    }
}

/// A validated label selector matched by [`crate::reference`]'s own Kubernetes selector
/// matching: its requirements are `matchExpressions` again (as validation read
/// `matchLabels` into `In` requirements), so that the model shares the Kubernetes model's
/// meaning of every operator rather than the agent's `LabelSelector::matches`.
fn k8s_selector_matches(
    selector: &policy_agent::model::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let expressions = selector
        .requirements
        .iter()
        .map(|requirement| {
            let (key, operator, values) = match requirement {
                Requirement::In { key, values } => (key, "In", Some(values)),
                Requirement::NotIn { key, values } => (key, "NotIn", Some(values)),
                Requirement::Exists { key } => (key, "Exists", None),
                Requirement::DoesNotExist { key } => (key, "DoesNotExist", None),
            };
            LabelSelectorRequirement {
                key: key.clone(),
                operator: operator.to_owned(),
                values: values.map(|v| v.iter().cloned().collect()),
            }
        })
        .collect();
    let selector = LabelSelector {
        match_labels: None,
        match_expressions: Some(expressions),
    };
    reference::selector_matches(Some(&selector), Some(labels))
}

/// Field names of one side of a rule, for the trace.
struct EntityFields {
    nets: &'static str,
    not_nets: &'static str,
    selector: &'static str,
    not_selector: &'static str,
    ports: &'static str,
    not_ports: &'static str,
    services: &'static str,
    /// The destination side: a `services` match there also matches the endpoints' ports.
    destination: bool,
}

const SOURCE_FIELDS: &EntityFields = &EntityFields {
    nets: "source.nets",
    not_nets: "source.notNets",
    selector: "source.selector",
    not_selector: "source.notSelector",
    ports: "source.ports",
    not_ports: "source.notPorts",
    services: "source.services",
    destination: false,
};

const DESTINATION_FIELDS: &EntityFields = &EntityFields {
    nets: "destination.nets",
    not_nets: "destination.notNets",
    selector: "destination.selector",
    not_selector: "destination.notSelector",
    ports: "destination.ports",
    not_ports: "destination.notPorts",
    services: "destination.services",
    destination: true,
};

fn icmp_is_empty(icmp: &IcmpMatch) -> bool {
    icmp.icmp_type.is_none() && icmp.code.is_none()
}

fn owner_namespace(owner: Owner<'_>) -> Option<String> {
    match owner {
        Owner::Pod(pod) => Some(reference::namespace_of(&pod.metadata)),
        Owner::Set(set) => set.namespace.clone(),
        Owner::Host(_) => None,
    }
}

/// The owner's labels for rule selectors, and whether it is namespaced.
fn owner_labels(owner: Owner<'_>) -> (Labels, bool) {
    match owner {
        Owner::Pod(pod) => (endpoint_labels(pod), true),
        Owner::Set(set) => {
            let mut labels = set.labels.clone();
            if let Some(ns) = &set.namespace {
                labels.insert(LABEL_NAMESPACE.to_owned(), ns.clone());
            }
            (labels, set.namespace.is_some())
        }
        Owner::Host(host) => (host.labels.clone(), false),
    }
}

/// A pod endpoint's labels: its own plus Calico's.
fn endpoint_labels(pod: &Pod) -> Labels {
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        LABEL_NAMESPACE.to_owned(),
        reference::namespace_of(&pod.metadata),
    );
    labels.insert(LABEL_ORCHESTRATOR.to_owned(), "k8s".to_owned());
    labels.insert(LABEL_SERVICE_ACCOUNT.to_owned(), service_account(pod));
    labels
}

fn service_account(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.service_account_name.as_deref())
        .or_else(|| spec.and_then(|s| s.service_account.as_deref()))
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned()
}

fn service_account_labels(name: &str) -> Labels {
    Labels::from([(LABEL_NAME.to_owned(), name.to_owned())])
}

fn protocol_name(protocol: u8) -> Option<&'static str> {
    match protocol {
        6 => Some("TCP"),
        17 => Some("UDP"),
        132 => Some("SCTP"),
        _ => None,
    }
}

/// The packet as the Kubernetes model sees it (a protocol without ports has no name there,
/// so no `ports` entry matches it).
fn k8s_flow(packet: &Packet) -> reference::Flow {
    reference::Flow {
        src: packet.src,
        dst: packet.dst,
        protocol: protocol_name(packet.protocol).unwrap_or(""),
        port: packet.dst_port,
    }
}

/// Whether `pod` has a container port named `name` with this protocol and number.
fn named_port(pod: &Pod, name: &str, protocol: u8, port: u16) -> bool {
    let Some(protocol) = protocol_name(protocol) else {
        return false;
    };
    pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
        c.ports.iter().flatten().any(|cp| {
            cp.name.as_deref() == Some(name)
                && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                && cp.container_port == i32::from(port)
        })
    })
}
