//! Attaching the programs to endpoint interfaces, with links that outlive the agent.
//!
//! The agent chooses the interfaces (those its endpoints are routed through, or those matching
//! `--interface-pattern`); the programs decide by address, so attaching does not need to know
//! which pod sits behind which interface. Every interface of the node except loopback also
//! gets `palisade_after_nat` on its egress (the endpoints' and the host endpoints' too, beside
//! their own programs; `--uplinks` narrows the others), the first hook a pod's Service traffic
//! crosses after kube-proxy's translation, wherever the backend is.
//!
//! Every link is pinned at `<pin dir>/links/<ifindex>-<hook>`, so the programs keep enforcing
//! when the agent exits (an upgrade, a crash, SIGTERM). A restarted agent attaches its own
//! programs first, pins each new link in the staging directory and renames it over the old
//! pin: the old link loses its last reference and detaches only once the new one runs (TCX
//! runs both in between, and both decide the same way). Removing the pin directory detaches
//! everything.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::{
    programs::{TcAttachType, links::FdLink, tc},
    util::KernelVersion,
};
use nix::net::if_::if_nameindex;
use policy_common::program_names;
use tracing::{info, warn};

use super::{
    Datapath, DataplaneError,
    loader::classifier_mut,
    pins::{AttachedLink, LINKS_DIR, Role, STAGING_DIR, remove_pin},
};

/// What a scan attached, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    /// Interfaces running their role's programs (endpoints' and host endpoints').
    pub interfaces: Vec<String>,
    /// Interfaces that should and do not: each is tried again at the next scan.
    pub failed: Vec<AttachFailure>,
}

/// An interface the programs could not be attached to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttachFailure {
    pub interface: String,
    /// The error with its causes.
    pub error: String,
}

/// `error: cause: cause`, as `{:#}` prints an anyhow error.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// An interface that did not get all its role's programs: why, and the links it has.
struct AttachFailed {
    /// Boxed: the error is large and this is the rare path.
    error: Box<DataplaneError>,
    attached: Vec<AttachedLink>,
}

impl Datapath {
    /// Attaches to every interface `wanted` accepts that is not attached yet, and forgets
    /// interfaces that are gone (the kernel detached their programs with them; their pins are
    /// removed). An attached interface stays attached while it exists, even once `wanted` no
    /// longer names it: a pod whose object is gone but whose interface lingers must be dropped
    /// by the program (its address is no endpoint's), not left unenforced. Pins of links on
    /// interfaces this agent does not attach are removed, which detaches what a previous agent
    /// left there. One interface that fails does not keep the others from being attached: it
    /// is reported in the returned [`Attachment`] and tried again at the next scan. An error is
    /// a failure of the scan itself (listing interfaces, pins).
    pub fn attach_interfaces(
        &mut self,
        wanted: &dyn Fn(&str) -> bool,
        uplink: &dyn Fn(&str) -> bool,
    ) -> Result<Attachment, DataplaneError> {
        let mut failed = Vec::new();
        let mut uplinks = Vec::new();
        let present: Vec<(String, u32)> = if_nameindex()
            .map_err(DataplaneError::Interfaces)?
            .iter()
            .filter_map(|i| {
                let name = i.name().to_str().ok()?;
                let keep = wanted(name)
                    || self.host_interfaces.contains(name)
                    || self
                        .attached
                        .get(name)
                        .is_some_and(|(_, role, _)| *role != Role::Uplink);
                if !keep && name != "lo" && uplink(name) {
                    uplinks.push((name.to_owned(), i.index()));
                }
                keep.then(|| (name.to_owned(), i.index()))
            })
            .collect();
        let present = [present, uplinks].concat();
        let gone: Vec<String> = self
            .attached
            .iter()
            .filter(|(name, (index, _, _))| !present.iter().any(|(n, i)| n == *name && i == index))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some((_, _, links)) = self.attached.remove(&name) {
                for link in links {
                    remove_pin(&link.path)?;
                }
            }
        }
        for (name, index) in &present {
            let role = if self.host_interfaces.contains(name) {
                Role::HostEndpoint
            } else if wanted(name) {
                Role::Endpoints
            } else {
                match self.attached.get(name) {
                    // Once an endpoint's interface, always (see above).
                    Some((_, role, _)) => *role,
                    None => Role::Uplink,
                }
            };
            let (previous_role, previous) = match self.attached.get(name) {
                Some((_, attached_role, _)) if *attached_role == role => continue,
                // An uplink that turned out to be an endpoint's interface (its pod was
                // programmed, or its host route appeared, after the interface): it keeps the
                // links both roles share and gets the others, before the old ones go.
                Some(_) => match self.attached.remove(name) {
                    Some((_, previous_role, links)) => (Some(previous_role), links),
                    None => (None, Vec::new()),
                },
                None => (None, Vec::new()),
            };
            let links = match self.attach_one(name, *index, role, previous) {
                Ok(links) => links,
                Err(failure) => {
                    // What is attached stays recorded, under a role other than the wanted
                    // one, so that the next scan tries again with these links kept:
                    // forgotten, their programs would be attached a second time and fail
                    // the same way, leaving the interface without its role's programs.
                    if !failure.attached.is_empty() {
                        let recorded = previous_role.unwrap_or(Role::Uplink);
                        self.attached
                            .insert(name.clone(), (*index, recorded, failure.attached));
                    }
                    let error = error_chain(&*failure.error);
                    warn!(interface = %name, ?role, %error, "attaching");
                    failed.push(AttachFailure {
                        interface: name.clone(),
                        error,
                    });
                    continue;
                }
            };
            info!(interface = %name, ?role, "attached");
            self.attached.insert(name.clone(), (*index, role, links));
        }
        let failed_indexes: Vec<u32> = present
            .iter()
            .filter(|(name, _)| failed.iter().any(|f: &AttachFailure| &f.interface == name))
            .map(|(_, index)| *index)
            .collect();
        self.remove_stale_link_pins(&failed_indexes)?;
        // Every interface runs this agent's programs now (but those that failed, which keep
        // the previous agent's): the previous agent's maps can go.
        self.publish_policy_maps()?;
        Ok(Attachment {
            interfaces: self
                .attached
                .iter()
                .filter(|(_, (_, role, _))| *role != Role::Uplink)
                .map(|(name, _)| name.clone())
                .collect(),
            failed,
        })
    }

    /// Arms the test-only attachment failures (see [`super::fault::FAIL_ATTACH_ENV`]).
    pub fn inject_attach_faults(&mut self, faults: super::fault::AttachFaults) {
        self.fail_attach = Some(faults);
    }

    /// The interfaces of this node's host endpoints: attached (by the next
    /// [`Datapath::attach_interfaces`]) with the host programs, whatever the pod interface
    /// selection says.
    pub fn set_host_interfaces(&mut self, names: impl IntoIterator<Item = String>) {
        self.host_interfaces = names.into_iter().collect();
    }

    /// Attaches `role`'s programs to an interface that has `previous` links (from another
    /// role): a link of the same program on the same hook is kept as it is, the others are
    /// replaced (the new link's pin renamed over the old) or, on hooks the new role does not
    /// use, removed. On failure, every link still attached comes back with the error.
    fn attach_one(
        &mut self,
        interface: &str,
        ifindex: u32,
        role: Role,
        mut previous: Vec<AttachedLink>,
    ) -> Result<Vec<AttachedLink>, AttachFailed> {
        if self
            .fail_attach
            .as_mut()
            .is_some_and(|faults| faults.next_fails(interface))
        {
            return Err(AttachFailed {
                error: Box::new(DataplaneError::InjectedAttachFault {
                    interface: interface.to_owned(),
                }),
                attached: previous,
            });
        }
        // TCX (kernel 6.6+) lets our programs sit beside a CNI's own; older kernels need the
        // clsact qdisc for netlink attachment.
        if KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(6, 6, 0)) {
            match tc::qdisc_add_clsact(interface) {
                Ok(()) | Err(tc::TcError::AlreadyAttached) => {}
                Err(source) => {
                    return Err(AttachFailed {
                        error: Box::new(DataplaneError::Clsact {
                            interface: interface.to_owned(),
                            source,
                        }),
                        attached: previous,
                    });
                }
            }
        }
        let mut links: Vec<AttachedLink> = Vec::new();
        // A pod's host-side interface receives what the pod sends; a host endpoint's own
        // interface receives what is sent to the host.
        // After netfilter, before the interface's own egress program (TCX runs them in the
        // order attached; either order gives the same verdicts).
        let after_nat = (program_names::AFTER_NAT, TcAttachType::Egress, "after-nat");
        let programs: &[(&'static str, TcAttachType, &str)] = match role {
            Role::HostEndpoint => &[
                after_nat,
                (
                    program_names::HOST_INGRESS,
                    TcAttachType::Ingress,
                    "ingress",
                ),
                (program_names::HOST_EGRESS, TcAttachType::Egress, "egress"),
            ],
            Role::Endpoints => &[
                after_nat,
                (
                    program_names::FROM_ENDPOINT,
                    TcAttachType::Ingress,
                    "ingress",
                ),
                (program_names::TO_ENDPOINT, TcAttachType::Egress, "egress"),
            ],
            Role::Uplink => &[after_nat],
        };
        for &(program, attach_type, hook) in programs {
            let path = self
                .pin_dir
                .join(LINKS_DIR)
                .join(format!("{ifindex}-{hook}"));
            if let Some(at) = previous
                .iter()
                .position(|l| l.program == program && l.path == path)
            {
                links.push(previous.swap_remove(at));
                continue;
            }
            match self.attach_pinned(interface, program, attach_type, &path) {
                Ok(link) => links.push(link),
                Err(error) => {
                    // A previous link whose pin a new one took is detached already.
                    previous.retain(|old| !links.iter().any(|new| new.path == old.path));
                    links.append(&mut previous);
                    return Err(AttachFailed {
                        error: Box::new(error),
                        attached: links,
                    });
                }
            }
        }
        for old in previous {
            // Replaced by the rename of the new pin, or on a hook the new role leaves alone.
            if !links.iter().any(|new| new.path == old.path)
                && let Err(error) = remove_pin(&old.path)
            {
                links.push(old);
                return Err(AttachFailed {
                    error: Box::new(error),
                    attached: links,
                });
            }
        }
        Ok(links)
    }

    /// Attaches `program` to one hook of `interface` and pins the link at `path`.
    fn attach_pinned(
        &mut self,
        interface: &str,
        program: &'static str,
        attach_type: TcAttachType,
        path: &Path,
    ) -> Result<AttachedLink, DataplaneError> {
        let attach_error = |source| DataplaneError::Attach {
            program,
            interface: interface.to_owned(),
            source,
        };
        self.ensure_loaded(program)?;
        let classifier = classifier_mut(&mut self.ebpf, program)?;
        let id = classifier
            .attach(interface, attach_type)
            .map_err(attach_error)?;
        let link = classifier.take_link(id).map_err(attach_error)?;
        let fd_link = FdLink::try_from(link).map_err(|source| DataplaneError::PinLink {
            interface: interface.to_owned(),
            reason: source.to_string(),
        })?;
        let file = path.file_name().unwrap_or_default();
        let staged = self.pin_dir.join(STAGING_DIR).join(file);
        remove_pin(&staged)?;
        let pinned = fd_link
            .pin(&staged)
            .map_err(|source| DataplaneError::PinLink {
                interface: interface.to_owned(),
                reason: source.to_string(),
            })?;
        // Atomically replaces (and so detaches) a previous agent's link on this hook, or
        // this agent's link of another role's program.
        fs::rename(&staged, path).map_err(|source| DataplaneError::PinDir {
            path: path.to_owned(),
            source,
        })?;
        Ok(AttachedLink {
            _link: pinned,
            path: path.to_owned(),
            program,
        })
    }

    /// Removes link pins that no attached interface owns, except those of the interfaces
    /// (`keep`, by index) this agent failed to attach to: a previous agent's programs there
    /// enforce its last policy, which is better than none until the attachment succeeds.
    fn remove_stale_link_pins(&self, keep: &[u32]) -> Result<(), DataplaneError> {
        let dir = self.pin_dir.join(LINKS_DIR);
        let owned: Vec<&Path> = self
            .attached
            .values()
            .flat_map(|(_, _, links)| links.iter().map(|l| l.path.as_path()))
            .collect();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(DataplaneError::PinDir { path: dir, source }),
        };
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            let kept = entry
                .file_name()
                .to_str()
                .and_then(|name| name.split_once('-'))
                .and_then(|(index, _)| index.parse::<u32>().ok())
                .is_some_and(|index| keep.contains(&index));
            if !kept && !owned.contains(&path.as_path()) {
                warn!(pin = %path.display(), "removing a link pin no attached interface owns");
                remove_pin(&path)?;
            }
        }
        Ok(())
    }
}
