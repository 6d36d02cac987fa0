#![no_std]
// Exists so that `cargo clippy --all-targets` has a library target; the program is in main.rs.
