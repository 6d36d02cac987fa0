//! Flow observations aggregated into records over fixed windows, within a memory bound.
//!
//! A window (default 15 s, as Calico's flow logs flush) holds at most
//! [`Limits::max_records`] distinct records; an observation that would need one more is
//! counted in the window's `lost_flows` instead (by verdict), so a flood of distinct flows
//! costs a bounded amount of memory and the loss is shown, never silent. Closed windows are
//! kept for [`Limits::keep_windows`] windows, for readers that come late.
//!
//! Why these bounds: a record takes a few hundred bytes (two workload names, the rule that
//! decided, counters, the map's overhead), so 10,000 records per window and 4 windows kept
//! bound the aggregation at about 22 MB (21.7 MiB at the peak under a flood of 1,000,000 distinct
//! flows: `benches/flow_records.rs`), below what a node agent's DaemonSet requests, while a
//! node's pods rarely have more than a few thousand distinct (peer, port, verdict) tuples in a
//! quarter of a minute. A flood past that is an event in itself, and `lost_flows` says so.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::workloads::{Directory, ServiceRef, Workload};

/// The aggregation's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub window: Duration,
    pub max_records: usize,
    pub keep_windows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15),
            max_records: 10_000,
            keep_windows: 4,
        }
    }
}

/// Which check decided: the source's egress or the destination's ingress (Calico's
/// `reporter: src | dst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reporter {
    Egress,
    Ingress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny,
}

/// One decided flow, as the datapath reported it (addresses not yet named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Monotonic nanoseconds (the kernel's `bpf_ktime_get_ns`, or any clock: only differences
    /// are used).
    pub time_ns: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// The destination port (ICMP: type and code).
    pub port: u16,
    pub reporter: Reporter,
    pub verdict: Verdict,
    /// The tier, policy and rule that decided, in words (see [`crate::flows::decided_by`]).
    pub decided_by: String,
    /// Denied: why (`policy_common::counters::drop_reason`'s name).
    pub reason: Option<&'static str>,
    /// With staged policies in the datastore: the verdict with them applied.
    pub pending: Option<Pending>,
    /// The decided packet's length (bytes as the interface carries them).
    pub len: u32,
    /// A pod's flow to a Service: the frontend it addressed (address, port).
    pub service: Option<(IpAddr, u16)>,
}

/// The verdict a flow would get with the staged policies applied, and what would decide it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pending {
    pub verdict: Verdict,
    pub decided_by: String,
}

/// What a record is keyed by: what a reader filters and groups on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    pub src: Workload,
    pub dst: Workload,
    pub protocol: u8,
    pub port: u16,
    pub reporter: Reporter,
    pub verdict: Verdict,
    pub decided_by: String,
    /// Denied: why (`policy_common::counters::drop_reason`'s name: `no_rule`, `deny_rule`,
    /// `revoked`, `unknown_endpoint`, `spoofed`, `fragment`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With staged policies in the datastore: the pending verdict (see
    /// `crate::model::staged`); absent without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// The Service the client addressed, when the flow went through one (as Calico's flow
    /// logs' `dest_service_*`): known where the client's egress was decided after kube-proxy's
    /// translation, and on the backend's ingress when the client is on the same node.
    /// Boxed: most records have none, and a record's key is in its window's map twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Box<ServiceRef>>,
}

/// Packets and bytes a record's flows carried, by who sent them: the record's source (its
/// flows' first packets, and what their connections sent after) and its destination (the
/// replies). Tracked connections' later packets come from the connection table (see
/// [`super::connections`]); a denied or untracked flow counts its decided packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub src_packets: u64,
    pub src_bytes: u64,
    pub dst_packets: u64,
    pub dst_bytes: u64,
}

impl Traffic {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn add(&mut self, other: &Self) {
        self.src_packets = self.src_packets.saturating_add(other.src_packets);
        self.src_bytes = self.src_bytes.saturating_add(other.src_bytes);
        self.dst_packets = self.dst_packets.saturating_add(other.dst_packets);
        self.dst_bytes = self.dst_bytes.saturating_add(other.dst_bytes);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub key: RecordKey,
    /// Flows (new flows and re-checks) the datapath reported in the window; 0 for a
    /// connection opened in an earlier window that carried traffic in this one.
    pub flows: u64,
    #[serde(flatten)]
    pub traffic: Traffic,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// One window's records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
    pub records: Vec<Record>,
    /// Observations that found the window full (no record for them), allowed and denied.
    pub lost_allowed: u64,
    pub lost_denied: u64,
}

/// The aggregator: one open window, and the last closed ones.
#[derive(Debug)]
pub struct Aggregator {
    limits: Limits,
    start_ns: Option<u64>,
    open: HashMap<RecordKey, Record>,
    lost: (u64, u64),
    /// Observations lost to full windows since the start (allowed, denied).
    lost_total: (u64, u64),
    closed: VecDeque<Window>,
    /// Windows closed since the agent started (a reader's cursor).
    closed_total: u64,
}

impl Aggregator {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                max_records: limits.max_records.max(1),
                keep_windows: limits.keep_windows.max(1),
                window: limits.window.max(Duration::from_millis(1)),
            },
            start_ns: None,
            open: HashMap::new(),
            lost: (0, 0),
            lost_total: (0, 0),
            closed: VecDeque::new(),
            closed_total: 0,
        }
    }

    /// The window's length.
    pub fn window_ns(&self) -> u64 {
        u64::try_from(self.limits.window.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Adds one observation, naming its ends with `directory`. Closes the open window first
    /// if the observation is past its end. Returns the record's key (whether or not the window
    /// had room for it), under which its connection's later traffic is added.
    pub fn observe(&mut self, observation: Observation, directory: &Directory) -> RecordKey {
        self.tick(observation.time_ns);
        let service = observation
            .service
            .and_then(|(addr, port)| directory.service(addr, observation.protocol, port))
            .map(Box::new);
        let key = RecordKey {
            src: directory.name(observation.src),
            dst: directory.name(observation.dst),
            protocol: observation.protocol,
            port: observation.port,
            reporter: observation.reporter,
            verdict: observation.verdict,
            decided_by: observation.decided_by,
            reason: observation.reason.map(str::to_owned),
            pending: observation.pending,
            service,
        };
        let traffic = Traffic {
            src_packets: 1,
            src_bytes: u64::from(observation.len),
            ..Traffic::default()
        };
        if let Some(record) = self.record(&key, observation.time_ns) {
            record.flows += 1;
            record.traffic.add(&traffic);
        }
        key
    }

    /// What a connection carried after its decided packet (see [`super::connections`]),
    /// added to its record in the open window at `time_ns` (opened for it if it has none).
    pub fn add_traffic(&mut self, key: &RecordKey, traffic: Traffic, time_ns: u64) {
        if let Some(record) = self.record(key, time_ns) {
            record.traffic.add(&traffic);
        }
    }

    /// The open window's record for `key` at `time_ns`, made if the window has room; if it
    /// has none, the observation is counted as lost (by verdict).
    fn record(&mut self, key: &RecordKey, time_ns: u64) -> Option<&mut Record> {
        self.start_ns.get_or_insert(time_ns);
        if !self.open.contains_key(key) {
            if self.open.len() >= self.limits.max_records {
                match key.verdict {
                    Verdict::Allow => {
                        self.lost.0 += 1;
                        self.lost_total.0 += 1;
                    }
                    Verdict::Deny => {
                        self.lost.1 += 1;
                        self.lost_total.1 += 1;
                    }
                }
                return None;
            }
            self.open.insert(
                key.clone(),
                Record {
                    key: key.clone(),
                    flows: 0,
                    traffic: Traffic::default(),
                    first_ns: time_ns,
                    last_ns: time_ns,
                },
            );
        }
        let record = self.open.get_mut(key)?;
        record.last_ns = record.last_ns.max(time_ns);
        Some(record)
    }

    /// Whether a window is open (something was observed since the last one closed).
    pub fn is_open(&self) -> bool {
        self.start_ns.is_some()
    }

    /// When the open window ends.
    pub fn window_end(&self) -> Option<u64> {
        self.start_ns
            .map(|start| start.saturating_add(self.window_ns()))
    }

    /// Whether the open window ends at or before `now_ns` (the next [`Aggregator::tick`] or
    /// observation closes it).
    pub fn due(&self, now_ns: u64) -> bool {
        self.window_end().is_some_and(|end| now_ns >= end)
    }

    /// Closes the open window if `now_ns` is past its end (call it periodically, so that a
    /// quiet node still closes its windows).
    pub fn tick(&mut self, now_ns: u64) {
        let Some(start) = self.start_ns else {
            return;
        };
        let end = start.saturating_add(self.window_ns());
        if now_ns < end {
            return;
        }
        let mut records: Vec<Record> = self.open.drain().map(|(_, record)| record).collect();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        let window = Window {
            start_ns: start,
            end_ns: end,
            records,
            lost_allowed: self.lost.0,
            lost_denied: self.lost.1,
        };
        self.lost = (0, 0);
        // The next window starts at the first observation after this one, so an idle spell
        // leaves no empty windows behind.
        self.start_ns = None;
        if self.closed.len() == self.limits.keep_windows {
            self.closed.pop_front();
        }
        self.closed.push_back(window);
        self.closed_total += 1;
    }

    /// The closed windows numbered `from` or later that are still kept, oldest first
    /// (windows are numbered from 0 since the agent started; a reader passes the next number
    /// it wants, [`Aggregator::next_window`] when it has seen them all).
    pub fn closed_since(&self, from: u64) -> impl Iterator<Item = &Window> {
        let first = self.closed_total - self.closed.len() as u64;
        let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
        self.closed.iter().skip(skip)
    }

    /// The number the next closed window will have.
    pub fn next_window(&self) -> u64 {
        self.closed_total
    }

    /// The open window so far (records sorted).
    pub fn open(&self) -> Window {
        let mut records: Vec<Record> = self.open.values().cloned().collect();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        let start = self.start_ns.unwrap_or(0);
        Window {
            start_ns: start,
            end_ns: start.saturating_add(self.window_ns()),
            records,
            lost_allowed: self.lost.0,
            lost_denied: self.lost.1,
        }
    }

    /// Observations lost to full windows since the start: (allowed, denied).
    pub fn lost_total(&self) -> (u64, u64) {
        self.lost_total
    }

    /// Records held, open and closed: what the bound applies to.
    pub fn records_held(&self) -> usize {
        self.open.len() + self.closed.iter().map(|w| w.records.len()).sum::<usize>()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// An observation of a TCP flow from `src` to 10.0.0.1 (the connections' tests use it too).
    pub(in crate::flow_records) fn observation(
        time_ns: u64,
        src: [u8; 4],
        port: u16,
        verdict: Verdict,
    ) -> Observation {
        Observation {
            time_ns,
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            protocol: 6,
            port,
            reporter: Reporter::Ingress,
            verdict,
            decided_by: "default/web ingress[0]".to_owned(),
            reason: None,
            pending: None,
            len: 60,
            service: None,
        }
    }

    #[test]
    fn flows_with_one_key_make_one_record_per_window() {
        let directory = Directory::default();
        let mut aggregator = Aggregator::new(Limits::default());
        for i in 0..5 {
            aggregator.observe(
                observation(i * SECOND, [10, 0, 0, 2], 80, Verdict::Allow),
                &directory,
            );
        }
        aggregator.observe(
            observation(6 * SECOND, [10, 0, 0, 2], 81, Verdict::Deny),
            &directory,
        );
        let open = aggregator.open();
        assert_eq!(open.records.len(), 2);
        assert_eq!(open.records[0].flows, 5);
        assert_eq!(
            (open.records[0].first_ns, open.records[0].last_ns),
            (0, 4 * SECOND)
        );
        // Past the window's end: it closes, and the new observation opens the next one.
        aggregator.observe(
            observation(15 * SECOND, [10, 0, 0, 2], 80, Verdict::Allow),
            &directory,
        );
        let closed: Vec<&Window> = aggregator.closed_since(0).collect();
        assert_eq!(aggregator.next_window(), 1);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start_ns, closed[0].end_ns), (0, 15 * SECOND));
        assert_eq!(closed[0].records.len(), 2);
        assert_eq!(aggregator.open().records.len(), 1);
        assert_eq!(aggregator.open().start_ns, 15 * SECOND);
    }

    #[test]
    fn a_quiet_node_closes_its_window_on_tick() {
        let mut aggregator = Aggregator::new(Limits::default());
        aggregator.observe(
            observation(SECOND, [10, 0, 0, 2], 80, Verdict::Allow),
            &Directory::default(),
        );
        aggregator.tick(10 * SECOND);
        assert_eq!(aggregator.next_window(), 0);
        aggregator.tick(16 * SECOND);
        assert_eq!(aggregator.next_window(), 1);
        assert!(aggregator.open().records.is_empty());
        // Nothing observed since: no empty windows pile up.
        aggregator.tick(100 * SECOND);
        assert_eq!(aggregator.next_window(), 1);
    }

    /// A flood of a million distinct flows: memory stays at the bound, and every flow that
    /// found the window full is counted, by verdict.
    #[test]
    fn a_flood_of_distinct_flows_is_bounded_and_counted() {
        let limits = Limits {
            window: Duration::from_secs(15),
            max_records: 10_000,
            keep_windows: 4,
        };
        let directory = Directory::default();
        let mut aggregator = Aggregator::new(limits);
        let total: u64 = 1_000_000;
        let mut peak = 0;
        for i in 0..total {
            let [_, a, b, c] = (i as u32).to_be_bytes();
            let verdict = if i % 2 == 0 {
                Verdict::Allow
            } else {
                Verdict::Deny
            };
            // 100,000 flows a window: ten windows' worth.
            aggregator.observe(
                observation(i * (15 * SECOND / 100_000), [11, a, b, c], 80, verdict),
                &directory,
            );
            peak = peak.max(aggregator.records_held());
        }
        aggregator.tick(u64::MAX);
        assert!(
            peak <= limits.max_records * (limits.keep_windows + 1),
            "peak {peak} records"
        );
        let closed: Vec<&Window> = aggregator.closed_since(0).collect();
        assert_eq!(closed.len(), limits.keep_windows);
        // Ten windows closed, the last four kept.
        assert_eq!(aggregator.next_window(), 10);
        // Every window kept is full, and counts what it could not hold.
        for window in &closed {
            let held: u64 = window.records.iter().map(|r| r.flows).sum();
            assert_eq!(window.records.len(), limits.max_records);
            assert_eq!(
                held + window.lost_allowed + window.lost_denied,
                100_000,
                "{} held, {} + {} lost",
                held,
                window.lost_allowed,
                window.lost_denied
            );
        }
    }

    #[test]
    fn closed_since_skips_what_a_reader_has_seen() {
        let directory = Directory::default();
        let mut aggregator = Aggregator::new(Limits {
            keep_windows: 2,
            ..Limits::default()
        });
        for w in 0..5 {
            aggregator.observe(
                observation(w * 20 * SECOND, [10, 0, 0, 2], 80, Verdict::Allow),
                &directory,
            );
        }
        aggregator.tick(u64::MAX);
        assert_eq!(aggregator.next_window(), 5);
        let starts: Vec<u64> = aggregator
            .closed_since(4)
            .map(|w| w.start_ns / SECOND)
            .collect();
        assert_eq!(starts, [80]);
        // Windows 0 to 2 are gone: a reader asking for them gets what is kept.
        assert_eq!(aggregator.closed_since(0).count(), 2);
    }
}
