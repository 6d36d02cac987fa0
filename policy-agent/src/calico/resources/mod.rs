//! Calico v3 resources (in progress).
