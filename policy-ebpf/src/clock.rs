//! The programs' one clock: what connection entries, fragments' verdicts and flow events are
//! stamped with.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;

/// `CLOCK_MONOTONIC` at the kernel tick's resolution (1 to 10 ms), the agent's
/// `CLOCK_MONOTONIC` read coarsely: every timeout it is compared against is seconds long, and
/// it costs half of `bpf_ktime_get_ns` on every packet (14.5 against 30.9 ns: `cargo bench -p
/// policy-agent --bench step_costs`). A coarse stamp is never ahead of a fine one, and every
/// comparison of stamps saturates.
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}
