//! The agent's main loop: watch the datastore, compile, sync the maps, attach to new
//! endpoint interfaces, report status.

use std::{
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use notify::{RecursiveMode, Watcher as _};
use tokio::{signal::unix::SignalKind, sync::mpsc};
use tracing::{error, info, warn};

use crate::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::{Datapath, routes},
    datastore::file::FileDatastore,
    status::Status,
};

/// How long to wait after a file event for the rest of a burst (an editor's save, a lab
/// writing a step's files) before recompiling.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// How often to look for new endpoint interfaces.
const INTERFACE_SCAN: Duration = Duration::from_millis(500);

pub struct Config {
    pub datastore: PathBuf,
    pub bpffs: PathBuf,
    pub iface_prefix: String,
    pub status_file: Option<PathBuf>,
    pub node_name: Option<String>,
}

pub async fn run(config: Config) -> Result<()> {
    let mut datastore = FileDatastore::new(&config.datastore);
    let mut datapath = Datapath::load(&config.bpffs).context("loading the datapath")?;
    let scope = Scope {
        node_name: config.node_name.clone(),
        host_addrs: host_addresses().context("listing the node's addresses")?,
    };
    let mut state = State {
        compiler: Compiler::new(),
        compiled: MapContents::default(),
        programmed: MapContents::default(),
        status: Status::default(),
        iface_prefix: config.iface_prefix.clone(),
    };

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // The receiver only needs to know that something changed; it rereads the directory.
        // Access events (our own reads open and close the files) change nothing.
        if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ignored_if_shutting_down = events_tx.send(());
        }
    })
    .context("creating the datastore watcher")?;
    watcher
        .watch(&config.datastore, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", config.datastore.display()))?;

    // Maps first, then attach: an attached program with empty maps would drop everything.
    state.sync(&mut datastore, &mut datapath, &scope)?;
    state.status.interfaces = datapath.attach_interfaces(&config.iface_prefix)?;
    state.report(config.status_file.as_ref());
    info!(
        datastore = %config.datastore.display(),
        pins = %datapath.pin_dir().display(),
        "enforcing"
    );

    let mut scan = tokio::time::interval(INTERFACE_SCAN);
    let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            Some(()) = events.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while events.try_recv().is_ok() {}
                if let Err(e) = state.sync(&mut datastore, &mut datapath, &scope) {
                    // The maps keep the last programmed state; the next event retries.
                    error!(error = format!("{e:#}"), "sync failed");
                    continue;
                }
                state.report(config.status_file.as_ref());
            }
            _ = scan.tick() => {
                // New pods bring new interfaces and routes: attach, and bind their addresses.
                let attached = match datapath.attach_interfaces(&config.iface_prefix) {
                    Ok(interfaces) => interfaces,
                    Err(e) => {
                        warn!(error = format!("{e:#}"), "attaching to interfaces");
                        continue;
                    }
                };
                let rebound = match state.rebind(&mut datapath) {
                    Ok(changed) => changed,
                    Err(e) => {
                        warn!(error = format!("{e:#}"), "binding endpoints to interfaces");
                        false
                    }
                };
                if rebound || attached != state.status.interfaces {
                    state.status.interfaces = attached;
                    state.report(config.status_file.as_ref());
                }
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

struct State {
    compiler: Compiler,
    /// The compiler's last output (endpoints not yet bound to interfaces).
    compiled: MapContents,
    /// What the maps hold now: `compiled` with endpoints bound to their interfaces.
    programmed: MapContents,
    status: Status,
    iface_prefix: String,
}

impl State {
    fn sync(
        &mut self,
        datastore: &mut FileDatastore,
        datapath: &mut Datapath,
        scope: &Scope,
    ) -> Result<()> {
        let started = Instant::now();
        let snapshot = datastore
            .load()
            .with_context(|| format!("reading {}", datastore.dir().display()))?;
        self.compiled = self.compiler.compile(&snapshot.cluster, scope).maps;
        let bound = routes::bind_endpoints(&self.compiled, &self.host_routes());
        let stats = datapath.apply(&self.programmed, &bound)?;
        self.programmed = bound;
        self.status.digest = snapshot.digest;
        self.status.generation += 1;
        self.status.endpoints = self.programmed.endpoints.len();
        self.status.identities = self.programmed.identities.len();
        self.status.rules = self.programmed.rules.len();
        self.status.errors = snapshot.errors;
        self.status.sync_millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        info!(
            generation = self.status.generation,
            written = stats.written,
            removed = stats.removed,
            endpoints = self.status.endpoints,
            identities = self.status.identities,
            rules = self.status.rules,
            rejected = self.status.errors.len(),
            millis = self.status.sync_millis,
            "programmed"
        );
        Ok(())
    }

    /// Re-binds endpoints to interfaces after routes changed; whether anything was written.
    fn rebind(&mut self, datapath: &mut Datapath) -> Result<bool> {
        let bound = routes::bind_endpoints(&self.compiled, &self.host_routes());
        if bound == self.programmed {
            return Ok(false);
        }
        let stats = datapath.apply(&self.programmed, &bound)?;
        self.programmed = bound;
        info!(
            written = stats.written,
            "endpoints bound to their interfaces"
        );
        Ok(true)
    }

    /// The node's host routes through endpoint interfaces; none (addresses stay unbound, as
    /// before binding existed) if the route table cannot be read.
    fn host_routes(&self) -> std::collections::BTreeMap<IpAddr, String> {
        routes::host_routes(&self.iface_prefix).unwrap_or_else(|e| {
            warn!(error = %e, "reading the route table; endpoints stay unbound");
            Default::default()
        })
    }

    fn report(&self, path: Option<&PathBuf>) {
        if let Some(path) = path
            && let Err(e) = self.status.write_atomic(path)
        {
            warn!(error = format!("{e:#}"), "writing status");
        }
    }
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
