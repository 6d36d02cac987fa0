//! What `policy-agent` prints to explain itself: the compiled maps ([`maps`], for `compile`)
//! and the verdict on one packet with every tier, policy and rule consulted ([`verdict`], for
//! `explain`).

mod maps;
pub mod verdict;

pub use self::maps::render;
