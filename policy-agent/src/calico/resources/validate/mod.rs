//! Calico's validation rules, from raw YAML types to the checked types.
//!
//! The rules are libcalico-go's v3 validator's: names, tiers and their name prefixes, `types`
//! and its defaulting, the `doNotTrack`/`preDNAT`/`applyOnForward` combinations, protocols,
//! ICMP fields, CIDRs and their IP version, ports and the protocols that have them, and where
//! `global()` may appear. Every problem in a resource is reported, not only the first.
//!
//! One module per resource kind ([`policy`], [`tier`], [`network_set`], [`host_endpoint`]),
//! one per part of a policy ([`rule`], [`entity`]), and the checks they share: names and
//! metadata ([`names`]), fields several kinds have ([`fields`]), and the error collector with
//! the selector check ([`checker`]).

mod checker;
mod entity;
mod fields;
mod host_endpoint;
mod names;
mod network_set;
mod policy;
mod rule;
mod tier;

pub(super) use self::{
    host_endpoint::host_endpoint,
    network_set::network_set,
    policy::{global_network_policy, network_policy},
    tier::tier,
};
