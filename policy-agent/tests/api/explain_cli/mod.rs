//! `policy-agent explain` as a user runs it: a datastore directory with Calico and Kubernetes
//! resources, a packet named by pods, the walk in text and in JSON.

mod command;
mod service_manifests;
mod services;
mod walks;
