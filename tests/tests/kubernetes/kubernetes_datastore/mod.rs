//! The Kubernetes datastore through the real kube client against an in-process stand-in API
//! server speaking the list/watch protocol (see `kubernetes_apiserver`). After every step the
//! test waits until the datastore's digest names exactly the server's object versions, then
//! checks the snapshot against the file datastore fed the same objects (same cluster, same
//! compiled maps) and checks verdicts on the compiled maps with the userspace replay of the
//! datapath's lookups.

mod compile;
mod fixtures;
mod services;
mod sync;
mod watches;
