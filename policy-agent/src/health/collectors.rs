//! The metrics read at scrape time rather than kept in the registry: each a fixed or bounded
//! set of series, set by the agent's loop (`Health`'s setters) and encoded when `/metrics` is
//! asked.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use policy_common::counters::drop_reason;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::counter::ConstCounter,
};

use crate::{
    datastore::kubernetes::{Resource, WatchProgress},
    rule_hits::RuleCount,
};

/// `palisade_drops_total{reason}`: the datapath's drops by reason, summed over the node's
/// interfaces, as last read. One series per reason, always (a fixed set).
#[derive(Debug, Default)]
pub(super) struct DropsCollector {
    pub(super) totals: Mutex<[u64; drop_reason::COUNT]>,
}

impl Collector for DropsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = *self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let sample = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "drops",
            "Packets the programs dropped since they were loaded, by reason (no_rule: isolated and no rule allowed it; deny_rule: a Deny rule or a tier's default; revoked: a tracked connection the policy no longer allows; unknown_endpoint; spoofed: an endpoint's address on another interface; fragment: a later fragment without its allowed first; malformed; capacity: state the datapath needed was lost)",
            None,
            sample.metric_type(),
        )?;
        for reason in drop_reason::ALL {
            let labels = [("reason", drop_reason::name(reason))];
            let metric = family.encode_family(&labels)?;
            ConstCounter::new(totals[usize::from(reason)]).encode(metric)?;
        }
        Ok(())
    }
}

/// `palisade_rule_packets_total` and `palisade_rule_flows_total`, labelled `kind`,
/// `namespace`, `name`, `rule`, `action`: one series per rule that decided a packet (see
/// `crate::rule_hits`).
#[derive(Debug, Default)]
pub(super) struct RuleHitsCollector {
    pub(super) counts: Mutex<Vec<RuleCount>>,
}

impl Collector for RuleHitsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        type Read = fn(&RuleCount) -> u64;
        let families: [(&str, &str, Read); 2] = [
            (
                "rule_packets",
                "Packets policy decided with each rule (a flow's first packet, re-checks after a policy change, untracked packets; not the later packets of a tracked connection)",
                |c| c.counts.packets,
            ),
            (
                "rule_flows",
                "New tracked connections each rule allowed",
                |c| c.counts.flows,
            ),
        ];
        for (name, help, read) in families {
            let sample = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, sample.metric_type())?;
            for count in &counts {
                let rule = &count.rule;
                let labels = [
                    ("kind", rule.policy.kind.as_str()),
                    ("namespace", rule.policy.namespace.as_str()),
                    ("name", rule.policy.name.as_str()),
                    ("rule", rule.rule.as_str()),
                    ("action", rule.action.as_str()),
                ];
                let metric = family.encode_family(&labels)?;
                ConstCounter::new(read(count)).encode(metric)?;
            }
        }
        Ok(())
    }
}

/// `palisade_flow_events_dropped_total` (events the datapath did not write: its per-CPU budget
/// for the second spent, or the ring full) and `palisade_flow_records_lost_total{verdict}`
/// (flows that found their window of records full) and
/// `palisade_flow_connections_unfollowed_total` (connections whose later packets the records
/// could not count: see `flow_records::connections`): losses are counted, never silent.
#[derive(Debug, Default)]
pub(super) struct FlowLossCollector {
    pub(super) counts: Mutex<[u64; 4]>,
}

impl Collector for FlowLossCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let [dropped, lost_allowed, lost_denied, unfollowed] =
            *self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let sample = ConstCounter::new(0u64);
        let events = encoder.encode_descriptor(
            "flow_events_dropped",
            "Flow events the datapath did not write since it was loaded (each CPU's budget of 2,000 a second spent, or the ring full)",
            None,
            sample.metric_type(),
        )?;
        ConstCounter::new(dropped).encode(events)?;
        let mut records = encoder.encode_descriptor(
            "flow_records_lost",
            "Flows the agent's records did not hold because their window was full",
            None,
            sample.metric_type(),
        )?;
        for (verdict, count) in [("allow", lost_allowed), ("deny", lost_denied)] {
            let labels = [("verdict", verdict)];
            let metric = records.encode_family(&labels)?;
            ConstCounter::new(count).encode(metric)?;
        }
        let connections = encoder.encode_descriptor(
            "flow_connections_unfollowed",
            "Connections opened while the flow records followed as many as they may: their packets after the first are not in the records",
            None,
            sample.metric_type(),
        )?;
        ConstCounter::new(unfollowed).encode(connections)?;
        Ok(())
    }
}

/// `palisade_datastore_lists_total{resource}` and `palisade_datastore_watch_errors_total{resource}`:
/// the watchers' counters, read at scrape time.
#[derive(Debug, Default)]
pub(super) struct WatchCollector {
    pub(super) progress: OnceLock<Arc<WatchProgress>>,
}

impl Collector for WatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(progress) = self.progress.get() else {
            return Ok(());
        };
        type Read = fn(&WatchProgress, Resource) -> u64;
        let counters: [(&str, &str, Read); 2] = [
            (
                "datastore_lists",
                "Full lists from the API server (first sync and relists)",
                WatchProgress::lists,
            ),
            (
                "datastore_watch_errors",
                "Failed lists or watches (each retried with backoff)",
                WatchProgress::errors,
            ),
        ];
        for (name, help, read) in counters {
            let sample = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, sample.metric_type())?;
            for resource in Resource::ALL {
                let labels = [("resource", resource.plural())];
                let metric = family.encode_family(&labels)?;
                ConstCounter::new(read(progress, resource)).encode(metric)?;
            }
        }
        Ok(())
    }
}
