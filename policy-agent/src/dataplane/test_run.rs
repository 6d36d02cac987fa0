//! Running the loaded programs on a crafted frame with `BPF_PROG_TEST_RUN`: the kernel's
//! verdict on exactly the maps the agent programmed, without any interface or traffic.
//! Tests compare it with the userspace replay; benchmarks use the repeat count.

use std::time::Duration;

use aya::programs::{TestRun as _, TestRunOptions};
use policy_common::program_names;

use super::{Datapath, DataplaneError, loader::classifier};
use crate::replay::Direction;

/// tc return codes the programs use.
pub const TC_ACT_UNSPEC: i32 = -1;
pub const TC_ACT_SHOT: i32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelVerdict {
    /// `TC_ACT_UNSPEC` (continue: allowed) or `TC_ACT_SHOT` (dropped).
    pub return_code: i32,
    /// Mean time per run over `repeat` runs, as the kernel measured it.
    pub per_run: Duration,
}

/// Attempts of one test run interrupted by signals before the interruption is an error.
const EINTR_ATTEMPTS: u32 = 10;

impl KernelVerdict {
    pub fn allowed(&self) -> bool {
        self.return_code == TC_ACT_UNSPEC
    }
}

impl Datapath {
    pub fn test_run(
        &self,
        direction: Direction,
        frame: &[u8],
        repeat: u32,
    ) -> Result<KernelVerdict, DataplaneError> {
        let name = match direction {
            Direction::FromEndpoint => program_names::FROM_ENDPOINT,
            Direction::ToEndpoint => program_names::TO_ENDPOINT,
        };
        self.run_program(name, frame, repeat)
    }

    /// As [`Datapath::test_run`], with the post-translation program every interface's
    /// egress runs (`palisade_after_nat`): the frame as kube-proxy rewrote it.
    pub fn test_run_after_nat(
        &self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<KernelVerdict, DataplaneError> {
        self.run_program(program_names::AFTER_NAT, frame, repeat)
    }

    /// As [`Datapath::test_run`], with the programs of a host endpoint's interface (the
    /// packet runs with no interface, `ifindex` 0).
    pub fn test_run_host(
        &mut self,
        direction: Direction,
        frame: &[u8],
        repeat: u32,
    ) -> Result<KernelVerdict, DataplaneError> {
        let name = match direction {
            Direction::FromEndpoint => program_names::HOST_EGRESS,
            Direction::ToEndpoint => program_names::HOST_INGRESS,
        };
        self.ensure_loaded(name)?;
        self.run_program(name, frame, repeat)
    }

    fn run_program(
        &self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<KernelVerdict, DataplaneError> {
        let program = classifier(&self.ebpf, name)?;
        // The kernel gives up a test run with EINTR when a signal is pending for the thread
        // (`bpf_test_timer_continue`), and does not restart it: run it again, a few times.
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match program.test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: repeat.max(1),
                ..Default::default()
            }) {
                Err(aya::programs::ProgramError::SyscallError(e))
                    if e.io_error.kind() == std::io::ErrorKind::Interrupted
                        && attempts < EINTR_ATTEMPTS => {}
                other => break other.map_err(|source| DataplaneError::Program { name, source })?,
            }
        };
        #[expect(
            clippy::cast_possible_wrap,
            reason = "the kernel returns the program's i32 verdict as u32"
        )]
        Ok(KernelVerdict {
            return_code: result.return_value as i32,
            per_run: result.duration,
        })
    }
}
