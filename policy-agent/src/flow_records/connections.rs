//! Packets and bytes for flow records, from the connection table (`PALISADE_CONNTRACK`).
//!
//! A record is made from flow events, one per decided packet; the packets a tracked connection
//! carries after that pass without a decision and write no event, but the datapath counts them
//! in the connection's entry (`policy_common::conntrack::ConntrackValue::packets`, once per
//! entry however many of the node's checks a packet passes). So the agent *follows* each
//! allowed connection an event opened: it remembers the entry's key and the record the
//! connection belongs to, and every second (and as a window closes) it reads the entry and adds
//! what it counted since the last read to that record of the open window (a long connection
//! adds to every window it is active in, as Calico's flow logs report it; reading each second
//! keeps the entry's 32-bit byte counters from wrapping between reads below 4 GiB/s). A connection stops being
//! followed when its entry is gone (expired, evicted, or cut by a policy change).
//!
//! Which entry: the one the event's check recorded, keyed by the packet as it passed that
//! check; for a pod's flow to a Service decided after kube-proxy's translation, the entry as
//! the pod sent it (to the frontend), which counts both directions in full.
//!
//! Bounded: at most [`MAX_FOLLOWED`] connections at once (a few hundred bytes each); a
//! connection opened past that is not followed and is counted in [`Connections::unfollowed`]
//! (its record still counts its flow and first packet). Each read costs one map lookup per
//! followed connection.

use std::{collections::HashMap, sync::Arc};

use policy_common::conntrack::{ConntrackKey, ConntrackValue, ORIGINAL, REPLY};

use super::aggregate::{Aggregator, RecordKey, Reporter, Traffic};

/// Most connections followed at once: a quarter of the connection table's capacity
/// (`policy_common::capacity::CONNTRACK`); about 10 MiB when every one has a record of its own
/// (`benches/flow_records.rs`), far less when they share records.
pub const MAX_FOLLOWED: usize = 16_384;

/// Where a followed connection's counts are read (the pinned `PALISADE_CONNTRACK`, or a
/// test's table).
pub trait ConnectionTable {
    /// The entry for `key`, if the table holds one.
    fn entry(&self, key: &ConntrackKey) -> Option<ConntrackValue>;
}

/// What a connection had counted when it was last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    packets: [u32; 2],
    bytes: [u32; 2],
}

impl Seen {
    fn of(value: &ConntrackValue) -> Self {
        Self {
            packets: value.packets,
            bytes: value.bytes,
        }
    }

    /// What `now` counted since `self`, as the record's source and destination sent it (the
    /// entry's original direction is the record's source to its destination).
    fn since(&self, now: &Self) -> Traffic {
        Traffic {
            src_packets: u64::from(now.packets[ORIGINAL].wrapping_sub(self.packets[ORIGINAL])),
            src_bytes: u64::from(now.bytes[ORIGINAL].wrapping_sub(self.bytes[ORIGINAL])),
            dst_packets: u64::from(now.packets[REPLY].wrapping_sub(self.packets[REPLY])),
            dst_bytes: u64::from(now.bytes[REPLY].wrapping_sub(self.bytes[REPLY])),
        }
    }
}

#[derive(Debug)]
struct Followed {
    record: Arc<RecordKey>,
    seen: Seen,
}

/// The connections followed, and how many could not be.
#[derive(Debug, Default)]
pub struct Connections {
    /// By entry and by check: a same-node connection's one entry counts for two records, the
    /// sender's egress and the receiver's ingress.
    followed: HashMap<(ConntrackKey, Reporter), Followed>,
    /// Each record key the followed connections belong to, once, with its number of
    /// connections: a node's connections share far fewer keys than they are (a key is a
    /// few hundred bytes; a connection's own entry 72).
    records: HashMap<Arc<RecordKey>, usize>,
    unfollowed: u64,
}

impl Connections {
    /// Follows the connection `key` for `record` (one per check that reported it). `opened`:
    /// the event's decision opened it, so its entry counts from zero; otherwise (a connection
    /// re-checked after a policy change) only what it counts from now on is added, read from
    /// `table`. A connection followed
    /// already moves to `record` (its new verdict and trace) and keeps its last read.
    pub fn follow(
        &mut self,
        key: ConntrackKey,
        record: RecordKey,
        opened: bool,
        table: &dyn ConnectionTable,
    ) {
        let key = (key, record.reporter);
        if self.followed.contains_key(&key) {
            let record = self.share(record);
            if let Some(followed) = self.followed.get_mut(&key) {
                let old = std::mem::replace(&mut followed.record, record);
                self.release(&old);
            }
            return;
        }
        if self.followed.len() >= MAX_FOLLOWED {
            self.unfollowed += 1;
            return;
        }
        let seen = if opened {
            Seen::default()
        } else {
            match table.entry(&key.0) {
                Some(value) => Seen::of(&value),
                // Gone already (or never recorded: a packet allowed but not tracked).
                None => return,
            }
        };
        let record = self.share(record);
        self.followed.insert(key, Followed { record, seen });
    }

    /// `record`, shared with the connections that have it already.
    fn share(&mut self, record: RecordKey) -> Arc<RecordKey> {
        if let Some((shared, users)) = self.records.get_key_value(&record) {
            let shared = shared.clone();
            let users = users + 1;
            self.records.insert(shared.clone(), users);
            return shared;
        }
        let shared = Arc::new(record);
        self.records.insert(shared.clone(), 1);
        shared
    }

    /// One connection less has `record`.
    fn release(&mut self, record: &Arc<RecordKey>) {
        match self.records.get_mut(record) {
            Some(users) if *users > 1 => *users -= 1,
            _ => {
                self.records.remove(record);
            }
        }
    }

    /// Reads every followed connection and adds what each counted since its last read to its
    /// record in `aggregator`'s open window (at `time_ns`); forgets those whose entry is gone.
    pub fn collect(
        &mut self,
        table: &dyn ConnectionTable,
        aggregator: &mut Aggregator,
        time_ns: u64,
    ) {
        let mut ended = Vec::new();
        self.followed.retain(|(key, _), followed| {
            let Some(value) = table.entry(key) else {
                ended.push(followed.record.clone());
                return false;
            };
            let now = Seen::of(&value);
            let traffic = followed.seen.since(&now);
            followed.seen = now;
            if !traffic.is_empty() {
                aggregator.add_traffic(&followed.record, traffic, time_ns);
            }
            true
        });
        for record in &ended {
            self.release(record);
        }
    }

    /// Distinct records the followed connections belong to.
    pub fn records(&self) -> usize {
        self.records.len()
    }

    /// Connections followed now.
    pub fn len(&self) -> usize {
        self.followed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.followed.is_empty()
    }

    /// Connections opened while [`MAX_FOLLOWED`] were followed, since the start.
    pub fn unfollowed(&self) -> u64 {
        self.unfollowed
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, collections::BTreeMap};

    use super::*;
    use crate::flow_records::{
        Directory, Limits,
        aggregate::{Verdict, tests::observation},
    };

    const SECOND: u64 = 1_000_000_000;

    #[derive(Default)]
    struct Table(RefCell<BTreeMap<ConntrackKey, ConntrackValue>>);

    impl ConnectionTable for Table {
        fn entry(&self, key: &ConntrackKey) -> Option<ConntrackValue> {
            self.0.borrow().get(key).copied()
        }
    }

    impl Table {
        fn set(&self, key: ConntrackKey, packets: [u32; 2], bytes: [u32; 2]) {
            self.0.borrow_mut().insert(
                key,
                ConntrackValue {
                    packets,
                    bytes,
                    ..ConntrackValue::default()
                },
            );
        }
    }

    fn key(sport: u16) -> ConntrackKey {
        ConntrackKey {
            src: [1; 16],
            dst: [2; 16],
            sport,
            dport: 80,
            protocol: 6,
            _pad: [0; 3],
        }
    }

    #[test]
    fn a_long_connection_adds_what_it_counted_to_each_window() {
        let table = Table::default();
        let directory = Directory::default();
        let mut aggregator = Aggregator::new(Limits::default());
        let mut connections = Connections::default();
        let record = aggregator.observe(
            observation(0, [10, 0, 0, 2], 80, Verdict::Allow),
            &directory,
        );
        table.set(key(1), [0, 0], [0, 0]);
        connections.follow(key(1), record.clone(), true, &table);

        // Window 1: four packets sent after the first, two replies.
        table.set(key(1), [4, 2], [400, 3000]);
        connections.collect(&table, &mut aggregator, 14 * SECOND);
        aggregator.tick(15 * SECOND);
        // Window 2: no new flow, one more packet each way; the record reappears for it.
        table.set(key(1), [5, 3], [460, 4500]);
        connections.collect(&table, &mut aggregator, 20 * SECOND);
        aggregator.tick(40 * SECOND);
        // The entry is gone: no longer followed.
        table.0.borrow_mut().clear();
        connections.collect(&table, &mut aggregator, 41 * SECOND);
        assert!(connections.is_empty());

        let windows: Vec<_> = aggregator.closed_since(0).collect();
        assert_eq!(windows.len(), 2);
        let first = &windows[0].records[0];
        assert_eq!(first.flows, 1);
        // The decided packet (from its event) and what the entry counted.
        assert_eq!(
            first.traffic,
            Traffic {
                src_packets: 5,
                src_bytes: 460,
                dst_packets: 2,
                dst_bytes: 3000
            }
        );
        let second = &windows[1].records[0];
        assert_eq!((second.key.clone(), second.flows), (record, 0));
        assert_eq!(
            second.traffic,
            Traffic {
                src_packets: 1,
                src_bytes: 60,
                dst_packets: 1,
                dst_bytes: 1500
            }
        );
    }

    #[test]
    fn a_rechecked_connection_adds_only_what_it_counts_from_then_on() {
        let table = Table::default();
        let directory = Directory::default();
        let mut aggregator = Aggregator::new(Limits::default());
        let mut connections = Connections::default();
        table.set(key(2), [100, 90], [10_000, 9_000]);
        let record = aggregator.observe(
            observation(0, [10, 0, 0, 2], 80, Verdict::Allow),
            &directory,
        );
        connections.follow(key(2), record, false, &table);
        table.set(key(2), [101, 90], [10_100, 9_000]);
        connections.collect(&table, &mut aggregator, SECOND);
        let open = aggregator.open();
        assert_eq!(
            (
                open.records[0].traffic.src_packets,
                open.records[0].traffic.src_bytes
            ),
            (2, 160)
        );
        // Counters wrap: the difference is still right.
        table.set(key(2), [u32::MAX, 90], [u32::MAX, 9_000]);
        connections.collect(&table, &mut aggregator, 2 * SECOND);
        table.set(key(2), [1, 90], [9, 9_000]);
        connections.collect(&table, &mut aggregator, 3 * SECOND);
        let open = aggregator.open();
        assert_eq!(
            open.records[0].traffic.src_packets,
            2 + u64::from(u32::MAX - 101) + 2
        );
    }

    #[test]
    fn past_the_bound_connections_are_counted_not_followed() {
        let table = Table::default();
        let directory = Directory::default();
        let mut aggregator = Aggregator::new(Limits::default());
        let mut connections = Connections::default();
        let record = aggregator.observe(
            observation(0, [10, 0, 0, 2], 80, Verdict::Allow),
            &directory,
        );
        for sport in 0..=MAX_FOLLOWED as u32 + 9 {
            let sport = u16::try_from(sport % 65_536).expect("in range");
            connections.follow(key(sport), record.clone(), true, &table);
        }
        assert_eq!(connections.len(), MAX_FOLLOWED);
        assert_eq!(connections.unfollowed(), 10);
        // One record key for them all, held once.
        assert_eq!(connections.records(), 1);
        table.set(key(0), [1, 0], [60, 0]);
        connections.collect(&table, &mut aggregator, 1);
        assert_eq!((connections.len(), connections.records()), (1, 1));
        table.0.borrow_mut().clear();
        connections.collect(&table, &mut aggregator, 2);
        assert_eq!((connections.len(), connections.records()), (0, 0));
    }
}
