//! Watching a manifest directory for the file datastore, through what writers really do:
//!
//! - **A file written in several writes** (an editor, `cat > f`, a slow copy): inotify reports
//!   each write (`IN_MODIFY`) and, at the end, `IN_CLOSE_WRITE`. Reloading on the first write
//!   reads a partial file, which can be valid YAML that says something else (a policy cut after
//!   its `podSelector` is a deny-all). So a write only marks the file as *being written*; the
//!   reload comes when the writer closes it, and a reload that happens meanwhile (another file
//!   changed) keeps the objects the file held before (see [`FileDatastore::watch`]). A file
//!   nobody closes stops counting as being written after [`WRITING_TIMEOUT`], and is then read.
//!   What this cannot see: a load that starts between a write and this thread's handling of
//!   its event (microseconds, unless the thread is starved) reads the piece; the writer's close
//!   then reloads the whole file. Writers that rename a complete file into place (`kubectl`-less
//!   GitOps tools, `mv`, the kubelet) never expose a piece at all.
//! - **The directory replaced** (renamed away and a new one put in its place, as GitOps sync
//!   tools do, or a symlinked directory swapped): inotify watches an inode, so a plain watch
//!   follows the old directory and never sees the new one change. The parent directory is
//!   watched too; when the directory's name in it changes, the watch moves to whatever now has
//!   that name and a reload follows.
//! - **A ConfigMap volume** (`..data` swapped to a new timestamped directory, the manifests being
//!   symlinks through it): the swap is a rename inside the directory, which reloads; the files'
//!   writes happen in the new timestamped directory before it is published, unwatched.
//!
//! [`FileDatastore::watch`]: super::file::FileDatastore::watch

use std::{
    collections::BTreeMap,
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, Weak, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use notify::{
    EventKind, RecursiveMode, Watcher as _,
    event::{AccessKind, AccessMode, CreateKind, ModifyKind},
};
use thiserror::Error;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

/// How long a file modified and not closed counts as being written.
pub const WRITING_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("creating the watcher for {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("watching {path}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("making {path} absolute (the current directory is gone?)")]
    Absolute {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting the thread that watches {path}")]
    Thread {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Files of the directory being written (modified, not yet closed), by name, since when.
#[derive(Debug, Clone, Default)]
pub struct Writing(Arc<Mutex<BTreeMap<String, Instant>>>);

impl Writing {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `name` is being written now.
    pub fn contains(&self, name: &str) -> bool {
        self.lock()
            .get(name)
            .is_some_and(|since| since.elapsed() < WRITING_TIMEOUT)
    }

    fn start(&self, name: &str) {
        self.lock()
            .entry(name.to_owned())
            .or_insert_with(Instant::now);
    }

    fn end(&self, name: &str) -> bool {
        self.lock().remove(name).is_some()
    }

    /// Forgets the files written for longer than [`WRITING_TIMEOUT`]; whether there were any.
    fn expire(&self) -> bool {
        let mut files = self.lock();
        let before = files.len();
        files.retain(|_, since| since.elapsed() < WRITING_TIMEOUT);
        files.len() != before
    }

    /// When the oldest file stops counting as being written.
    fn next_expiry(&self) -> Option<Instant> {
        self.lock()
            .values()
            .min()
            .map(|since| *since + WRITING_TIMEOUT)
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// The watch on a manifest directory; stops when dropped.
pub struct DirectoryWatcher {
    watcher: Option<Arc<Mutex<notify::RecommendedWatcher>>>,
    worker: Option<JoinHandle<()>>,
}

impl DirectoryWatcher {
    /// Watches `dir` (and its parent, for replacements); `changes` gets a message whenever the
    /// datastore should reload. `writing` is kept up to date with the files being written.
    pub fn start(
        dir: &Path,
        writing: Writing,
        changes: UnboundedSender<()>,
    ) -> Result<DirectoryWatcher, WatchError> {
        // Events name paths as the watch was given them: compare against one absolute form.
        let dir = &std::path::absolute(dir).map_err(|source| WatchError::Absolute {
            path: dir.to_owned(),
            source,
        })?;
        let (events_tx, events) = mpsc::channel();
        let watcher = notify::recommended_watcher(move |event| {
            let _ignored_when_stopping = events_tx.send(event);
        })
        .map_err(|source| WatchError::Create {
            path: dir.to_owned(),
            source,
        })?;
        let watcher = Arc::new(Mutex::new(watcher));
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_owned);
        {
            let mut w = watcher.lock().unwrap_or_else(|e| e.into_inner());
            w.watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch {
                    path: dir.to_owned(),
                    source,
                })?;
            if let Some(parent) = &parent {
                w.watch(parent, RecursiveMode::NonRecursive)
                    .map_err(|source| WatchError::Watch {
                        path: parent.clone(),
                        source,
                    })?;
            }
        }
        let worker = Worker {
            dir: dir.to_owned(),
            identity: identity(dir),
            watcher: Arc::downgrade(&watcher),
            writing,
            changes,
        };
        let worker = std::thread::Builder::new()
            .name("palisade-watch".into())
            .spawn(move || worker.run(&events))
            .map_err(|source| WatchError::Thread {
                path: dir.to_owned(),
                source,
            })?;
        Ok(DirectoryWatcher {
            watcher: Some(watcher),
            worker: Some(worker),
        })
    }
}

impl Drop for DirectoryWatcher {
    fn drop(&mut self) {
        // Dropping the watcher closes the event channel, which ends the worker.
        drop(self.watcher.take());
        if let Some(worker) = self.worker.take() {
            let _panicked_already_reported = worker.join();
        }
    }
}

/// (device, inode) of the directory now at `path`.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

struct Worker {
    dir: PathBuf,
    /// The directory watched now.
    identity: Option<(u64, u64)>,
    /// Weak: the worker must not keep the watcher (and so its own event channel) alive.
    watcher: Weak<Mutex<notify::RecommendedWatcher>>,
    writing: Writing,
    changes: UnboundedSender<()>,
}

impl Worker {
    fn run(mut self, events: &mpsc::Receiver<notify::Result<notify::Event>>) {
        loop {
            let event = match self.writing.next_expiry() {
                Some(at) => {
                    match events.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(event) => Some(event),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match events.recv() {
                    Ok(event) => Some(event),
                    Err(mpsc::RecvError) => return,
                },
            };
            let reload = match event {
                Some(Ok(event)) => self.handle(&event),
                // The kernel's queue overflowed, or the like: reread everything.
                Some(Err(e)) => {
                    warn!(error = %e, dir = %self.dir.display(), "watch error; rereading the directory");
                    true
                }
                None => {
                    // A writer that never closed its file: read what it left.
                    self.writing.expire()
                }
            };
            if reload && self.changes.send(()).is_err() {
                return;
            }
        }
    }

    /// Whether the event calls for a reload.
    fn handle(&mut self, event: &notify::Event) -> bool {
        let mut reload = false;
        for path in &event.paths {
            if *path == self.dir {
                reload |= self.moved();
            } else if path.parent() == Some(self.dir.as_path()) {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                reload |= self.inside(&event.kind, &name, path);
            }
            // Anything else is another entry of the parent directory.
        }
        if event.paths.is_empty() {
            // A rescan request carries no path.
            reload = true;
        }
        reload
    }

    fn inside(&self, kind: &EventKind, name: &str, path: &Path) -> bool {
        match kind {
            // A write in progress: wait for the close.
            EventKind::Modify(ModifyKind::Data(_)) => {
                self.writing.start(name);
                false
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                self.writing.end(name);
                true
            }
            // Our own reads, and other readers'.
            EventKind::Access(_) => false,
            EventKind::Create(CreateKind::File) => {
                // A new regular file is being written until closed; a symlink (a ConfigMap's
                // file, `..data_tmp`) is complete as it appears.
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
                    self.writing.start(name);
                }
                true
            }
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                self.writing.end(name);
                true
            }
            _ => true,
        }
    }

    /// The directory's own name changed (in its parent) or the directory itself was moved or
    /// removed: watch whatever now has its name. Whether to reload.
    fn moved(&mut self) -> bool {
        let now = identity(&self.dir);
        if now == self.identity {
            return false;
        }
        self.writing.clear();
        self.identity = now;
        if now.is_none() {
            // Gone for now: the parent's watch sees the next directory of that name appear.
            warn!(dir = %self.dir.display(), "the manifest directory is gone; waiting for it to return");
            return true;
        }
        let Some(watcher) = self.watcher.upgrade() else {
            return false;
        };
        let mut watcher = watcher.lock().unwrap_or_else(|e| e.into_inner());
        // The old directory's watch may be gone with it already.
        let _not_watched_any_more = watcher.unwatch(&self.dir);
        match watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                info!(dir = %self.dir.display(), "the manifest directory was replaced; watching the new one")
            }
            Err(e) => {
                // Replaced again meanwhile, or removed: the parent's next event retries.
                warn!(error = %e, dir = %self.dir.display(), "watching the replaced manifest directory");
                self.identity = None;
            }
        }
        true
    }
}
