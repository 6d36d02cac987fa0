//! The agent's flow records under a flood of distinct flows: the memory they hold and the time
//! each event costs the agent, for 1,000,000 flows no two of which share a record.
//!
//! Run: `cargo bench -p policy-agent --bench flow_records` (no root needed: the events are
//! fed to `FlowRecords` as the ring would hand them over, over 75 s of event time, so that
//! windows close as they would on a node and every kept window is full; every allowed flow
//! opens a connection that stays open, so the records follow as many as they may). Memory is counted by this binary's own
//! allocator: what is allocated at the peak and what stays allocated at the end, beyond what
//! was allocated before the first event. Prints one JSON line for `cargo xtask bench`.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    collections::BTreeMap,
    net::Ipv4Addr,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use policy_agent::{
    flow_records::{Directory, FlowRecords, Limits, connections::ConnectionTable},
    flows::TableNames,
};
use policy_common::{
    conntrack::{ConntrackKey, ConntrackValue},
    flow::{FlowEvent, OPENED},
    ipv4_mapped,
};

/// A connection table in which every connection stays open: the records follow as many as
/// they may for the whole run (their bound's worst case).
struct Open;

impl ConnectionTable for Open {
    fn entry(&self, _: &ConntrackKey) -> Option<ConntrackValue> {
        Some(ConntrackValue::default())
    }
}

/// The system allocator, counting the bytes allocated now and at the peak.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as the system allocator requires.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a pointer this allocator returned, with its layout.
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FLOWS: u32 = 1_000_000;
/// Event time between two flows: 1,000,000 flows over 75 s, five 15-second windows, so that
/// the windows kept for late readers are all full.
const EVENT_GAP_NS: u64 = 75_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let flows = if quick { FLOWS / 10 } else { FLOWS };
    let limits = Limits::default();
    let records = FlowRecords::new(limits);
    // One table naming one policy, as the agent's view would.
    let tables = BTreeMap::from([(
        1,
        TableNames {
            direction: "ingress".to_owned(),
            policies: vec!["NetworkPolicy shop/web".to_owned()],
            members: Vec::new(),
        },
    )]);
    records.set_view(Directory::default(), tables);
    PEAK.store(ALLOCATED.load(Ordering::Relaxed), Ordering::Relaxed);
    let before = ALLOCATED.load(Ordering::Relaxed);

    let started = Instant::now();
    let mut now = 0u64;
    for i in 0..flows {
        // Every flow its own record: a source address of its own (10.x.y.z).
        let src = Ipv4Addr::from(0x0a00_0000 | i);
        let allowed = i % 3 != 0;
        let event = FlowEvent {
            time_ns: now,
            src: ipv4_mapped(src.octets()),
            dst: ipv4_mapped([10, 200, 0, 1]),
            sport: 40_000,
            dport: 8080,
            protocol: 6,
            direction: policy_common::flow::TO_ENDPOINT,
            allowed: u8::from(allowed),
            ifindex: 7,
            table: 1,
            len: 74,
            flags: if allowed { OPENED } else { 0 },
            ..FlowEvent::default()
        };
        records.record(&event, Some(&Open));
        now += EVENT_GAP_NS;
        if i % 1000 == 0 {
            records.close_due(&Open, now);
        }
    }
    records.close_due(&Open, now);
    let took = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let retained = ALLOCATED.load(Ordering::Relaxed) - before;
    let snapshot = records.snapshot(0);
    let kept: usize = snapshot
        .closed
        .iter()
        .map(|w| w.records.len())
        .sum::<usize>()
        + snapshot.open.records.len();
    let lost: u64 = snapshot
        .closed
        .iter()
        .chain(std::iter::once(&snapshot.open))
        .map(|w| w.lost_allowed + w.lost_denied)
        .sum();
    #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let ns_per_flow = took.as_nanos() as f64 / f64::from(flows);
    eprintln!(
        "{flows} distinct flows over {:.0} s of event time: peak {:.1} MiB, retained {:.1} MiB, \
         {kept} records kept in {} windows, {lost} flows counted as lost in them, {ns_per_flow:.0} ns per event",
        Duration::from_nanos(now).as_secs_f64(),
        peak as f64 / 1048576.0,
        retained as f64 / 1048576.0,
        snapshot.closed.len() + 1,
    );
    println!(
        "{}",
        serde_json::json!({
            "kind": "flow_records_memory",
            "flows": flows,
            "window_s": limits.window.as_secs(),
            "max_records": limits.max_records,
            "keep_windows": limits.keep_windows,
            "peak_bytes": peak,
            "retained_bytes": retained,
            "records_kept": kept,
            "lost_in_kept_windows": lost,
            "ns_per_event": ns_per_flow,
            "connections_unfollowed": records.unfollowed(),
        })
    );
}
