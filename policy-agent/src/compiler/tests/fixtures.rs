//! The seed's pods and policies as manifests, compiled, and the packets the tests send.

use std::{net::IpAddr, sync::Arc};

use k8s_openapi::api::{core::v1 as core, networking::v1 as networking};
use serde::Deserialize;

use crate::{
    compiler::{Compiler, MapContents, Scope},
    model::{Cluster, convert},
    replay::Packet,
};

pub(super) const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: default, labels: {app: frontend}}
spec: {containers: [{name: nginx, image: nginx:alpine, ports: [{containerPort: 80, name: http}]}]}
status: {podIP: 10.42.0.10, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: backend, namespace: default, labels: {app: backend}}
spec: {containers: [{name: python, image: python:3.9-slim}]}
status: {podIP: 10.42.0.11, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.12, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: backend-2, namespace: default, labels: {app: backend}}
spec: {containers: [{name: python, image: python:3.9-slim}]}
status: {podIP: 10.42.0.13, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: prod, labels: {app: frontend}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.14, phase: Running}
"#;

pub(super) const DENY_ALL_INGRESS_TO_BACKEND: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all-ingress-to-backend
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: backend
  policyTypes:
  - Ingress
"#;

pub(super) const ALLOW_FRONTEND_TO_BACKEND: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend-to-backend
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: backend
  policyTypes:
  - Ingress
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: frontend
    ports:
    - protocol: TCP
      port: 8000
"#;

pub(super) fn cluster(manifests: &[&str]) -> Cluster {
    let mut cluster = Cluster::default();
    for manifest in manifests {
        for doc in serde_yaml::Deserializer::from_str(manifest) {
            let value = serde_yaml::Value::deserialize(doc).expect("test manifest is YAML");
            match value.get("kind").and_then(|k| k.as_str()) {
                Some("Pod") => {
                    let pod: core::Pod = serde_yaml::from_value(value).expect("pod");
                    let pod = convert::pod(&pod).expect("valid pod");
                    cluster
                        .pods
                        .insert((pod.namespace.clone(), pod.name.clone()), pod.into());
                }
                Some("NetworkPolicy") => {
                    let np: networking::NetworkPolicy =
                        serde_yaml::from_value(value).expect("policy");
                    let np = convert::network_policy(&np).expect("valid policy");
                    cluster
                        .policies
                        .insert((np.namespace.clone(), np.name.clone()), np.into());
                }
                Some("Namespace") => {
                    let ns: core::Namespace = serde_yaml::from_value(value).expect("ns");
                    let ns = convert::namespace(&ns).expect("valid namespace");
                    cluster.namespaces.insert(ns.name.clone(), ns.into());
                }
                other => panic!("unexpected kind {other:?}"),
            }
        }
    }
    cluster
}

pub(super) fn compile(manifests: &[&str]) -> MapContents {
    Arc::unwrap_or_clone(
        Compiler::new()
            .compile(&cluster(manifests), &Scope::default())
            .maps,
    )
}

pub(super) fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
    packet(src, dst, 6, dport)
}

pub(super) fn packet(src: &str, dst: &str, protocol: u8, dport: u16) -> Packet {
    Packet {
        src: src.parse::<IpAddr>().expect("test address"),
        dst: dst.parse::<IpAddr>().expect("test address"),
        protocol,
        sport: 40_000,
        dport,
    }
}

pub(super) const FRONTEND: &str = "10.42.0.10";
pub(super) const BACKEND: &str = "10.42.0.11";
pub(super) const OTHER: &str = "10.42.0.12";
pub(super) const BACKEND_2: &str = "10.42.0.13";
pub(super) const PROD_FRONTEND: &str = "10.42.0.14";
