//! Named network namespaces (as `ip netns` makes them) and running code inside one.
//!
//! Code runs in a namespace on a short-lived thread that `setns`es first: a network namespace is
//! a per-thread property, so the rest of the process (and the root namespace) is never touched,
//! and sockets created on that thread stay in that namespace after they are handed back.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    process::Command,
    thread,
};

use nix::sched::{CloneFlags, setns};
use thiserror::Error;

/// Where iproute2 bind-mounts named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, Error)]
pub enum NetnsError {
    #[error("running `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("opening network namespace {name}")]
    Open {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("entering network namespace {name}")]
    Enter {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("the thread working in network namespace {name} panicked")]
    ThreadPanicked { name: String },
    #[error("writing sysctl {key}={value} in network namespace {name}")]
    Sysctl {
        name: String,
        key: String,
        value: String,
        #[source]
        source: io::Error,
    },
}

/// Path of a named namespace's bind mount.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Names of all named network namespaces (for leak checks).
pub fn list() -> io::Result<Vec<String>> {
    match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Runs `ip ARGS`, returning stderr in the error when it fails.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let command = format!("ip {}", args.join(" "));
    tracing::debug!(%command);
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Failed {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip -n NETNS ARGS`: the command acts inside that namespace only.
pub fn ip_in(netns: &str, args: &[&str]) -> Result<(), NetnsError> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all)
}

pub fn add(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "add", name])
}

/// Deletes a named namespace; a missing one is not an error (cleanup runs more than once).
pub fn delete(name: &str) -> Result<(), NetnsError> {
    if !exists(name) {
        return Ok(());
    }
    ip(&["netns", "del", name])
}

/// An open handle on a named namespace: stays valid even if the name is removed.
#[derive(Debug)]
pub struct Netns {
    name: String,
    file: File,
}

impl Netns {
    pub fn open(name: &str) -> Result<Self, NetnsError> {
        let file = File::open(path(name)).map_err(|source| NetnsError::Open {
            name: name.to_owned(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            file,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Runs `f` on a fresh thread that has joined this namespace, and returns its result.
    pub fn run<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| {
                        NetnsError::Enter {
                            name: self.name.clone(),
                            source,
                        }
                    })?;
                    Ok(f())
                })
                .join()
                .map_err(|_| NetnsError::ThreadPanicked {
                    name: self.name.clone(),
                })?
        })
    }

    /// Writes sysctls (`net.ipv4.ip_forward` style keys) in this namespace: `/proc/sys/net`
    /// shows the namespace of the thread that opens it.
    pub fn sysctls(&self, settings: &[(String, &str)]) -> Result<(), NetnsError> {
        self.run(|| {
            for (key, value) in settings {
                let file = Path::new("/proc/sys").join(key.replace('.', "/"));
                fs::write(&file, value).map_err(|source| NetnsError::Sysctl {
                    name: self.name.clone(),
                    key: key.clone(),
                    value: (*value).to_owned(),
                    source,
                })?;
            }
            Ok(())
        })?
    }
}
