//! The pin directory's layout and what is pinned in it: shared by the loader, which prepares
//! the directory and takes over a previous agent's pins, and by attaching, which pins a link
//! per hook. Kept apart so that neither has to import the other for it.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::programs::links::PinnedLink;

use super::DataplaneError;

/// Where the links are pinned, under the pin directory.
pub(super) const LINKS_DIR: &str = "links";

/// Where new policy maps and links are pinned before they replace the old ones by rename.
/// (bpffs refuses names with a dot.)
pub(super) const STAGING_DIR: &str = "staging";

/// What an interface is to the programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A pod's host-side interface (or a bridge CNI's port).
    Endpoints,
    /// A Calico host endpoint's own interface.
    HostEndpoint,
    /// Any other interface of the node: only the post-translation hook.
    Uplink,
}

/// One of our programs attached to one hook of an interface, pinned at `path`.
pub(super) struct AttachedLink {
    /// Holds the link's fd; the pin keeps it attached after the agent exits.
    pub(super) _link: PinnedLink,
    pub(super) path: PathBuf,
    /// The program it attaches: an interface changing role keeps the links of the programs
    /// both roles run (TCX refuses the same program twice on one hook).
    pub(super) program: &'static str,
}

/// Removes a pin; one already gone is not an error.
pub(super) fn remove_pin(path: &Path) -> Result<(), DataplaneError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataplaneError::PinDir {
            path: path.to_owned(),
            source,
        }),
    }
}
