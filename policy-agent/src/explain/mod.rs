//! What `policy-agent` prints to explain itself: the compiled maps ([`maps`], for `compile`)
//! and the verdict on one packet with every tier, policy and rule consulted ([`verdict`], for
//! `explain`), also for each backend of a Service ([`service`], `explain --to service/NS/NAME`).

mod maps;
pub mod service;
pub mod verdict;

pub use self::maps::render;
