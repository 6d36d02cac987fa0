//! The agent's state between events, and what it does on each: sync a compile into the
//! maps, attach to and bind new interfaces, read the datapath's counters, report status.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf, sync::Arc, time::Instant};

use anyhow::Result;
use tracing::{error, info, warn};

use crate::{
    compiler::{Compiler, MapChanges, MapContents, Scope},
    dataplane::{Attachment, Datapath, DataplaneError, MapDelta, fault, routes, service_maps},
    datastore::Datastore,
    health::Health,
    status::Status,
    web::WebState,
};

use super::{config::InterfaceSelection, retry::Retry};

pub(super) struct State {
    /// The web view and flow records served on `--ui-port`, when asked for.
    pub(super) web: Option<Arc<WebState>>,
    /// Holds the last compiled maps (`Compiler::maps`, endpoints not yet bound to interfaces).
    /// Possibly a compile that was refused: never read for a kernel write outside `sync`.
    pub(super) compiler: Compiler,
    /// What the maps hold now: the compiled maps with endpoints bound to their interfaces.
    pub(super) programmed: MapContents,
    /// The endpoint entries (unbound) of the last compile written whole: the one source of
    /// truth for everything written or chosen between syncs (binding endpoints to new
    /// interfaces, selecting interfaces to attach to). A refused or failed compile never
    /// reaches the kernel, not even in part.
    pub(super) applied: MapContents,
    /// Digest of the datastore contents the current sync tries to program.
    pub(super) attempted_digest: String,
    /// Keys compiles changed that a failed sync did not bring into the maps.
    pub(super) unsynced: MapChanges,
    /// A renumbering (see `dataplane::renumber`) was attempted and not finished: the next
    /// sync finishes it, whatever its compile.
    pub(super) renumbering: bool,
    /// Map writes to fail on purpose, from the test-only `dataplane::fault` seam.
    pub(super) fault_plan: Option<fault::FaultPlan>,
    pub(super) status: Status,
    pub(super) interfaces: InterfaceSelection,
    pub(super) uplinks: Option<glob::Pattern>,
    pub(super) health: Arc<Health>,
    /// This node's host endpoints, from the last compile.
    pub(super) host_interfaces: Vec<crate::compiler::HostInterface>,
    /// The datapath's per-rule counts, as totals per policy rule.
    pub(super) rule_hits: crate::rule_hits::RuleHitTotals,
    /// Compiles the cluster with its staged policies applied, for the flow records' pending
    /// verdicts (only while the web view is served and staged policies exist; never written
    /// to the kernel).
    pub(super) pending_compiler: Compiler,
}

impl State {
    pub(super) fn sync(
        &mut self,
        datastore: &mut dyn Datastore,
        datapath: &mut Datapath,
        scope: &Scope,
    ) -> Result<()> {
        let started = Instant::now();
        let snapshot = datastore.load()?;
        self.attempted_digest.clone_from(&snapshot.digest);
        let compiled = self.compiler.compile(&snapshot.cluster, scope);
        let tables = crate::flows::table_names(&compiled);
        // Only the entries the compiles changed since the last successful sync are compared
        // and written, so a small change costs a small sync however large the maps are.
        let mut keys = std::mem::take(&mut self.unsynced);
        keys.absorb(compiled.changes);
        // All or nothing: a policy that does not fit is not half written.
        if let Err(e) = datapath.check_fits(&compiled.maps) {
            self.unsynced = keys;
            return Err(e.into());
        }
        // Host endpoints bind their addresses to their interfaces: those of this compile.
        let mut routes = self.host_routes();
        for host in &compiled.host_interfaces {
            for ip in &host.ips {
                routes.insert(*ip, host.interface.clone());
            }
        }
        let binding = match datapath.binding(&routes) {
            Ok(binding) => binding,
            Err(e) => {
                self.unsynced = keys;
                return Err(e.into());
            }
        };
        let endpoints = compiled.maps.endpoints.clone();
        let delta = (!compiled.renumbered && !self.renumbering)
            .then(|| MapDelta::between(&self.programmed, &compiled.maps, &keys, &binding))
            .filter(|delta| !delta.needs_switch(&self.programmed));
        let stats = if let Some(delta) = delta {
            // Our share of the compiled maps goes now, so the next compile updates them in
            // place.
            drop(compiled.maps);
            let stats = match datapath.write(&delta) {
                Ok(stats) => stats,
                Err(e) => {
                    // Written or not, these keys are compared again at the next sync.
                    self.unsynced = keys;
                    return Err(e.into());
                }
            };
            delta.apply_to(&mut self.programmed);
            stats
        } else {
            // New numbers for every identity and table, or new tables for an endpoint and a
            // new identity for an address at once: switched over as a renumbering, so that no
            // packet meets a table of one numbering and an identity of the other.
            let desired = binding.bind_all((*compiled.maps).clone());
            drop(compiled.maps);
            self.renumbering = true;
            let stats = match datapath.write_renumbering(&self.programmed, &desired) {
                Ok(stats) => stats,
                Err(e) => {
                    // Retried as the same renumbering, from what the maps held before it.
                    self.unsynced = keys;
                    return Err(e.into());
                }
            };
            self.renumbering = false;
            self.programmed = desired;
            stats
        };
        // Written whole: this compile is the applied state now.
        self.applied.endpoints = endpoints;
        if let Some(web) = &self.web {
            let services = crate::services::service_table(
                &snapshot.cluster,
                scope.node_name.as_deref(),
                &scope.host_addrs,
            );
            web.records.set_view(
                crate::flow_records::Directory::of(&snapshot.cluster).with_services(&services),
                tables.clone(),
            );
            let pending = snapshot.cluster.has_staged().then(|| {
                let compiled = self
                    .pending_compiler
                    .compile(&snapshot.cluster.pending(), scope);
                crate::flow_records::live::PendingView {
                    tables: crate::flows::table_names(&compiled),
                    maps: compiled.maps,
                }
            });
            web.records.set_pending(pending);
            web.set_applied(Arc::new(snapshot.cluster.clone()), scope.clone());
        }
        self.status.tables = tables;
        datapath.set_host_interfaces(compiled.host_interfaces.iter().map(|h| h.interface.clone()));
        self.host_interfaces = compiled.host_interfaces;
        let services = service_maps(&snapshot.cluster, scope);
        let service_stats = datapath.sync_services(&services)?;
        self.status.digest = snapshot.digest;
        self.status.generation += 1;
        self.status.applied_at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.status.endpoints = self.programmed.endpoints.len();
        self.status.identities = self.programmed.identities.len();
        self.status.rules = self.programmed.rules.len();
        self.status.cluster_policies =
            crate::status::cluster_policy_states(&snapshot.cluster, &snapshot.errors);
        self.status.errors = snapshot.errors;
        self.status.sync_millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.health.synced(
            &self.programmed,
            self.status.errors.len(),
            started.elapsed(),
        );
        self.health.cluster_policies(&self.status.cluster_policies);
        info!(
            generation = self.status.generation,
            written = stats.written,
            removed = stats.removed,
            endpoints = self.status.endpoints,
            identities = self.status.identities,
            rules = self.status.rules,
            service_frontends = services.frontends.len(),
            service_entries_written = service_stats.written + service_stats.removed,
            rejected = self.status.errors.len(),
            millis = self.status.sync_millis,
            "programmed"
        );
        Ok(())
    }

    /// A sync from the loop: on failure the maps keep what they hold, the failure is reported
    /// (log, status file, health) and a retry is scheduled.
    pub(super) fn sync_and_report(
        &mut self,
        datastore: &mut dyn Datastore,
        datapath: &mut Datapath,
        scope: &Scope,
        retry: &mut Retry,
        status_file: Option<&PathBuf>,
    ) {
        match self.sync(datastore, datapath, scope) {
            Ok(()) => {
                retry.succeeded();
                self.status.refused = None;
                self.arm_faults(datapath);
            }
            Err(e) => {
                let delay = retry.failed();
                let error = format!("{e:#}");
                self.health.sync_failed(format!(
                    "{} sync(s) in a row failed, retrying in {} ms: {error}",
                    retry.attempts,
                    delay.as_millis()
                ));
                error!(
                    error,
                    attempts = retry.attempts,
                    retry_in_ms = delay.as_millis(),
                    "sync failed; the maps keep what they held"
                );
                self.status.refused = Some(crate::status::Refusal {
                    digest: self.attempted_digest.clone(),
                    error,
                    attempts: retry.attempts,
                    retry_in_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        self.refresh_datapath_stats(datapath);
        self.report(status_file);
    }

    /// After a successful sync: counts it towards the test-only fault plan, and arms its
    /// faults when their turn comes.
    pub(super) fn arm_faults(&mut self, datapath: &mut Datapath) {
        let Some(plan) = &mut self.fault_plan else {
            return;
        };
        plan.after_syncs = plan.after_syncs.saturating_sub(1);
        if plan.after_syncs == 0 {
            warn!(faults = ?plan.faults, "test seam: the next map writes fail");
            datapath.inject_write_faults(plan.faults);
            self.fault_plan = None;
        }
    }

    /// New pods bring new interfaces and routes: attach to them, and bind their addresses.
    /// Whatever could not be done is tried again soon (`retry`), not at the next link event.
    pub(super) fn rescan(
        &mut self,
        datapath: &mut Datapath,
        retry: &mut Retry,
        status_file: Option<&PathBuf>,
    ) {
        // One read of the route table serves both.
        let routes = self.host_routes();
        let attachment = match self.attach(datapath, &routes) {
            Ok(attachment) => attachment,
            Err(e) => {
                let delay = retry.failed();
                warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = delay.as_millis(),
                    "attaching to interfaces"
                );
                return;
            }
        };
        let bound = self.rebind(datapath, &routes);
        if let Err(e) = &bound {
            warn!(error = format!("{e:#}"), "binding endpoints to interfaces");
        }
        if bound.is_err() || !attachment.failed.is_empty() {
            let delay = retry.failed();
            info!(
                retry_in_ms = delay.as_millis(),
                attempts = retry.attempts,
                "interfaces not all attached and bound; scanning again"
            );
        } else {
            retry.succeeded();
        }
        self.attached(attachment);
        // Also the periodic refresh of the datapath's figures (connections, packets).
        self.refresh_datapath_stats(datapath);
        self.report(status_file);
    }

    /// Reads the policy maps back and repairs whatever differs from what the agent wrote
    /// (`programmed`: the applied state, bound to interfaces): drift from another writer of
    /// the pinned maps, or from a write the agent believes done.
    pub(super) fn resync(&mut self, datapath: &mut Datapath, status_file: Option<&PathBuf>) {
        if self.renumbering {
            // Half switched on purpose: the retry of the renumbering finishes it.
            info!("resync: skipped while a renumbering is retried");
            return;
        }
        let started = Instant::now();
        match datapath.repair(&self.programmed) {
            Ok(drift) if drift.total() == 0 => {
                info!(
                    entries = self.programmed.endpoints.len()
                        + self.programmed.identities.len()
                        + self.programmed.rules.len(),
                    millis = started.elapsed().as_millis(),
                    "resync: the maps hold the applied state"
                );
                self.health.resynced(&drift);
            }
            Ok(drift) => {
                for (map, counts) in drift.per_map() {
                    if counts.total() > 0 {
                        warn!(
                            map,
                            missing = counts.missing,
                            unexpected = counts.unexpected,
                            changed = counts.changed,
                            "resync: the map differed from the applied state; repaired"
                        );
                    }
                }
                self.health.resynced(&drift);
                self.status.drift_repaired += drift.total() as u64;
            }
            Err(e) => {
                warn!(
                    error = format!("{e:#}"),
                    "resync: reading or repairing the maps"
                );
            }
        }
        self.report(status_file);
    }

    /// Records what a scan attached: status and metrics, and an error log per interface
    /// that newly fails (each scan retries it).
    pub(super) fn attached(&mut self, attachment: Attachment) {
        for failure in &attachment.failed {
            if !self.status.attach_failures.contains(failure) {
                error!(
                    interface = %failure.interface,
                    error = %failure.error,
                    "could not attach the programs: this interface's endpoints are not enforced here"
                );
            }
        }
        self.health
            .attached(attachment.interfaces.len(), attachment.failed.len());
        self.status.interfaces = attachment.interfaces;
        self.status.attach_failures = attachment.failed;
    }

    /// Attaches to the selected interfaces (`routes`: the host routes, for the routed mode).
    pub(super) fn attach(
        &self,
        datapath: &mut Datapath,
        routes: &BTreeMap<IpAddr, String>,
    ) -> Result<Attachment, DataplaneError> {
        let uplink = |name: &str| self.uplinks.as_ref().is_some_and(|p| p.matches(name));
        // (The node's loopback never gets it: nothing leaves through it.)
        match &self.interfaces {
            InterfaceSelection::Routed => {
                let routed = routes::endpoint_interfaces(&self.applied, routes);
                datapath.attach_interfaces(&|name| routed.contains(name), &uplink)
            }
            InterfaceSelection::Pattern(pattern) => {
                datapath.attach_interfaces(&|name| pattern.matches(name), &uplink)
            }
        }
    }

    /// Re-binds endpoints to interfaces after routes changed; whether anything was written.
    pub(super) fn rebind(
        &mut self,
        datapath: &mut Datapath,
        routes: &BTreeMap<IpAddr, String>,
    ) -> Result<bool> {
        // A renumbering that failed part way holds endpoints of both numberings: the sync that
        // finishes it binds them all.
        if self.renumbering {
            return Ok(false);
        }
        // Only endpoint entries carry bindings; the applied state's, never a refused compile's.
        let applied = &self.applied;
        let keys = MapChanges {
            endpoints: applied
                .endpoints
                .keys()
                .chain(self.programmed.endpoints.keys())
                .copied()
                .collect(),
            ..MapChanges::default()
        };
        let binding = datapath.binding(routes)?;
        let delta = MapDelta::between(&self.programmed, applied, &keys, &binding);
        if delta.is_empty() {
            return Ok(false);
        }
        let stats = datapath.write(&delta)?;
        delta.apply_to(&mut self.programmed);
        info!(
            written = stats.written,
            "endpoints bound to their interfaces"
        );
        Ok(true)
    }

    /// The node's host routes through endpoint interfaces; none (addresses stay unbound, as
    /// before binding existed) if the route table cannot be read.
    pub(super) fn host_routes(&self) -> BTreeMap<IpAddr, String> {
        let mut routes =
            routes::host_routes(&|interface| self.interfaces.routes_through(interface))
                .unwrap_or_else(|e| {
                    warn!(error = %e, "reading the route table; endpoints stay unbound");
                    Default::default()
                });
        // A host endpoint's addresses belong to its interface: no route says so.
        for host in &self.host_interfaces {
            for ip in &host.ips {
                routes.insert(*ip, host.interface.clone());
            }
        }
        routes
    }

    /// Reads the datapath's own figures (tracked connections, packet counts) into the status
    /// and the metrics. Bounded work: one pass over the conntrack map's keys.
    pub(super) fn refresh_datapath_stats(&mut self, datapath: &Datapath) {
        // Host endpoints' programs are loaded when first needed: the list can grow.
        if self.status.programs.len() != datapath.programs().len() {
            self.status.programs = datapath.programs().to_vec();
        }
        match datapath.conntrack_occupancy() {
            Ok(entries) => self.status.conntrack_entries = entries,
            Err(e) => warn!(error = format!("{e:#}"), "counting tracked connections"),
        }
        match datapath.packet_counts() {
            Ok(counts) => {
                self.status.packets = counts
                    .into_iter()
                    .map(|(name, c)| (name, crate::status::PacketCounts::of(&c)))
                    .collect();
            }
            Err(e) => warn!(error = format!("{e:#}"), "reading packet counters"),
        }
        let total = self.status.packets.values().fold(
            crate::status::PacketCounts::default(),
            |mut total, c| {
                total.add(c);
                total
            },
        );
        self.health
            .datapath_stats(self.status.conntrack_entries, &total);
        self.refresh_rule_hits(datapath);
    }

    /// Reads the datapath's per-rule counts into the totals, the status, the metrics and the
    /// web view. Bounded work: one pass over the counted entries.
    pub(super) fn refresh_rule_hits(&mut self, datapath: &Datapath) {
        // Flow observability's losses, with the counts it reads as often.
        match datapath.flow_events_dropped() {
            Ok(dropped) => {
                let (lost, unfollowed) = self.web.as_ref().map_or(((0, 0), 0), |web| {
                    (web.records.lost_total(), web.records.unfollowed())
                });
                self.health.flow_losses(dropped, lost, unfollowed);
            }
            Err(e) => warn!(error = format!("{e:#}"), "reading the flow event budget"),
        }
        match datapath.rule_hits() {
            Ok(read) => {
                self.rule_hits.update(read, &self.status.tables);
                self.status.rule_hits = self.rule_hits.counts();
                self.health.rule_hits(&self.status.rule_hits);
                if let Some(web) = &self.web {
                    web.set_rule_hits(self.status.rule_hits.clone());
                }
            }
            Err(e) => warn!(error = format!("{e:#}"), "reading rule counters"),
        }
    }

    pub(super) fn report(&self, path: Option<&PathBuf>) {
        if let Some(path) = path
            && let Err(e) = self.status.write_atomic(path)
        {
            warn!(error = format!("{e:#}"), "writing status");
        }
    }
}
