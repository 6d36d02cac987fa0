//! The agent's flow records while it runs: fed from the datapath's ring buffer by the agent's
//! loop, read by the web view's HTTP server (`crate::ui`). One lock, held for a drain of the
//! ring or a copy of the windows, never across an await.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use policy_common::{
    conntrack::ConntrackKey,
    flow::{FROM_ENDPOINT, FlowEvent, OPENED},
    rule::protocol,
};
use serde::{Deserialize, Serialize};

use super::{
    Directory,
    aggregate::{Aggregator, Limits, Observation, Pending, Reporter, Verdict, Window},
    connections::{ConnectionTable, Connections},
};
use crate::{
    compiler::MapContents,
    flows::{FlowReader, TableNames, address, decided_by},
    replay::{self, Direction, Packet, Reason},
};

/// The cluster with the staged policies applied, compiled (never written to the kernel): what
/// pending verdicts are decided against, by the same replay of the programs' lookups that
/// `policy-agent explain` and the tests use.
pub struct PendingView {
    pub maps: Arc<MapContents>,
    pub tables: BTreeMap<u32, TableNames>,
}

/// How often the followed connections are read.
const COLLECT_EVERY_NS: u64 = 1_000_000_000;

/// Events read from the ring per poll, at most: a flood is drained over several polls (and
/// beyond the ring's size, the datapath counts what it could not write).
pub const MAX_EVENTS_PER_POLL: usize = 16_384;

struct State {
    aggregator: Aggregator,
    directory: Directory,
    tables: BTreeMap<u32, TableNames>,
    /// With staged policies in the datastore.
    pending: Option<PendingView>,
    /// Allowed connections whose later packets are added to their records.
    connections: Connections,
    /// When the followed connections were last read.
    collected_ns: u64,
    services: RecentServices,
}

impl State {
    fn observe(&mut self, event: &FlowEvent, table: Option<&dyn ConnectionTable>) {
        if let Some(table) = table
            && self.aggregator.due(event.time_ns)
        {
            // Before the observation closes the window: its connections' traffic first.
            self.collect(table, event.time_ns);
        }
        let mut observation = observation(event, &self.tables);
        observation.pending = self.pending.as_ref().map(|view| pending(event, view));
        if observation.service.is_none() && event.direction != FROM_ENDPOINT {
            observation.service = self.services.frontend(event);
        } else if observation.service.is_some() {
            self.services.remember(event);
        }
        let connection = followed_connection(event);
        let record = self.aggregator.observe(observation, &self.directory);
        if let (Some(table), Some(key)) = (table, connection) {
            self.connections
                .follow(key, record, event.flags & OPENED != 0, table);
        }
    }

    /// Reads the followed connections once a second (see [`super::connections`]) and before
    /// a due window closes, then closes it.
    fn close_due(&mut self, table: &dyn ConnectionTable, now_ns: u64) {
        let read_due = !self.connections.is_empty()
            && now_ns.saturating_sub(self.collected_ns) >= COLLECT_EVERY_NS;
        if self.aggregator.due(now_ns) || read_due {
            self.collect(table, now_ns);
        }
        self.aggregator.tick(now_ns);
    }

    /// Adds what the followed connections carried since the last read to the open window
    /// (at the latest at its end, so that it lands in the window it belongs to).
    fn collect(&mut self, table: &dyn ConnectionTable, now_ns: u64) {
        let time = self
            .aggregator
            .window_end()
            .map_or(now_ns, |end| now_ns.min(end.saturating_sub(1)));
        self.connections.collect(table, &mut self.aggregator, time);
        self.collected_ns = now_ns;
    }
}

/// The connection table's entry that counts the packets after `event`'s (see
/// [`super::connections`]): an allowed flow of a port protocol (ICMP echoes count only
/// their decided packets), keyed as the decision recorded it; a pod's flow to a Service as
/// the pod sent it, to the frontend.
fn followed_connection(event: &FlowEvent) -> Option<ConntrackKey> {
    const PORT_PROTOCOLS: [u8; 3] = [protocol::TCP, protocol::UDP, protocol::SCTP];
    if event.allowed == 0 || !PORT_PROTOCOLS.contains(&event.protocol) {
        return None;
    }
    let mut key = tuple(event);
    if event.service_port != 0 {
        key.dst = event.service;
        key.dport = event.service_port;
    }
    Some(key)
}

/// `event`'s packet as a connection table key (as the check that decided it met it).
fn tuple(event: &FlowEvent) -> ConntrackKey {
    ConntrackKey {
        src: event.src,
        dst: event.dst,
        sport: event.sport,
        dport: event.dport,
        protocol: event.protocol,
        _pad: [0; 3],
    }
}

/// Service flows' frontends by the tuple kube-proxy delivered, from the client's egress
/// events, for the backend's ingress event that follows on the same node (its check cannot
/// see the frontend; the client's, after the translation, does). Both events are written by
/// the same CPU for the same packet, in this order. Bounded: the oldest go first.
#[derive(Default)]
struct RecentServices {
    frontends: HashMap<ConntrackKey, (IpAddr, u16)>,
    order: VecDeque<ConntrackKey>,
}

impl RecentServices {
    /// Enough for the events of a few seconds at the datapath's budget.
    const MAX: usize = 4096;

    fn remember(&mut self, event: &FlowEvent) {
        let Some(frontend) = crate::flows::service(event) else {
            return;
        };
        let key = tuple(event);
        if self.frontends.insert(key, frontend).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > Self::MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.frontends.remove(&oldest);
            }
        }
    }

    /// Kept, not taken, until it ages out: each key is in `order` once, and a later ingress
    /// event of the same packet's flow (a re-check) names the Service too.
    fn frontend(&self, event: &FlowEvent) -> Option<(IpAddr, u16)> {
        self.frontends.get(&tuple(event)).copied()
    }
}

/// The verdict `event`'s packet would get at the same hook with the staged policies applied,
/// and what would decide it, named as an event's deciding entry is.
fn pending(event: &FlowEvent, view: &PendingView) -> Pending {
    let packet = Packet {
        src: address(event.src),
        dst: address(event.dst),
        protocol: event.protocol,
        sport: event.sport,
        dport: event.dport,
    };
    let direction = if event.direction == FROM_ENDPOINT {
        Direction::FromEndpoint
    } else {
        Direction::ToEndpoint
    };
    let decision = replay::decide(&view.maps, &packet, direction);
    let (table, rule_ref) = match decision.reason {
        Reason::Rule {
            table, rule_ref, ..
        } => (table, rule_ref),
        _ => (0, 0),
    };
    let decided = FlowEvent {
        allowed: u8::from(decision.allowed),
        reason: decision.drop_reason().unwrap_or(0),
        table,
        rule_ref,
        ..*event
    };
    Pending {
        verdict: if decision.allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        },
        decided_by: decided_by(&decided, &view.tables),
    }
}

/// What `/flows` answers: the closed windows a reader has not seen, and the open one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// The number of the first window in `closed`.
    pub first: u64,
    /// What to pass as `since` next time.
    pub next: u64,
    pub closed: Vec<Window>,
    pub open: Window,
}

pub struct FlowRecords {
    state: Mutex<State>,
}

impl FlowRecords {
    pub fn new(limits: Limits) -> Self {
        Self {
            state: Mutex::new(State {
                aggregator: Aggregator::new(limits),
                directory: Directory::default(),
                tables: BTreeMap::new(),
                pending: None,
                connections: Connections::default(),
                collected_ns: 0,
                services: RecentServices::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new applied state: how addresses are named and which policies each table stands for.
    pub fn set_view(&self, directory: Directory, tables: BTreeMap<u32, TableNames>) {
        let mut state = self.lock();
        state.directory = directory;
        state.tables = tables;
    }

    /// The staged policies' compile, or `None` when the datastore has none: from now on every
    /// record carries its pending verdict, or none.
    pub fn set_pending(&self, pending: Option<PendingView>) {
        self.lock().pending = pending;
    }

    /// Reads what is waiting in the ring into the records, following the connections they
    /// open in `table`; closes a window that is due, with what its connections carried.
    /// Returns the events read.
    pub fn poll(&self, reader: &mut FlowReader, table: &dyn ConnectionTable, now_ns: u64) -> usize {
        let mut state = self.lock();
        let mut read = 0;
        while read < MAX_EVENTS_PER_POLL {
            let Some(event) = reader.next_event() else {
                break;
            };
            read += 1;
            state.observe(&event, Some(table));
        }
        state.close_due(table, now_ns);
        read
    }

    /// Feeds one event (tests, and readers other than the ring); with `table`, its
    /// connection is followed there.
    pub fn record(&self, event: &FlowEvent, table: Option<&dyn ConnectionTable>) {
        self.lock().observe(event, table);
    }

    /// Closes the window if it is due at `now_ns`, after adding what the followed
    /// connections carried (read from `table`).
    pub fn close_due(&self, table: &dyn ConnectionTable, now_ns: u64) {
        self.lock().close_due(table, now_ns);
    }

    /// Connections opened while the records followed as many as they may, since the start.
    pub fn unfollowed(&self) -> u64 {
        self.lock().connections.unfollowed()
    }

    /// The number the next closed window will have (where a reader that wants only new
    /// windows starts).
    pub fn next_window(&self) -> u64 {
        self.lock().aggregator.next_window()
    }

    /// Flows lost to full windows since the start: (allowed, denied).
    pub fn lost_total(&self) -> (u64, u64) {
        self.lock().aggregator.lost_total()
    }

    /// Closes a window that is due at `now_ns`.
    pub fn tick(&self, now_ns: u64) {
        self.lock().aggregator.tick(now_ns);
    }

    /// The closed windows numbered `since` or later still kept, and the open window.
    pub fn snapshot(&self, since: u64) -> Snapshot {
        let state = self.lock();
        let closed: Vec<Window> = state.aggregator.closed_since(since).cloned().collect();
        let next = state.aggregator.next_window();
        Snapshot {
            first: next - closed.len() as u64,
            next,
            closed,
            open: state.aggregator.open(),
        }
    }
}

/// One ring event as an observation: the addresses, and the rule that decided in words.
pub fn observation(event: &FlowEvent, tables: &BTreeMap<u32, TableNames>) -> Observation {
    Observation {
        time_ns: event.time_ns,
        src: address(event.src),
        dst: address(event.dst),
        protocol: event.protocol,
        port: event.dport,
        reporter: if event.direction == FROM_ENDPOINT {
            Reporter::Egress
        } else {
            Reporter::Ingress
        },
        verdict: if event.allowed != 0 {
            Verdict::Allow
        } else {
            Verdict::Deny
        },
        decided_by: decided_by(event, tables),
        reason: crate::flows::drop_reason(event),
        pending: None,
        len: event.len,
        service: crate::flows::service(event),
    }
}

#[cfg(test)]
mod tests {
    use policy_common::flow::TO_ENDPOINT;

    use super::*;
    use crate::flow_records::Workload;

    fn event(time_ns: u64, allowed: bool) -> FlowEvent {
        let mut src = [0; 16];
        src[10..12].copy_from_slice(&[0xff, 0xff]);
        src[12..].copy_from_slice(&[10, 0, 0, 2]);
        let mut dst = src;
        dst[15] = 3;
        FlowEvent {
            time_ns,
            src,
            dst,
            sport: 40_000,
            dport: 80,
            protocol: 6,
            direction: TO_ENDPOINT,
            allowed: u8::from(allowed),
            table: 7,
            rule_ref: 0,
            ..FlowEvent::default()
        }
    }

    #[test]
    fn events_become_named_records_with_their_rule() {
        let records = FlowRecords::new(Limits::default());
        records.set_view(
            Directory::default(),
            BTreeMap::from([(
                7,
                TableNames {
                    direction: "ingress".to_owned(),
                    policies: vec!["shop/knp.default.web".to_owned()],
                    members: Vec::new(),
                },
            )]),
        );
        records.record(&event(1, false), None);
        records.record(&event(2, false), None);
        records.record(&event(3, true), None);
        let snapshot = records.snapshot(0);
        assert_eq!((snapshot.first, snapshot.next), (0, 0));
        assert!(snapshot.closed.is_empty());
        let open = snapshot.open.records;
        assert_eq!(open.len(), 2, "{open:?}");
        let denied = open
            .iter()
            .find(|r| r.key.verdict == Verdict::Deny)
            .expect("a deny record");
        assert_eq!(denied.flows, 2);
        assert_eq!(denied.key.reporter, Reporter::Ingress);
        assert_eq!(denied.key.decided_by, "shop/knp.default.web ingress[0]");
        assert_eq!(
            denied.key.src,
            Workload::Address {
                address: "10.0.0.2".parse().expect("an address")
            }
        );
        // Past the window: it closes and a reader gets it once.
        records.tick(20_000_000_000);
        let snapshot = records.snapshot(0);
        assert_eq!((snapshot.first, snapshot.next), (0, 1));
        assert_eq!(snapshot.closed.len(), 1);
        assert!(records.snapshot(1).closed.is_empty());
    }
}
