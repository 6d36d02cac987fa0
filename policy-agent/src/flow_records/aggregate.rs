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

use super::workloads::{Directory, Workload};

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub key: RecordKey,
    /// Flows (new flows and re-checks) the datapath reported.
    pub flows: u64,
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

    fn window_ns(&self) -> u64 {
        u64::try_from(self.limits.window.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Adds one observation, naming its ends with `directory`. Closes the open window first
    /// if the observation is past its end.
    pub fn observe(&mut self, observation: Observation, directory: &Directory) {
        self.tick(observation.time_ns);
        self.start_ns.get_or_insert(observation.time_ns);
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
        };
        let full = self.open.len() >= self.limits.max_records;
        match self.open.get_mut(&key) {
            Some(record) => {
                record.flows += 1;
                record.last_ns = record.last_ns.max(observation.time_ns);
            }
            None if full => match observation.verdict {
                Verdict::Allow => {
                    self.lost.0 += 1;
                    self.lost_total.0 += 1;
                }
                Verdict::Deny => {
                    self.lost.1 += 1;
                    self.lost_total.1 += 1;
                }
            },
            None => {
                let time = observation.time_ns;
                self.open.insert(
                    key.clone(),
                    Record {
                        key,
                        flows: 1,
                        first_ns: time,
                        last_ns: time,
                    },
                );
            }
        }
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
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn observation(time_ns: u64, src: [u8; 4], port: u16, verdict: Verdict) -> Observation {
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
