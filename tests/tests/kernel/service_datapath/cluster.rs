//! The cluster: the pods' and Services' addresses, their manifests, the client's egress.

use std::net::Ipv4Addr;

pub(super) const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 10);
pub(super) const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 11);
pub(super) const OTHER: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 12);
/// ClusterIPs: `backend` (80 -> 8000), `other` (80 -> 8000), `api` (443 -> the node's 6443),
/// `empty` (no endpoints), `mixed` (80 -> backend's 8000 and other's 9000: named port).
pub(super) const BACKEND_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
pub(super) const OTHER_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 21);
pub(super) const API_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
pub(super) const EMPTY_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);
pub(super) const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

pub(super) const SYN: u8 = 0x02;
pub(super) const ACK: u8 = 0x10;

pub(super) const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIPs: [{ip: 10.42.0.10}, {ip: "fd00:42::10"}], phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: backend, namespace: default, labels: {app: backend}}
spec: {containers: [{name: c, image: busybox, ports: [{name: web, containerPort: 8000}]}]}
status: {podIPs: [{ip: 10.42.0.11}, {ip: "fd00:42::11"}], phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default, labels: {app: other}}
spec: {containers: [{name: c, image: busybox, ports: [{name: web, containerPort: 9000}]}]}
status: {podIPs: [{ip: 10.42.0.12}, {ip: "fd00:42::12"}], phase: Running}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-all, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-from-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8000}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other-from-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: other}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec: {clusterIP: 10.96.0.20, selector: {app: backend}, ports: [{port: 80, targetPort: 8000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-a, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
endpoints: [{addresses: [10.42.0.11], conditions: {ready: true}}]
ports: [{name: "", port: 8000, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {clusterIP: 10.96.0.21, selector: {app: other}, ports: [{port: 80, targetPort: web}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-a, namespace: default, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
endpoints: [{addresses: [10.42.0.12], conditions: {ready: true}}]
ports: [{name: "", port: 9000, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443, targetPort: 6443}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
endpoints: [{addresses: [198.18.0.1]}]
ports: [{name: https, port: 6443, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: multi, namespace: default}
spec:
  clusterIPs: [10.96.0.40, "fd00:96::40"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: RequireDualStack
  selector: {app: backend}
  ports:
  - {name: tcp, port: 80, targetPort: 8000}
  - {name: udp, port: 53, targetPort: 5353, protocol: UDP}
  - {name: sctp, port: 7777, targetPort: 7000, protocol: SCTP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: multi-v4, namespace: default, labels: {kubernetes.io/service-name: multi}}
addressType: IPv4
endpoints: [{addresses: [10.42.0.11]}]
ports: [{name: tcp, port: 8000}, {name: udp, port: 5353, protocol: UDP}, {name: sctp, port: 7000, protocol: SCTP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: multi-v6, namespace: default, labels: {kubernetes.io/service-name: multi}}
addressType: IPv6
endpoints: [{addresses: ["fd00:42::11"]}]
ports: [{name: tcp, port: 8000}, {name: udp, port: 5353, protocol: UDP}, {name: sctp, port: 7000, protocol: SCTP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-udp-sctp-from-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 5353, protocol: UDP}, {port: 7000, protocol: SCTP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-udp-sctp-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - to: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{port: 5353, protocol: UDP}, {port: 7000, protocol: SCTP}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec: {clusterIP: 10.96.0.30, selector: {app: nobody}, ports: [{port: 80}]}
"#;

/// The client may reach backend on 8000 and other on 9000 (pods, any port otherwise closed).
pub(super) const CLIENT_EGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - {to: [{podSelector: {matchLabels: {app: backend}}}], ports: [{port: 8000}]}
  - {to: [{podSelector: {matchLabels: {app: other}}}], ports: [{port: 80}]}
"#;
