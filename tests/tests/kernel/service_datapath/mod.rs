//! Service traffic in the real programs (`BPF_PROG_TEST_RUN`), hook by hook as a node runs
//! them: the client's interface (`palisade_from_endpoint`) before kube-proxy's translation,
//! then `palisade_after_nat` and the backend's interface after it, and the replies back
//! through the reverse translation. The sender's egress is judged on the backend and its
//! target port, replies from the frontend pass only for a flow so allowed, a changed policy
//! is checked against the backend, not the frontend.
//! Privileged: needs root (a failure under CI=true).

mod cluster;
mod frames;
mod frontends;
mod hairpin;
mod node;
mod translation;
