//! `/healthz`, `/readyz` and Prometheus `/metrics` over plain HTTP/1.1.
//!
//! - `/healthz` answers 200 while the agent's loop is turning (it beats at least every few
//!   seconds, also while it waits for the API server); 503 once it has been stuck for
//!   [`LIVENESS_STALE`], so a kubelet restarts a wedged agent. While syncs fail it still
//!   answers 200 (the last applied state is enforced, and a restart would not help), with the
//!   failure and the applied state's age in the body.
//! - `/readyz` answers 200 once the first full state has been programmed into the maps and
//!   the programs attached; it stays 200 while the API server is away, since enforcement of
//!   the last known state goes on.
//! - `/metrics` is the OpenMetrics text format. Labels come from closed sets (map names,
//!   resource names), never from object names or error messages.
//!
//! Nothing here changes the agent's state, and the listener binds where the operator says
//! (loopback by default).
//!
//! The metrics encoded at scrape time (drops by reason, per-rule counts, flow observability's
//! losses, the watchers' counters) are in [`collectors`].

mod collectors;

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use policy_common::counters::drop_reason;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;
use tracing::warn;

use self::collectors::{DropsCollector, FlowLossCollector, RuleHitsCollector, WatchCollector};
use crate::{
    compiler::MapContents,
    datastore::kubernetes::WatchProgress,
    http_server::{self, text},
    rule_hits::RuleCount,
};

/// `/healthz` fails when the loop has not beaten for this long.
pub const LIVENESS_STALE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MapLabel {
    map: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClusterPolicyLabel {
    kind: &'static str,
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DriftLabel {
    map: &'static str,
    /// `missing`, `unexpected` or `changed`.
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The agent's health and its metrics, shared between its loop and the HTTP server.
pub struct Health {
    started: Instant,
    /// Added to the time since `started`: zero, except where a test ages the agent (an
    /// `Instant` cannot be moved before the machine's boot, which is less than a minute ago
    /// on a fresh CI machine).
    skew: Duration,
    ready: AtomicBool,
    /// Milliseconds since `started` at the loop's last beat.
    heartbeat: AtomicU64,
    registry: Registry,
    syncs: Counter,
    sync_failures: Counter,
    sync_seconds: Histogram,
    /// Milliseconds since `started` when the applied state was last written whole;
    /// `u64::MAX` before the first sync.
    applied_at: AtomicU64,
    applied_age: Gauge<f64, AtomicU64>,
    /// Why syncs fail, while they do.
    failing: Mutex<Option<String>>,
    resyncs: Counter,
    drift_entries: Family<DriftLabel, Counter>,
    map_entries: Family<MapLabel, Gauge>,
    rejected: Gauge,
    cluster_policies: Family<ClusterPolicyLabel, Gauge>,
    interfaces: Gauge,
    attach_failures: Gauge,
    ready_gauge: Gauge,
    conntrack_entries: Gauge,
    packets: Family<OutcomeLabel, Gauge>,
    drops: Arc<DropsCollector>,
    rule_hits: Arc<RuleHitsCollector>,
    flow_losses: Arc<FlowLossCollector>,
    watch: Arc<WatchCollector>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let syncs = Counter::default();
        registry.register(
            "syncs",
            "Datastore states programmed into the maps",
            syncs.clone(),
        );
        let sync_failures = Counter::default();
        registry.register(
            "sync_failures",
            "Syncs that failed; the maps kept the last programmed state",
            sync_failures.clone(),
        );
        // 1 ms to about 8 s.
        let sync_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "sync_duration_seconds",
            "Time to read, compile and program one datastore state",
            sync_seconds.clone(),
        );
        let applied_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "applied_state_age_seconds",
            "Seconds since the state the maps hold was programmed (it grows while syncs fail)",
            applied_age.clone(),
        );
        let resyncs = Counter::default();
        registry.register(
            "resyncs",
            "Periodic comparisons of the policy maps with the applied state",
            resyncs.clone(),
        );
        let drift_entries = Family::<DriftLabel, Counter>::default();
        registry.register(
            "drift_entries",
            "Policy map entries a resync found differing from the applied state, and repaired",
            drift_entries.clone(),
        );
        let map_entries = Family::<MapLabel, Gauge>::default();
        registry.register(
            "map_entries",
            "Entries in each policy map",
            map_entries.clone(),
        );
        let rejected = Gauge::default();
        registry.register(
            "rejected_objects",
            "Objects rejected by the last load (see the status file for which and why)",
            rejected.clone(),
        );
        let cluster_policies = Family::<ClusterPolicyLabel, Gauge>::default();
        registry.register(
            "cluster_policies",
            "Administrators' policies by kind and state: accepted (enforced as written), rejected_previous (rejected, the last accepted version enforced), rejected (not enforced); the status file names them",
            cluster_policies.clone(),
        );
        let interfaces = Gauge::default();
        registry.register(
            "attached_interfaces",
            "Endpoint interfaces the programs are attached to",
            interfaces.clone(),
        );
        let attach_failures = Gauge::default();
        registry.register(
            "attach_failures",
            "Interfaces that should run the programs and could not be attached to (their endpoints are not enforced there; the status file names them)",
            attach_failures.clone(),
        );
        let ready_gauge = Gauge::default();
        registry.register(
            "ready",
            "1 once the first full state is programmed",
            ready_gauge.clone(),
        );
        let conntrack_entries = Gauge::default();
        registry.register(
            "conntrack_entries",
            "Connections tracked by the datapath (the LRU evicts the oldest beyond its capacity)",
            conntrack_entries.clone(),
        );
        // Totals over the node's endpoint interfaces (per interface: the status file, or
        // bpftool on PALISADE_COUNTERS), so the label set stays fixed.
        let packets = Family::<OutcomeLabel, Gauge>::default();
        registry.register(
            "packets",
            "Packets the programs allowed, denied, or dropped as malformed, since they were loaded",
            packets.clone(),
        );
        let drops = Arc::new(DropsCollector::default());
        registry.register_collector(Box::new(drops.clone()));
        let rule_hits = Arc::new(RuleHitsCollector::default());
        registry.register_collector(Box::new(rule_hits.clone()));
        let flow_losses = Arc::new(FlowLossCollector::default());
        registry.register_collector(Box::new(flow_losses.clone()));
        let watch = Arc::new(WatchCollector::default());
        registry.register_collector(Box::new(watch.clone()));
        Self {
            started: Instant::now(),
            skew: Duration::ZERO,
            ready: AtomicBool::new(false),
            heartbeat: AtomicU64::new(0),
            registry,
            syncs,
            sync_failures,
            sync_seconds,
            applied_at: AtomicU64::new(u64::MAX),
            applied_age,
            failing: Mutex::new(None),
            resyncs,
            drift_entries,
            map_entries,
            rejected,
            cluster_policies,
            interfaces,
            attach_failures,
            ready_gauge,
            conntrack_entries,
            packets,
            drops,
            rule_hits,
            flow_losses,
            watch,
        }
    }

    /// What the datapath reports of itself: tracked connections and packet totals.
    pub fn datapath_stats(&self, conntrack_entries: usize, packets: &crate::status::PacketCounts) {
        self.conntrack_entries.set(gauge_value(conntrack_entries));
        for (outcome, count) in [
            ("allowed", packets.allowed),
            ("denied", packets.denied),
            ("malformed", packets.malformed),
        ] {
            self.packets
                .get_or_create(&OutcomeLabel { outcome })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let mut drops = self.drops.totals.lock().unwrap_or_else(|e| e.into_inner());
        for reason in drop_reason::ALL {
            drops[usize::from(reason)] = packets
                .drops
                .get(drop_reason::name(reason))
                .copied()
                .unwrap_or(0);
        }
    }

    /// What flow observability lost, as last read: events the datapath did not write, flows
    /// the records' full windows did not hold (allowed, denied), and connections opened while
    /// the records followed as many as they may (their later packets go uncounted).
    pub fn flow_losses(
        &self,
        events_dropped: u64,
        records_lost: (u64, u64),
        connections_unfollowed: u64,
    ) {
        *self
            .flow_losses
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = [
            events_dropped,
            records_lost.0,
            records_lost.1,
            connections_unfollowed,
        ];
    }

    /// The per-rule totals, as last read.
    pub fn rule_hits(&self, counts: &[RuleCount]) {
        *self
            .rule_hits
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = counts.to_vec();
    }

    fn since_start(&self) -> Duration {
        self.started.elapsed() + self.skew
    }

    /// The loop is alive.
    pub fn beat(&self) {
        self.heartbeat
            .store(millis(self.since_start()), Ordering::Relaxed);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.ready_gauge.set(1);
        self.beat();
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn is_alive(&self) -> bool {
        let last = Duration::from_millis(self.heartbeat.load(Ordering::Relaxed));
        self.since_start().saturating_sub(last) < LIVENESS_STALE
    }

    /// Exposes the Kubernetes watchers' lists and errors.
    pub fn watch_progress(&self, progress: Arc<WatchProgress>) {
        let _set_once = self.watch.progress.set(progress);
    }

    pub fn synced(&self, maps: &MapContents, rejected: usize, took: Duration) {
        self.syncs.inc();
        self.sync_seconds.observe(took.as_secs_f64());
        for (map, entries) in [
            ("endpoints", maps.endpoints.len()),
            ("identities", maps.identities.len()),
            ("rules", maps.rules.len()),
        ] {
            self.map_entries
                .get_or_create(&MapLabel { map })
                .set(gauge_value(entries));
        }
        self.rejected.set(gauge_value(rejected));
        self.applied_at
            .store(millis(self.since_start()), Ordering::Relaxed);
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.beat();
    }

    /// The administrators' policies of the sync just programmed, counted by kind and state.
    pub fn cluster_policies(&self, states: &[crate::status::ClusterPolicyState]) {
        for kind in crate::cluster_policy::ApiKind::ALL {
            for state in ["accepted", "rejected_previous", "rejected"] {
                let count = states
                    .iter()
                    .filter(|s| s.kind == kind.as_str())
                    .filter(|s| {
                        state
                            == match (s.accepted, s.enforced) {
                                (true, _) => "accepted",
                                (false, true) => "rejected_previous",
                                (false, false) => "rejected",
                            }
                    })
                    .count();
                self.cluster_policies
                    .get_or_create(&ClusterPolicyLabel {
                        kind: kind.as_str(),
                        state,
                    })
                    .set(gauge_value(count));
            }
        }
    }

    /// A sync failed: the maps keep the applied state; `why` goes into `/healthz`.
    pub fn sync_failed(&self, why: String) {
        self.sync_failures.inc();
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }

    /// A resync compared the maps with the applied state (and repaired `drift`).
    pub fn resynced(&self, drift: &crate::dataplane::Drift) {
        self.resyncs.inc();
        for (map, counts) in drift.per_map() {
            for (kind, n) in [
                ("missing", counts.missing),
                ("unexpected", counts.unexpected),
                ("changed", counts.changed),
            ] {
                if n > 0 {
                    self.drift_entries
                        .get_or_create(&DriftLabel { map, kind })
                        .inc_by(n as u64);
                }
            }
        }
    }

    /// How long ago the applied state was programmed; `None` before the first sync.
    fn applied_age(&self) -> Option<Duration> {
        let at = self.applied_at.load(Ordering::Relaxed);
        (at != u64::MAX).then(|| self.since_start().saturating_sub(Duration::from_millis(at)))
    }

    /// `/healthz`'s body while alive: "ok", and why syncs fail while they do.
    fn liveness_detail(&self) -> String {
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match (failing, self.applied_age()) {
            (None, _) => "ok\n".to_owned(),
            (Some(why), Some(age)) => format!(
                "ok\nsync failing: {why}\nenforcing the state applied {} s ago\n",
                age.as_secs()
            ),
            (Some(why), None) => format!("ok\nsync failing: {why}\nnothing applied yet\n"),
        }
    }

    /// Interfaces running the programs, and those that should and do not.
    pub fn attached(&self, interfaces: usize, failed: usize) {
        self.interfaces.set(gauge_value(interfaces));
        self.attach_failures.set(gauge_value(failed));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn metrics(&self) -> String {
        if let Some(age) = self.applied_age() {
            self.applied_age.set(age.as_secs_f64());
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            warn!(error = %e, "encoding metrics");
        }
        text
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, health: Arc<Health>) {
    http_server::serve(listener, "health/metrics", health, respond::<Incoming>).await;
}

fn respond<B>(health: &Health, request: &Request<B>) -> Response<http_server::Body> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned());
    }
    match request.uri().path() {
        "/healthz" if health.is_alive() => text(StatusCode::OK, health.liveness_detail()),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent's loop is stuck\n".to_owned(),
        ),
        "/readyz" if health.is_ready() => text(StatusCode::OK, "ready\n".to_owned()),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first full state is not programmed yet\n".to_owned(),
        ),
        "/metrics" => {
            let mut response = text(StatusCode::OK, health.metrics());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

#[cfg(test)]
mod tests;
