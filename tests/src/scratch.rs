//! Scratch space for the kernel tests: a directory of manifests and a bpffs pin directory,
//! both removed however the test ends.

use std::{
    fs,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

/// A manifest directory under the temporary directory and a pin directory under
/// `/sys/fs/bpf`, unique to the process and the call.
pub struct Scratch {
    pub manifests: PathBuf,
    pub pins: PathBuf,
}

impl Scratch {
    /// `prefix` names the test file, `test` the test.
    pub fn new(prefix: &str, test: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}-{}-{test}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let manifests = std::env::temp_dir().join(format!("palisade-{prefix}-{id}"));
        fs::create_dir_all(&manifests).expect("creating the manifest directory");
        let pins = PathBuf::from(format!("/sys/fs/bpf/palisade-{prefix}-{id}"));
        Self { manifests, pins }
    }

    pub fn write(&self, name: &str, contents: &str) {
        fs::write(self.manifests.join(name), contents).expect("writing a manifest");
    }

    pub fn remove(&self, name: &str) {
        fs::remove_file(self.manifests.join(name)).expect("removing a manifest");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.manifests);
        let _ = fs::remove_dir_all(&self.pins);
    }
}

/// A bpffs pin directory, removed however the test ends.
pub struct Pins(pub PathBuf);

impl Pins {
    /// `/sys/fs/bpf/palisade-<name>-<pid>`.
    pub fn new(name: &str) -> Self {
        Self(PathBuf::from(format!(
            "/sys/fs/bpf/palisade-{name}-{}",
            std::process::id()
        )))
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
