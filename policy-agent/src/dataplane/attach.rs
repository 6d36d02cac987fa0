//! Attaching the programs to endpoint interfaces.
//!
//! Endpoints are found by interface name prefix, the way Calico (`cali`) and Cilium (`lxc`)
//! find their host-side veths. The programs decide by address, so the agent does not need to
//! know which pod sits behind which interface.

use aya::{
    programs::{TcAttachType, tc},
    util::KernelVersion,
};
use nix::net::if_::if_nameindex;
use policy_common::program_names;
use tracing::info;

use super::{Datapath, DataplaneError, loader::classifier_mut};

impl Datapath {
    /// Attaches to every interface named `prefix*` that is not attached yet, and forgets
    /// interfaces that are gone (the kernel detached their programs with them). Returns the
    /// names of the attached interfaces.
    pub fn attach_interfaces(&mut self, prefix: &str) -> Result<Vec<String>, DataplaneError> {
        let present: Vec<(String, u32)> = if_nameindex()
            .map_err(DataplaneError::Interfaces)?
            .iter()
            .filter_map(|i| {
                let name = i.name().to_str().ok()?;
                name.starts_with(prefix)
                    .then(|| (name.to_owned(), i.index()))
            })
            .collect();
        self.attached
            .retain(|name, (index, _)| present.iter().any(|(n, i)| n == name && i == index));
        for (name, index) in present {
            if self.attached.contains_key(&name) {
                continue;
            }
            let links = self.attach_one(&name)?;
            info!(interface = %name, "attached");
            self.attached.insert(name, (index, links));
        }
        Ok(self.attached.keys().cloned().collect())
    }

    fn attach_one(
        &mut self,
        interface: &str,
    ) -> Result<Vec<tc::SchedClassifierLinkId>, DataplaneError> {
        // TCX (kernel 6.6+) lets our programs sit beside a CNI's own; older kernels need the
        // clsact qdisc for netlink attachment.
        if KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(6, 6, 0)) {
            match tc::qdisc_add_clsact(interface) {
                Ok(()) | Err(tc::TcError::AlreadyAttached) => {}
                Err(source) => {
                    return Err(DataplaneError::Clsact {
                        interface: interface.to_owned(),
                        source,
                    });
                }
            }
        }
        let mut links = Vec::new();
        for (program, attach_type) in [
            (program_names::FROM_ENDPOINT, TcAttachType::Ingress),
            (program_names::TO_ENDPOINT, TcAttachType::Egress),
        ] {
            let link = classifier_mut(&mut self.ebpf, program)?
                .attach(interface, attach_type)
                .map_err(|source| DataplaneError::Attach {
                    program,
                    interface: interface.to_owned(),
                    source,
                })?;
            links.push(link);
        }
        Ok(links)
    }
}
