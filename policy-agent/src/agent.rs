//! The agent's main loop: watch the datastore, compile, sync the maps, attach to new
//! endpoint interfaces, report status.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{Signal, SignalKind},
    sync::mpsc,
};
use tracing::{error, info, warn};

use crate::{
    compiler::{Compiler, MapChanges, MapContents, Scope},
    dataplane::{
        Attachment, Capacities, Datapath, DataplaneError, MapDelta, fault,
        routes::{self, Binding},
        service_maps,
    },
    datastore::{
        Datastore,
        file::FileDatastore,
        kubernetes::{self, KubernetesDatastore},
    },
    flow_records::FlowRecords,
    health::{self, Health},
    link_events::LinkEvents,
    status::Status,
    web::WebState,
};

/// How long to wait after a file event for the rest of a burst (an editor's save, a lab
/// writing a step's files) before recompiling.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// How often to look for new endpoint interfaces when link events are unavailable.
const INTERFACE_SCAN: Duration = Duration::from_millis(500);
/// With link events, a rescan this often anyway: a safety net, not the way changes are found.
const INTERFACE_RESYNC: Duration = Duration::from_secs(10);

/// Where the cluster comes from.
#[derive(Debug, Clone)]
pub enum DatastoreConfig {
    /// A directory of manifests, watched with inotify.
    Files(PathBuf),
    /// The API server: the kubeconfig file given, else the usual inference (`KUBECONFIG`,
    /// `~/.kube/config`, then the in-cluster service account).
    Kubernetes { kubeconfig: Option<PathBuf> },
}

/// How often to say that the first full list from the API server is still awaited (and to
/// tell `/healthz` that the loop is alive meanwhile).
const SYNC_WAIT_LOG: Duration = Duration::from_secs(5);
/// A failed sync is tried again after this, doubling up to [`RETRY_MAX`] (jittered), as
/// kube-runtime's controllers requeue: on a quiet cluster no event would ever retry it.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// An interface scan that could not attach to or bind every endpoint interface (one that
/// vanished or was still being set up under the agent, a transient kernel refusal) is tried
/// again after this, doubling up to [`RESCAN_RETRY_MAX`]: the next link event may be long in
/// coming on a quiet node, and until then that pod's packets are dropped (fail closed).
const RESCAN_RETRY_FIRST: Duration = Duration::from_millis(100);
const RESCAN_RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the agent drains the flow event ring into its flow records (when it serves them):
/// the ring holds 256 KiB, 4,096 events, and the datapath writes at most 2,000 per CPU per
/// second.
const FLOW_POLL: Duration = Duration::from_millis(250);

/// How often the per-rule counts are read for the web view (when it is served; otherwise
/// with the other datapath figures, every [`INTERFACE_RESYNC`]).
const RULE_HITS_POLL: Duration = Duration::from_secs(2);

/// Which interfaces carry the programs.
#[derive(Debug, Clone)]
pub enum InterfaceSelection {
    /// The interfaces the node routes its endpoints' addresses through: the host route a
    /// routed CNI installs for each pod (Calico's `cali*`, kindnet's and other ptp CNIs'
    /// `veth*`). The default: nothing to configure per CNI.
    Routed,
    /// Every interface whose name matches (`--interface-pattern`). Bridge CNIs such as flannel
    /// route pods through the bridge (`cni0`), so their per-pod `veth*` ports must be named.
    Pattern(glob::Pattern),
}

impl InterfaceSelection {
    /// Whether host routes through `interface` bind endpoint addresses to it.
    fn routes_through(&self, interface: &str) -> bool {
        match self {
            InterfaceSelection::Routed => true,
            InterfaceSelection::Pattern(pattern) => pattern.matches(interface),
        }
    }
}

pub struct Config {
    pub datastore: DatastoreConfig,
    /// How often the Kubernetes datastore asks again for CRDs it found not served.
    pub crd_rediscovery: Duration,
    pub bpffs: PathBuf,
    pub interfaces: InterfaceSelection,
    /// Which other interfaces get the post-translation hook (`--uplinks`); none when `None`.
    pub uplinks: Option<glob::Pattern>,
    pub status_file: Option<PathBuf>,
    pub node_name: Option<String>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`; nowhere when `None`.
    pub health_addr: Option<SocketAddr>,
    /// Write a flow event for every denied packet policy decides, not only for Calico `Log`
    /// rules.
    pub log_denies: bool,
    /// Ports a host endpoint always accepts and may always use.
    pub failsafe: crate::compiler::Failsafe,
    /// How many entries the policy maps are created to hold.
    pub capacities: Capacities,
    /// How often to compare the policy maps with the applied state and repair drift; never
    /// when `None`.
    pub resync: Option<Duration>,
    /// Where to serve the web view and flow records (`GET /`, `/flows`, `/explain`); when
    /// set, the agent reads the datapath's flow events itself (`policy-agent flows --agent`),
    /// else `policy-agent flows` reads the pinned ring.
    pub ui_addr: Option<SocketAddr>,
    /// The flow records' window and bounds.
    pub flow_limits: crate::flow_records::Limits,
}

pub async fn run(config: Config) -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())?;
    let health = Arc::new(Health::new());
    health.beat();
    if let Some(addr) = config.health_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the health and metrics endpoint {addr}"))?;
        tokio::spawn(health::serve(listener, health.clone()));
        info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    let (events_tx, mut events) = mpsc::unbounded_channel();
    // The file watcher stops when dropped: it lives as long as the loop.
    let (mut datastore, _file_watcher): (Box<dyn Datastore>, _) = match &config.datastore {
        DatastoreConfig::Files(dir) => {
            let mut files = FileDatastore::new(dir);
            // Follows the directory when it is replaced, and holds back a file being written
            // until its writer closes it (see `datastore::watch`).
            let watcher = files
                .watch(events_tx)
                .with_context(|| format!("watching {}", dir.display()))?;
            (Box::new(files) as Box<dyn Datastore>, Some(watcher))
        }
        DatastoreConfig::Kubernetes { kubeconfig } => {
            let client = kube_client(kubeconfig.as_deref()).await?;
            let options = kubernetes::Options {
                rediscover: config.crd_rediscovery,
                ..kubernetes::Options::default()
            };
            let store = KubernetesDatastore::start(client, options, events_tx);
            health.watch_progress(store.progress());
            // Programming a partial list would drop traffic the full one allows: attach
            // nothing until every resource has been listed once.
            if !wait_for_first_list(&store, &mut events, &mut terminate, &health).await? {
                return Ok(());
            }
            (Box::new(store), None)
        }
    };
    let mut datapath =
        Datapath::load_with(&config.bpffs, config.capacities).context("loading the datapath")?;
    datapath
        .set_log_denies(config.log_denies)
        .context("configuring flow events")?;
    // Flow records (served with the web view) are of every decision, not only logged ones;
    // set either way, as the maps may be a previous agent's.
    datapath
        .set_flow_events(config.ui_addr.is_some())
        .context("configuring flow events")?;
    let scope = Scope {
        node_name: config.node_name.clone(),
        host_addrs: host_addresses().context("listing the node's addresses")?,
    };
    let fault_plan = match std::env::var(fault::FAIL_WRITES_ENV) {
        Ok(value) => {
            let plan = fault::FaultPlan::parse(&value).with_context(|| {
                format!(
                    "{}={value:?}: expected SYNCS:SKIP:COUNT",
                    fault::FAIL_WRITES_ENV
                )
            })?;
            warn!(?plan, "test seam: map writes will fail");
            Some(plan)
        }
        Err(_) => None,
    };
    if let Ok(value) = std::env::var(fault::FAIL_ATTACH_ENV) {
        let faults = fault::AttachFaults::parse(&value).map_err(|e| {
            anyhow::anyhow!(
                "{}={value:?}: expected GLOB or GLOB:COUNT: {e}",
                fault::FAIL_ATTACH_ENV
            )
        })?;
        warn!(interfaces = %value, "test seam: attaching to these interfaces will fail");
        datapath.inject_attach_faults(faults);
    }
    let mut state = State {
        fault_plan,
        compiler: Compiler::with_failsafe(config.failsafe.clone()),
        programmed: MapContents::default(),
        applied: MapContents::default(),
        attempted_digest: String::new(),
        unsynced: MapChanges::default(),
        renumbering: false,
        status: Status::default(),
        interfaces: config.interfaces.clone(),
        uplinks: config.uplinks.clone(),
        health: health.clone(),
        host_interfaces: Vec::new(),
        web: None,
        rule_hits: Default::default(),
        pending_compiler: Compiler::new(),
    };
    let mut flow_reader = None;
    if let Some(addr) = config.ui_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the web view {addr}"))?;
        let web = Arc::new(WebState::new(Arc::new(FlowRecords::new(
            config.flow_limits,
        ))));
        tokio::spawn(crate::web::serve(listener, web.clone()));
        flow_reader = datapath.take_flows();
        state.web = Some(web);
        info!(%addr, "serving the web view and flow records (/, /flows, /explain)");
    }

    // Subscribed before the first scan, so no interface created after it goes unnoticed.
    let mut links = match LinkEvents::subscribe() {
        Ok(links) => Some(links),
        Err(e) => {
            warn!(error = %e, "no rtnetlink link events; polling for interfaces instead");
            None
        }
    };
    // Maps first, then attach: an attached program with empty maps would drop everything.
    state.sync(datastore.as_mut(), &mut datapath, &scope)?;
    state.arm_faults(&mut datapath);
    let attachment = state.attach(&mut datapath, &state.host_routes())?;
    state.attached(attachment);
    state.refresh_datapath_stats(&datapath);
    state.report(config.status_file.as_ref());
    health.set_ready();
    info!(
        datastore = %datastore.describe(),
        pins = %datapath.pin_dir().display(),
        "enforcing"
    );

    let mut scan = tokio::time::interval(if links.is_some() {
        INTERFACE_RESYNC
    } else {
        INTERFACE_SCAN
    });
    let mut retry = Retry::new(RETRY_FIRST, RETRY_MAX);
    let mut rescan_retry = Retry::new(RESCAN_RETRY_FIRST, RESCAN_RETRY_MAX);
    let mut resync = config.resync.map(|every| {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut flow_poll = tokio::time::interval(FLOW_POLL);
    flow_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rule_poll = tokio::time::interval(RULE_HITS_POLL);
    rule_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (retry_at, rescan_at) = (retry.at, rescan_retry.at);
        tokio::select! {
            Some(()) = events.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while events.try_recv().is_ok() {}
                state.sync_and_report(datastore.as_mut(), &mut datapath, &scope, &mut retry, config.status_file.as_ref());
            }
            () = sleep_until_some(retry_at) => {
                state.sync_and_report(datastore.as_mut(), &mut datapath, &scope, &mut retry, config.status_file.as_ref());
            }
            changed = next_link_change(&mut links) => {
                if let Err(e) = changed {
                    warn!(error = %e, "rtnetlink link events failed; polling for interfaces instead");
                    links = None;
                    scan = tokio::time::interval(INTERFACE_SCAN);
                    continue;
                }
                // A CNI creates an interface, then its address and route: take them together.
                tokio::time::sleep(DEBOUNCE).await;
                state.rescan(&mut datapath, &mut rescan_retry, config.status_file.as_ref());
            }
            () = sleep_until_some(rescan_at) => {
                info!(attempts = rescan_retry.attempts, "interface scan: retrying");
                state.rescan(&mut datapath, &mut rescan_retry, config.status_file.as_ref());
            }
            _ = scan.tick() => {
                health.beat();
                state.rescan(&mut datapath, &mut rescan_retry, config.status_file.as_ref());
            }
            _ = flow_poll.tick(), if flow_reader.is_some() => {
                if let (Some(reader), Some(web)) = (flow_reader.as_mut(), state.web.as_ref()) {
                    web.records.poll(reader, &datapath, monotonic_ns());
                }
            }
            _ = rule_poll.tick(), if state.web.is_some() => {
                state.refresh_rule_hits(&datapath);
            }
            _ = next_tick(&mut resync) => {
                state.resync(&mut datapath, config.status_file.as_ref());
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    info!(
        "shutting down; pinned maps stay in {}",
        datapath.pin_dir().display()
    );
    Ok(())
}

/// When to try a failed sync (or interface scan) again.
struct Retry {
    first: Duration,
    max: Duration,
    /// Failures in a row.
    attempts: u32,
    at: Option<tokio::time::Instant>,
}

impl Retry {
    fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            attempts: 0,
            at: None,
        }
    }

    /// After a failure: `first` doubling to `max`, each ±20% so that a fleet of agents
    /// failing together does not retry together.
    fn failed(&mut self) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        let base = self
            .first
            .saturating_mul(1 << self.attempts.saturating_sub(1).min(6))
            .min(self.max);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // 0.8 to 1.2 times the base, from the clock's low bits.
        let delay = base.mul_f64(0.8 + f64::from(nanos % 1000) / 2500.0);
        self.at = Some(tokio::time::Instant::now() + delay);
        delay
    }

    fn succeeded(&mut self) {
        self.attempts = 0;
        self.at = None;
    }
}

/// The kernel's `bpf_ktime_get_ns` clock (CLOCK_MONOTONIC), which flow events are stamped with.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec()).unwrap_or(0))
    })
}

/// The interval's next tick, or never.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct State {
    /// The web view and flow records served on `--ui-port`, when asked for.
    web: Option<Arc<WebState>>,
    /// Holds the last compiled maps (`Compiler::maps`, endpoints not yet bound to interfaces).
    /// Possibly a compile that was refused: never read for a kernel write outside `sync`.
    compiler: Compiler,
    /// What the maps hold now: the compiled maps with endpoints bound to their interfaces.
    programmed: MapContents,
    /// The endpoint entries (unbound) of the last compile written whole: the one source of
    /// truth for everything written or chosen between syncs (binding endpoints to new
    /// interfaces, selecting interfaces to attach to). A refused or failed compile never
    /// reaches the kernel, not even in part.
    applied: MapContents,
    /// Digest of the datastore contents the current sync tries to program.
    attempted_digest: String,
    /// Keys compiles changed that a failed sync did not bring into the maps.
    unsynced: MapChanges,
    /// A renumbering (see `dataplane::renumber`) was attempted and not finished: the next
    /// sync finishes it, whatever its compile.
    renumbering: bool,
    /// Map writes to fail on purpose, from the test-only `dataplane::fault` seam.
    fault_plan: Option<fault::FaultPlan>,
    status: Status,
    interfaces: InterfaceSelection,
    uplinks: Option<glob::Pattern>,
    health: Arc<Health>,
    /// This node's host endpoints, from the last compile.
    host_interfaces: Vec<crate::compiler::HostInterface>,
    /// The datapath's per-rule counts, as totals per policy rule.
    rule_hits: crate::rule_hits::RuleHitTotals,
    /// Compiles the cluster with its staged policies applied, for the flow records' pending
    /// verdicts (only while the web view is served and staged policies exist; never written
    /// to the kernel).
    pending_compiler: Compiler,
}

impl State {
    fn sync(
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
        let binding = Binding::of(&routes);
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
            let mut desired = (*compiled.maps).clone();
            drop(compiled.maps);
            for (key, value) in &mut desired.endpoints {
                *value = binding.bind(key, *value);
            }
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
    fn sync_and_report(
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
    fn arm_faults(&mut self, datapath: &mut Datapath) {
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
    fn rescan(
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
    fn resync(&mut self, datapath: &mut Datapath, status_file: Option<&PathBuf>) {
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
    fn attached(&mut self, attachment: Attachment) {
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
    fn attach(
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
    fn rebind(
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
        let delta = MapDelta::between(&self.programmed, applied, &keys, &Binding::of(routes));
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
    fn host_routes(&self) -> BTreeMap<IpAddr, String> {
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
    fn refresh_datapath_stats(&mut self, datapath: &Datapath) {
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
    fn refresh_rule_hits(&mut self, datapath: &Datapath) {
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

    fn report(&self, path: Option<&PathBuf>) {
        if let Some(path) = path
            && let Err(e) = self.status.write_atomic(path)
        {
            warn!(error = format!("{e:#}"), "writing status");
        }
    }
}

/// The next link or route change; never, without a subscription.
async fn next_link_change(links: &mut Option<LinkEvents>) -> std::io::Result<()> {
    match links {
        Some(links) => links.changed().await,
        None => std::future::pending().await,
    }
}

/// A client for the API server: from `kubeconfig` if given, else inferred (`KUBECONFIG`,
/// `~/.kube/config`, then the in-cluster service account and `KUBERNETES_SERVICE_HOST`).
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding the API server (no kubeconfig, not in a cluster)")?,
    };
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

/// Waits until every watcher has listed its resource once; `false` if the agent was told to
/// stop first.
async fn wait_for_first_list(
    store: &KubernetesDatastore,
    events: &mut mpsc::UnboundedReceiver<()>,
    terminate: &mut Signal,
    health: &Health,
) -> Result<bool> {
    let started = Instant::now();
    let mut log = tokio::time::interval(SYNC_WAIT_LOG);
    log.tick().await;
    while !store.is_synced() {
        tokio::select! {
            Some(()) = events.recv() => {}
            _ = log.tick() => {
                health.beat();
                info!(waited_secs = started.elapsed().as_secs(), "waiting for the first full list from the API server");
            }
            _ = tokio::signal::ctrl_c() => return Ok(false),
            _ = terminate.recv() => return Ok(false),
        }
    }
    info!(
        millis = started.elapsed().as_millis(),
        "listed every resource"
    );
    Ok(true)
}

/// Addresses of the network namespace the agent runs in: the node's own.
fn host_addresses() -> Result<Vec<IpAddr>> {
    let mut addrs = Vec::new();
    for ifaddr in nix::ifaddrs::getifaddrs()? {
        let Some(address) = ifaddr.address else {
            continue;
        };
        if let Some(v4) = address.as_sockaddr_in() {
            addrs.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            addrs.push(IpAddr::V6(v6.ip()));
        }
    }
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}
