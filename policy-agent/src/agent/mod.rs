//! The agent's main loop: watch the datastore, compile, sync the maps, attach to new
//! endpoint interfaces, report status. The state those steps work on, and the steps, are in
//! [`state`].

mod config;
mod retry;
mod state;

pub use config::{Config, DatastoreConfig, InterfaceSelection};

use std::{
    net::IpAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{Signal, SignalKind},
    sync::mpsc,
};
use tracing::{info, warn};

use crate::{
    compiler::{Compiler, MapChanges, MapContents, Scope},
    dataplane::{Datapath, fault},
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

use self::{retry::Retry, state::State};

/// How long to wait after a file event for the rest of a burst (an editor's save, a lab
/// writing a step's files) before recompiling.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// How often to look for new endpoint interfaces when link events are unavailable.
const INTERFACE_SCAN: Duration = Duration::from_millis(500);
/// With link events, a rescan this often anyway: a safety net, not the way changes are found.
const INTERFACE_RESYNC: Duration = Duration::from_secs(10);

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
