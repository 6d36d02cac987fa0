//! What loading each program cost the verifier, and how close it came to the kernel's limit.
//!
//! Every agent start (and every lab node and kernel test) pays the verifier; a program that
//! grows towards the kernel's per-program limit fails to load one day on a node whose kernel
//! explores a few more paths. The agent logs each program's figures at load and reports them in
//! its status file, so that growth is seen before it is a failure.

use std::time::Instant;

use aya::{Ebpf, programs::ProgramError};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{DataplaneError, loader::classifier_mut};

/// The verifier's limit on instructions processed per program (`BPF_COMPLEXITY_LIMIT_INSNS`,
/// kernel 5.2+, for privileged loaders).
pub const VERIFIER_LIMIT: u32 = 1_000_000;

/// One program as the kernel accepted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramLoad {
    pub name: String,
    /// Instructions the verifier processed (0: the kernel does not say; before 5.16).
    pub verified_insns: u32,
    /// Per cent of [`VERIFIER_LIMIT`] left.
    pub headroom_percent: u32,
    /// The program as translated by the kernel, in bytes.
    pub xlated_bytes: u32,
    /// Wall time of the load (the verifier, nearly all of it).
    pub load_millis: u64,
}

/// Loads `name` (a classifier of `ebpf`) and reads back what the verifier did.
pub fn load_classifier(ebpf: &mut Ebpf, name: &'static str) -> Result<ProgramLoad, DataplaneError> {
    let program = classifier_mut(ebpf, name)?;
    let started = Instant::now();
    program
        .load()
        .map_err(|source| DataplaneError::Program { name, source })?;
    let load_millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let info = program
        .info()
        .map_err(|source: ProgramError| DataplaneError::Program { name, source })?;
    let verified_insns = info.verified_instruction_count().unwrap_or(0);
    let load = ProgramLoad {
        name: name.to_owned(),
        verified_insns,
        headroom_percent: headroom_percent(verified_insns),
        xlated_bytes: info.size_translated().unwrap_or(0),
        load_millis,
    };
    info!(
        program = name,
        verified_insns = load.verified_insns,
        headroom_percent = load.headroom_percent,
        xlated_bytes = load.xlated_bytes,
        millis = load.load_millis,
        "program loaded"
    );
    Ok(load)
}

/// Per cent of the verifier's limit a program that took `verified` instructions leaves.
fn headroom_percent(verified: u32) -> u32 {
    let left = u64::from(VERIFIER_LIMIT.saturating_sub(verified));
    u32::try_from(left * 100 / u64::from(VERIFIER_LIMIT)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::headroom_percent;

    #[test]
    fn headroom_is_what_the_limit_leaves() {
        assert_eq!(headroom_percent(0), 100);
        assert_eq!(headroom_percent(250_000), 75);
        assert_eq!(headroom_percent(999_999), 0);
        assert_eq!(headroom_percent(2_000_000), 0);
    }
}
