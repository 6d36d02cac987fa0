//! Compiler unit tests on the seed's constructs, checked through the userspace replay of the
//! datapath's lookups (`crate::replay`), so they test what the kernel would decide.

mod calico;
mod fixtures;
mod incremental;
mod sharing;
mod verdicts;
