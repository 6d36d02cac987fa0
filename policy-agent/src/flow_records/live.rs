//! The agent's flow records while it runs: fed from the datapath's ring buffer by the agent's
//! loop, read by the web view's HTTP server (`crate::ui`). One lock, held for a drain of the
//! ring or a copy of the windows, never across an await.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

use policy_common::flow::{FROM_ENDPOINT, FlowEvent};
use serde::{Deserialize, Serialize};

use super::{
    Directory,
    aggregate::{Aggregator, Limits, Observation, Pending, Reporter, Verdict, Window},
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

/// Events read from the ring per poll, at most: a flood is drained over several polls (and
/// beyond the ring's size, the datapath counts what it could not write).
pub const MAX_EVENTS_PER_POLL: usize = 16_384;

struct State {
    aggregator: Aggregator,
    directory: Directory,
    tables: BTreeMap<u32, TableNames>,
    /// With staged policies in the datastore.
    pending: Option<PendingView>,
}

impl State {
    fn observe(&mut self, event: &FlowEvent) {
        let mut observation = observation(event, &self.tables);
        observation.pending = self.pending.as_ref().map(|view| pending(event, view));
        self.aggregator.observe(observation, &self.directory);
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

    /// Reads what is waiting in the ring into the records; closes a window that is due.
    /// Returns the events read.
    pub fn poll(&self, reader: &mut FlowReader, now_ns: u64) -> usize {
        let mut state = self.lock();
        let mut read = 0;
        while read < MAX_EVENTS_PER_POLL {
            let Some(event) = reader.next_event() else {
                break;
            };
            read += 1;
            state.observe(&event);
        }
        state.aggregator.tick(now_ns);
        read
    }

    /// Feeds one event (tests, and readers other than the ring).
    pub fn record(&self, event: &FlowEvent) {
        self.lock().observe(event);
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
        records.record(&event(1, false));
        records.record(&event(2, false));
        records.record(&event(3, true));
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
