//! The Calico reference model: Calico's ordered, tiered policy semantics evaluated directly on
//! the v3 resources as written (read by the model itself, [`resources`], with Calico's defaults
//! applied there), the Kubernetes API objects and the validated network-policy-api objects
//! ([`ClusterPolicy`](policy_agent::cluster_policy::ClusterPolicy)), one packet at a time, with
//! a trace of every tier, policy and rule consulted.
//!
//! # What it shares with the agent
//!
//! Of the agent's Calico code the model shares **only the selector parser**
//! ([`Selector::parse`](policy_agent::calico::selector::Selector::parse) and its AST). The
//! agent's validation (`policy_agent::calico::resources::parse_documents`) is asked only
//! whether a resource is valid; the model never reads the values it produces, because
//! validation also *defaults* (`types` from the rules present, the `default` tier, the
//! namespace, a Service's namespace, the built-in tiers' order and action), and a defaulting
//! bug read by both sides would be invisible to `compiler_vs_calico_model`. The model applies
//! those defaults itself, from Calico's API reference ([`resources`] lists them).
//!
//! Like [`crate::reference`] it is a test oracle: brute force, obviously right rather than fast,
//! sharing no code with the agent's compiler or `policy_agent::model` (only the data types a
//! `ClusterPolicy` is made of, never their functions). It evaluates selectors
//! with its own small recursive evaluator over the
//! [`Selector`](policy_agent::calico::selector::Selector) AST (never
//! `Selector::evaluate`), so that a bug in either shows up as a disagreement. Kubernetes
//! NetworkPolicies (which pods a policy selects, which types it has, whether a rule's peers and
//! ports match) are matched by [`crate::reference`]'s own functions, so the two oracles cannot
//! drift apart on Kubernetes semantics; a property test holds the two models to the same
//! verdicts on worlds with only Kubernetes policies, which checks the tier placement around
//! them.
//!
//! # Semantics, and where each choice comes from
//!
//! Sources: the Calico v3 resource reference (Tier, GlobalNetworkPolicy, NetworkPolicy,
//! GlobalNetworkSet, NetworkSet), "Get started with policy tiers", "Calico automatic labels",
//! and, where the docs are silent, libcalico-go (the v3→v1 rule conversion in
//! `updateprocessors/rules.go`, the built-in tiers created at start-up) and Felix (the policy
//! sorter). Items marked *(choice)* are this model's decisions where those were silent or
//! unclear; a compiler is held to them.
//!
//! ## Endpoints and the verdict
//! * Traffic is allowed when the source endpoint's egress and the destination endpoint's
//!   ingress both allow it. An address owned by no live pod (running or pending, not
//!   host-network, holding the address in `status.podIPs`/`podIP`) is not an endpoint: that side
//!   is not checked (as in [`crate::reference`]).
//! * Traffic between a pod and a node address (`node_addrs`) is always allowed on the pod's side
//!   (as in [`crate::reference`]; Calico's default `DefaultEndpointToHostAction` and host
//!   reachability for kubelet probes). *(choice: any node address, not only the pod's own node,
//!   mirroring the Kubernetes model.)*
//! * Enforcement on host endpoints, preDNAT and doNotTrack policies are out of scope: a
//!   `HostEndpoint` is never an endpoint here (no side is checked at its addresses), and a
//!   GlobalNetworkPolicy with `preDNAT` or `doNotTrack` never applies to a pod (Calico applies
//!   those only to host endpoints). A host endpoint is a *peer* though: see Labels.
//!
//! ## Labels
//! * A pod endpoint's labels are its own labels plus the ones Calico adds (overriding any user
//!   label of the same key): `projectcalico.org/namespace: <ns>`,
//!   `projectcalico.org/orchestrator: k8s` and `projectcalico.org/serviceaccount: <sa>`.
//!   *(choice: the service-account label is what libcalico-go's conversion adds and what its
//!   `serviceAccounts.names` translation selects on; the brief listed only the first two.)*
//! * A pod's service account is `spec.serviceAccountName`, else the deprecated
//!   `spec.serviceAccount`, else `default` (what the API server's admission fills in).
//!   *(choice)*
//! * A service account's labels are taken to be only `projectcalico.org/name: <sa name>`: the
//!   model has no ServiceAccount objects. *(choice)*
//! * A namespace's labels are its own plus `projectcalico.org/name: <ns>` (Calico automatic
//!   labels) and `kubernetes.io/metadata.name: <ns>` (set by the API server); a namespace with
//!   no object in the world has only those two.
//! * A host endpoint owns its `expectedIPs`, with its own labels, outside every namespace (like
//!   a GlobalNetworkSet): rule selectors match it (libcalico-go selects host endpoints as well
//!   as workloads and network sets), `namespaceSelector: global()` included, `serviceAccounts`
//!   never. A rule naming a port of the peer resolves it on the host endpoint's named `ports`
//!   as on a pod's container ports (Felix's named-port IP sets hold both).
//! * A network set's labels are its own; a namespaced NetworkSet also carries
//!   `projectcalico.org/namespace: <ns>` (which libcalico-go's namespace restriction,
//!   `projectcalico.org/namespace == '<ns>'`, relies on). *(choice)*
//!
//! ## Which policies apply to an endpoint, in which order
//! * A GlobalNetworkPolicy applies when its `selector` matches the endpoint's labels, its
//!   `namespaceSelector` (if set) matches the endpoint's namespace's labels, its
//!   `serviceAccountSelector` (if set) matches the service account's labels, and its `types`
//!   include the direction. A namespaced Calico NetworkPolicy: same, restricted to its own
//!   namespace (it has no `namespaceSelector`).
//! * A Kubernetes NetworkPolicy is placed as Calico places it: tier `default`, order 1000,
//!   name `knp.default.<name>`, in its namespace; it applies to pods of its namespace whose
//!   labels match `podSelector`; its types default as upstream (Ingress always, Egress when it
//!   has egress rules); its rules are Allow rules matched with Kubernetes semantics (by
//!   [`crate::reference`]'s functions); its rule `i` is reported as `ingress[i]`/`egress[i]`.
//! * Tiers are sorted by `order` ascending, an omitted order after every number, ties by name.
//!   The `default` tier exists even when not declared; undeclared it has order 1 000 000 and
//!   defaultAction Deny (libcalico-go creates it with `DefaultTierOrder = 1_000_000` and Deny;
//!   the v3 API pins both). A declared `default` Tier resource is used as declared. A policy
//!   naming a tier that is not declared (Calico refuses to create one) is put in a tier of that
//!   name with no order and defaultAction Deny. *(choice)*
//! * Inside a tier, policies are sorted by `order` (omitted last), ties broken by Felix's
//!   policy key name: `<namespace>/<name>` for namespaced policies (Calico and Kubernetes),
//!   `<name>` for global ones (Felix `PolicyByOrder` compares `Key.Name`, and libcalico-go
//!   names a namespaced policy's key `<namespace>/<name>`). *(choice: recent Calico versions
//!   may key policies differently; within one namespace, or among global policies, this is
//!   plain name order.)*
//!
//! ## Evaluation
//! * A tier with no policy applying to the endpoint in the direction is skipped. In an applying
//!   tier, policies in order, rules in order: the first matching `Allow` allows, `Deny` denies,
//!   `Pass` ends the tier (go to the next applying tier), `Log` is recorded in the trace and
//!   evaluation continues. A tier where no rule decided or passed ends with its
//!   `defaultAction`: Deny denies, Pass goes to the next applying tier.
//! * When no tier applies, or the last applying tier passed, the endpoint's profiles decide:
//!   for a Kubernetes pod that is Calico's per-namespace `kns.<ns>` profile, which allows.
//!
//! ## Rule matching
//! A rule matches when every field it sets holds:
//! * `ipVersion`: the packet's family. `protocol`/`notProtocol`: the packet's protocol number.
//! * `icmp`: the packet is ICMP of its family (1 for IPv4, 58 for IPv6) with ICMP type (and
//!   code, when the rule sets one) equal. `notICMP`: the packet is not an ICMP packet with that
//!   type (and code); a non-ICMP packet satisfies it. *(choice: Calico validation requires
//!   `protocol: ICMP/ICMPv6` with either, so this only matters for hand-built rules.)* An empty
//!   `icmp: {}` constrains nothing. An ICMP packet without a type (`icmp: None` in [`Packet`])
//!   matches no typed `icmp` and satisfies every `notICMP`.
//! * `source.*` constrain the packet's source address and port, `destination.*` its destination
//!   address and port, in either direction (the rule's direction only picks which endpoint's
//!   policy it is in).
//! * `nets`: some CIDR contains the address; `notNets`: none does.
//! * `ports`: the packet's protocol has ports (TCP, UDP, SCTP, UDPLite) and some entry holds: a
//!   range contains the port, or a named port is a container port of the live pod owning the
//!   address, with that name, the packet's protocol (a container port's protocol defaults to
//!   TCP) and the packet's port. A named port never matches an address that is not a live pod.
//!   `notPorts`: the packet's protocol has ports and no entry holds. *(choice: a rule with
//!   `ports` or `notPorts` never matches a packet without ports; Calico validation requires a
//!   port-carrying `protocol` with either.)* Named ports are resolved independently of the
//!   rule's selector. *(choice; they only differ when an address is both a pod's and in a
//!   network set.)*
//! * Selectors, following libcalico-go's `getEndpointSelector`. The *owners* of an address are
//!   the live pod holding it (if any) and every network set with a CIDR containing it. The
//!   positive part of an entity rule holds when some owner satisfies all of:
//!   - `selector` on the owner's labels (global network sets evaluate with `global()` true);
//!   - `serviceAccounts` (when it sets names or a selector): the owner is a pod whose service
//!     account is among `names` (if any) and whose labels match `selector` (if any);
//!   - the namespace restriction, which applies only when the rule sets `selector`,
//!     `serviceAccounts`, `notSelector` or `namespaceSelector`: with `namespaceSelector:
//!     global()`, the owner is not namespaced (a global network set); with another
//!     `namespaceSelector`, the owner is namespaced and its namespace's labels match (so
//!     `all()` is every namespaced owner); without one, in a namespaced policy (Calico or
//!     Kubernetes-derived) the owner is in the policy's namespace, in a global policy there is
//!     no restriction (namespaced and global owners alike). *(choice: libcalico-go evaluates
//!     a non-`global()` namespaceSelector as `pcns.`-prefixed labels on the owner, so a
//!     negative one such as `!has(team)` would also hold for a global network set there; the
//!     model follows the documented meaning, "owners in the selected namespaces".)*
//!
//!   A rule that sets none of those four fields has no positive part: it matches any address,
//!   endpoint or not. `notSelector` holds when no owner's labels match it; it is *not*
//!   namespace-restricted (libcalico-go passes it through unchanged), but in a namespaced policy
//!   its presence alone adds the namespace restriction to the positive part, so a namespaced
//!   policy's `notSelector`-only rule matches only owners in its own namespace.

//!
//! ## Staged policies and the pending verdict
//! Source: the Calico v3 reference (StagedGlobalNetworkPolicy, StagedNetworkPolicy,
//! StagedKubernetesNetworkPolicy) and libcalico-go's `ConvertStagedPolicyToEnforced`.
//! Staged policies are read by the model ([`resources`]) and kept apart
//! ([`CalicoWorld::staged`]): [`CalicoWorld::verdict`] never looks at them. Whether one is
//! valid is asked of the agent (`policy_agent::model::staged::parse_value`), as for the other
//! Calico resources; what it means is read from the YAML by the model.
//! [`CalicoWorld::pending`] is the world with every staged change applied, the one the
//! *pending* verdict is given on:
//! * `stagedAction` omitted or `Set`: the policy, read as its enforced kind with that kind's
//!   defaults, takes the place of the enforced policy of the same kind, namespace and name, or
//!   is added beside the others. A StagedKubernetesNetworkPolicy stages a networking.k8s.io/v1
//!   NetworkPolicy, evaluated as every Kubernetes NetworkPolicy is here (tier `default`,
//!   order 1000).
//! * `Delete`: the enforced policy of that kind, namespace and name is taken away (nothing
//!   happens when there is none); the staged spec's `tier` is not part of the identity.
//! * Kinds never meet: a StagedNetworkPolicy changes no Kubernetes NetworkPolicy of the same
//!   namespace and name, nor a StagedGlobalNetworkPolicy a namespaced one.
//!
//! ## Administrators' policy (network-policy-api)
//! Source: the network-policy-api v1alpha2 API reference (ClusterNetworkPolicy) and v1alpha1
//! (AdminNetworkPolicy, BaselineAdminNetworkPolicy); where they leave placement among
//! Calico's own tiers open, Calico 3.32's built-in tiers. The objects are read through the
//! agent's validation (`policy_agent::cluster_policy::parse_value`: which objects are valid
//! is not this model's question) and evaluated as written: never through their Calico
//! translation (`translate.rs`) or any function of the agent's compiler or model (only the
//! data types `ClusterPolicy` is made of: its selectors' requirements, its protocols).
//! * Tiers: Admin policies are in tier `kube-admin` (order 1,000, so before the `default`
//!   tier at 1,000,000 that holds NetworkPolicies), Baseline ones in `kube-baseline` (order
//!   10,000,000); both end in Pass. Calico policies may live in them too, and the tier walk
//!   above decides everything: without Calico resources that is "Admin, then NetworkPolicy
//!   (a selected pod is allowed or denied there, by the `default` tier's Deny), then Baseline,
//!   then allow". A Tier resource of either name can only repeat these values.
//! * Order in a tier: `priority` ascending (a BaselineAdminNetworkPolicy has 0), then the
//!   name Calico gives the translation, Felix's tie-break: `kanp.adminnetworkpolicy.<name>`
//!   < `kbanp.baselineadminnetworkpolicy.<name>` < `kcnp.<tier>.<name>` (so at equal
//!   priorities an AdminNetworkPolicy comes before a ClusterNetworkPolicy, then by name; the
//!   API leaves this open). *(choice, as Calico does)*
//! * A policy applies to a direction only when it has rules in it, and to the live pods
//!   (never host-network ones) of the namespaces its subject's namespace selector matches
//!   (and, for `pods`, whose labels the pod selector matches). Rules in written order: the
//!   first whose peers and ports match decides; Accept/Allow allows, Deny denies, Pass ends
//!   the tier.
//! * Label selectors are matched by [`crate::reference`]'s Kubernetes selector matching on
//!   the objects' own labels (a namespace's plus `kubernetes.io/metadata.name`), not on
//!   Calico's endpoint labels.
//! * Peers: `namespaces` are the live, non-host-network pods of matching namespaces; `pods`
//!   those whose labels match too; `networks` every address in the CIDRs, pods' included.
//!   The peer is the packet's source for ingress, its destination for egress.
//! * Ports: none means every protocol and port, ICMP included; otherwise the packet must
//!   have ports and match one entry: a (protocol, port range), or a named port, which is a
//!   container port of the live pod at the destination address with that name, its own
//!   protocol and number (never a non-pod destination).

mod eval;
pub mod resources;
mod trace;
mod world;

#[cfg(test)]
mod tests;

pub use self::{
    eval::{selector_matches, verdict},
    resources::{Action, StagedChange, StagedKind, StagedPolicy, StagedSet, TierAction},
    trace::{
        DecidedBy, Decision, Direction, EndpointId, EndpointTrace, PolicyId, PolicyKind,
        PolicyTrace, RuleTrace, Side, TierEnd, TierTrace,
    },
    world::{CalicoWorld, DEFAULT_TIER_ORDER, IcmpHeader, Packet},
};
