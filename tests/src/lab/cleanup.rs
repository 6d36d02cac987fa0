//! Everything a lab creates outside its own memory (namespaces, the pin directories, the lab
//! directory, the agent processes: one per node), recorded *before* it is created so that cleanup can remove it
//! whichever way the lab ends: normal return, error, panic (Drop) or SIGINT/SIGTERM.
//!
//! Each lab's record lives in a process-wide registry. The signal handler cleans every live lab
//! and exits with 130; it holds each record's lock while doing so, so a lab thread that is about
//! to create something more blocks instead of leaking it.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    process::Child,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak,
        atomic::{AtomicU32, Ordering},
    },
};

use thiserror::Error;

use super::{agent, netns};

#[derive(Debug, Error)]
pub enum TrackError {
    #[error("lab {id} is being cleaned up (interrupted?); not creating {what}")]
    Closed { id: String, what: String },
}

#[derive(Debug, Default)]
struct Inner {
    id: String,
    /// Named namespaces, in creation order (removed in reverse).
    netns: Vec<String>,
    /// bpffs directories holding the agents' pins (one per node).
    pin_dirs: Vec<PathBuf>,
    /// Temporary directory: datastore, status files, agent logs.
    lab_dir: Option<PathBuf>,
    /// Running agents by node name (`""` for a lone agent, see [`Resources::agent`]).
    agents: BTreeMap<String, Child>,
    closed: bool,
}

/// A lab's record of what it created. Cloning shares the record.
#[derive(Debug, Clone)]
pub struct Resources(Arc<Mutex<Inner>>);

static LIVE: Mutex<Vec<Weak<Mutex<Inner>>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU32 = AtomicU32::new(0);
static SIGNALS: OnceLock<()> = OnceLock::new();

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A lab id unique on this machine: `<pid>-<counter>`, skipping ids whose namespaces, pins or
/// directory still exist (left by a killed process whose pid was reused).
pub fn allocate_id(is_taken: impl Fn(&str) -> bool) -> Option<String> {
    let pid = std::process::id();
    (0..1000).find_map(|_| {
        let id = format!("{pid}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        (!is_taken(&id)).then_some(id)
    })
}

/// Installs the SIGINT/SIGTERM handler once per process.
fn install_signal_handler() {
    SIGNALS.get_or_init(|| {
        let installed = ctrlc::set_handler(|| {
            eprintln!("lab: interrupted, cleaning up");
            let live: Vec<_> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
            // Keep every lock until exit: no lab thread may create anything after this.
            let mut guards = Vec::new();
            for record in &live {
                let mut inner = lock(record);
                inner.clean_up();
                guards.push(inner);
            }
            std::process::exit(130);
        });
        if let Err(e) = installed {
            tracing::warn!(error = %e, "no SIGINT/SIGTERM cleanup handler: another handler is installed");
        }
    });
}

impl Resources {
    pub fn new(id: &str) -> Self {
        install_signal_handler();
        let record = Arc::new(Mutex::new(Inner {
            id: id.to_owned(),
            ..Inner::default()
        }));
        let mut live = lock(&LIVE);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&record));
        Self(record)
    }

    /// Records a namespace, then creates it with `create` (under the record's lock).
    pub fn netns<E>(
        &self,
        name: &str,
        create: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), anyhow::Error>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut inner = self.open_inner(name)?;
        inner.netns.push(name.to_owned());
        create()?;
        Ok(())
    }

    /// Records the lab directory, then creates it.
    pub fn lab_dir(&self, dir: &Path) -> anyhow::Result<()> {
        let mut inner = self.open_inner(&dir.display().to_string())?;
        inner.lab_dir = Some(dir.to_owned());
        fs::create_dir(dir)
            .map_err(|e| anyhow::anyhow!(e).context(format!("creating {}", dir.display())))
    }

    /// Records a pin directory, then creates it.
    pub fn pin_dir(&self, dir: &Path) -> anyhow::Result<()> {
        let mut inner = self.open_inner(&dir.display().to_string())?;
        inner.pin_dirs.push(dir.to_owned());
        fs::create_dir(dir)
            .map_err(|e| anyhow::anyhow!(e).context(format!("creating {}", dir.display())))
    }

    /// Starts a lone agent (one that is not a lab node's) with `spawn` and records the child.
    pub fn agent(&self, spawn: impl FnOnce() -> anyhow::Result<Child>) -> anyhow::Result<u32> {
        self.node_agent("", spawn)
    }

    /// Starts the agent of node `node` with `spawn` and records the child.
    pub fn node_agent(
        &self,
        node: &str,
        spawn: impl FnOnce() -> anyhow::Result<Child>,
    ) -> anyhow::Result<u32> {
        let mut inner = self.open_inner(&format!("the agent of node {node}"))?;
        anyhow::ensure!(
            !inner.agents.contains_key(node),
            "node {node} already has a running agent"
        );
        let child = spawn()?;
        let pid = child.id();
        inner.agents.insert(node.to_owned(), child);
        Ok(pid)
    }

    /// Stops every agent (SIGTERM, then SIGKILL after a grace period).
    pub fn stop_agent(&self) {
        let agents = std::mem::take(&mut lock(&self.0).agents);
        for child in agents.into_values() {
            agent::stop(child);
        }
    }

    /// Stops node `node`'s agent, if it runs.
    pub fn stop_node_agent(&self, node: &str) {
        let child = lock(&self.0).agents.remove(node);
        if let Some(child) = child {
            agent::stop(child);
        }
    }

    /// The exit status of an agent that has exited (`None` while all run or when there is
    /// none): one dead node agent fails the whole lab.
    pub fn agent_exit(&self) -> io::Result<Option<std::process::ExitStatus>> {
        Ok(self.exited_agent()?.map(|(_, status)| status))
    }

    /// Which agent has exited (its node) and how.
    pub fn exited_agent(&self) -> io::Result<Option<(String, std::process::ExitStatus)>> {
        for (node, child) in &mut lock(&self.0).agents {
            if let Some(status) = child.try_wait()? {
                return Ok(Some((node.clone(), status)));
            }
        }
        Ok(None)
    }

    /// Removes everything recorded; safe to call more than once.
    pub fn clean_up(&self) {
        lock(&self.0).clean_up();
    }

    fn open_inner(&self, what: &str) -> Result<MutexGuard<'_, Inner>, TrackError> {
        let inner = lock(&self.0);
        if inner.closed {
            return Err(TrackError::Closed {
                id: inner.id.clone(),
                what: what.to_owned(),
            });
        }
        Ok(inner)
    }
}

impl Inner {
    /// Agents first (they hold the node namespaces and the pins), then namespaces, pins,
    /// files.
    fn clean_up(&mut self) {
        self.closed = true;
        for child in std::mem::take(&mut self.agents).into_values() {
            agent::stop(child);
        }
        for name in self.netns.drain(..).rev() {
            if let Err(e) = netns::delete(&name) {
                eprintln!("lab {}: could not delete netns {name}: {e}", self.id);
            }
        }
        let pin_dirs = std::mem::take(&mut self.pin_dirs);
        for dir in pin_dirs.into_iter().chain(self.lab_dir.take()) {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("lab {}: could not remove {}: {e}", self.id, dir.display()),
            }
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        // The last handle cleans up (panic or early return included).
        if Arc::strong_count(&self.0) == 1 {
            self.clean_up();
        }
    }
}
