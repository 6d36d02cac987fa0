//! Flow events from the datapath (`PALISADE_FLOWS`, see `policy_common::flow`): reading them,
//! naming what decided, and printing them for `policy-agent flows`.
//!
//! The ring buffer has one consumer: two `flows` readers of one agent share its events
//! between them. Events name the deciding table and `rule_ref`; the agent's status file lists
//! which policies each table stands for, so a reader given it prints policy and rule names.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv6Addr},
    path::Path,
};

use aya::maps::{Map, MapData, RingBuf};
use policy_common::{
    counters::drop_reason,
    flow::{FROM_ENDPOINT, FlowEvent, OPENED},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::compiler::{PROFILE_RULE_REF, TIER_DEFAULT_RULE};

#[derive(Debug, Error)]
pub enum FlowsError {
    #[error("opening the pinned ring buffer {path}")]
    Open {
        path: String,
        #[source]
        source: aya::maps::MapError,
    },
}

pub struct FlowReader {
    ring: RingBuf<MapData>,
}

impl FlowReader {
    pub fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring }
    }

    /// The ring pinned by an agent whose `--bpffs` is `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<Self, FlowsError> {
        let path = pin_dir.join(policy_common::map_names::FLOWS);
        let open = |source| FlowsError::Open {
            path: path.display().to_string(),
            source,
        };
        let data = MapData::from_pin(&path).map_err(open)?;
        let ring = RingBuf::try_from(Map::RingBuf(data)).map_err(open)?;
        Ok(Self { ring })
    }

    /// The next event, if one is waiting.
    pub fn next_event(&mut self) -> Option<FlowEvent> {
        let item = self.ring.next()?;
        let bytes: &[u8] = &item;
        (bytes.len() >= size_of::<FlowEvent>()).then(|| {
            // SAFETY: the programs write whole `FlowEvent`s (repr(C), plain integers); the
            // ring's items are 8-byte aligned, and read_unaligned needs no alignment anyway.
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<FlowEvent>()) }
        })
    }
}

/// Which policies a rule table stands for (one per slot member; see
/// `compiler::EndpointExplanation`), and in which direction: what the status file records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableNames {
    pub direction: String,
    pub policies: Vec<String>,
    /// The same policies by kind, namespace and name: what per-rule counts are labelled with.
    #[serde(default)]
    pub members: Vec<PolicyRef>,
}

/// A policy as metrics label it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyRef {
    /// `NetworkPolicy` (Kubernetes), `projectcalico.org/NetworkPolicy`,
    /// `GlobalNetworkPolicy`, an administrators' policy's kind, or `failsafe`.
    pub kind: String,
    /// Empty for cluster-wide policies.
    pub namespace: String,
    pub name: String,
}

impl PolicyRef {
    pub fn of(name: &crate::compiler::PolicyName) -> Self {
        use crate::compiler::PolicyKind;
        let kind = match name.kind {
            PolicyKind::Kubernetes => "NetworkPolicy".to_owned(),
            PolicyKind::CalicoNetworkPolicy => "projectcalico.org/NetworkPolicy".to_owned(),
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy".to_owned(),
            PolicyKind::Failsafe => "failsafe".to_owned(),
            PolicyKind::Cluster(kind) => kind.to_string(),
        };
        Self {
            kind,
            namespace: name.namespace.clone(),
            name: name.name.clone(),
        }
    }
}

/// Every table of a compile, named.
pub fn table_names(compiled: &crate::compiler::Compiled) -> BTreeMap<u32, TableNames> {
    let mut names = BTreeMap::new();
    for (key, value) in &compiled.maps.endpoints {
        let Some(explanation) = compiled.explanations.get(key) else {
            continue;
        };
        for (direction, list, slots) in [
            ("ingress", &value.ingress, &explanation.ingress),
            ("egress", &value.egress, &explanation.egress),
        ] {
            let count = (list.count as usize).min(list.tables.len());
            for (table, policies) in list.tables[..count].iter().zip(slots) {
                names.entry(table.table).or_insert_with(|| TableNames {
                    direction: direction.to_owned(),
                    policies: policies.iter().map(ToString::to_string).collect(),
                    members: policies.iter().map(PolicyRef::of).collect(),
                });
            }
        }
    }
    names
}

pub fn address(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Why a denied event's packet was dropped (`policy_common::counters::drop_reason`'s name);
/// `None` for an allowed one.
pub fn drop_reason(event: &FlowEvent) -> Option<&'static str> {
    (event.allowed == 0).then(|| drop_reason::name(event.reason))
}

/// What decided an event, in words, when its table is known.
pub fn decided_by(event: &FlowEvent, tables: &BTreeMap<u32, TableNames>) -> String {
    if event.table == 0 {
        return match (event.allowed, event.reason) {
            (0, drop_reason::UNKNOWN_ENDPOINT) => "no endpoint has the address (unknown)",
            (0, drop_reason::SPOOFED) => "the address is another interface's (spoofed)",
            (0, drop_reason::FRAGMENT) => "a later fragment whose first was not allowed",
            (0, _) => "no rule entry (isolated, nothing allows)",
            _ => "no policy: the endpoint is not isolated (or the peer is its node)",
        }
        .to_owned();
    }
    let Some(names) = tables.get(&event.table) else {
        return format!("table {} rule_ref {:#x}", event.table, event.rule_ref);
    };
    if event.rule_ref == PROFILE_RULE_REF {
        return "the profile (no tier decided)".to_owned();
    }
    let member = (event.rule_ref >> 16) as usize;
    let rule = event.rule_ref & 0xffff;
    let policy = names
        .policies
        .get(member)
        .map_or("(unknown policy)", String::as_str);
    if rule == TIER_DEFAULT_RULE {
        format!("the default action of the tier of {policy}")
    } else {
        format!("{policy} {}[{rule}]", names.direction)
    }
}

/// One event as a line of text.
pub fn render_text(event: &FlowEvent, tables: &BTreeMap<u32, TableNames>) -> String {
    let direction = if event.direction == FROM_ENDPOINT {
        "egress"
    } else {
        "ingress"
    };
    let verdict = match drop_reason(event) {
        None => "allow".to_owned(),
        Some(reason) => format!("deny ({reason})"),
    };
    let service = service(event).map_or(String::new(), |(addr, port)| {
        format!(" (addressed {})", std::net::SocketAddr::new(addr, port))
    });
    format!(
        "{:>14.6} {direction:<7} {verdict:<5} proto {} {} -> {} port {}{service} if {}: {}",
        event.time_ns as f64 / 1e9,
        event.protocol,
        address(event.src),
        address(event.dst),
        event.dport,
        event.ifindex,
        decided_by(event, tables)
    )
}

/// One event as a JSON object.
pub fn render_json(event: &FlowEvent, tables: &BTreeMap<u32, TableNames>) -> Value {
    json!({
        "time_ns": event.time_ns,
        "direction": if event.direction == FROM_ENDPOINT { "egress" } else { "ingress" },
        "allowed": event.allowed != 0,
        "reason": drop_reason(event),
        "protocol": event.protocol,
        "src": address(event.src).to_string(),
        "dst": address(event.dst).to_string(),
        "sport": event.sport,
        "dport": event.dport,
        "ifindex": event.ifindex,
        "table": event.table,
        "rule_ref": event.rule_ref,
        "decided_by": decided_by(event, tables),
        "len": event.len,
        "opened": event.flags & OPENED != 0,
        "service": service(event).map(|(addr, port)| json!({"addr": addr.to_string(), "port": port})),
    })
}

/// A pod's flow to a Service: the frontend it addressed (see `FlowEvent::service`).
pub fn service(event: &FlowEvent) -> Option<(IpAddr, u16)> {
    (event.service_port != 0).then(|| (address(event.service), event.service_port))
}
