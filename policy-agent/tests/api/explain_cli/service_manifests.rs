//! The Services, EndpointSlices, pods and policies the Service cases explain against.

use tempfile::TempDir;

use crate::scratch_dir;

/// Services, with EndpointSlices as the endpointslice controller writes them (the file
/// datastore has no controller): `api` (port 80 to targetPort 8000), `web` (named targetPort
/// `http`, 8080 on web-a and 9090 on web-b: one slice per port number), `external` (no
/// selector, its own slice with two addresses outside the cluster), `web-local`
/// (`internalTrafficPolicy: Local`, one backend on each node), `empty` (no endpoints),
/// `headless`, `alias` (ExternalName). `client` may send to `api` on 8000, to `web` on 8080
/// and to 192.0.2.0/24 on 6443; `client80` to `api` on 80 only.
const SERVICES: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {app: client}}
spec: {nodeName: n1, containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: client80, namespace: app, labels: {app: client80}}
spec: {nodeName: n1, containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.1.11}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: app, labels: {app: api}}
spec: {nodeName: n1, containers: [{name: api, image: api, ports: [{containerPort: 8000}]}]}
status: {podIP: 10.42.1.30}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, namespace: app, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.42.1.20}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, namespace: app, labels: {app: web}}
spec: {nodeName: n2, containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 9090}]}]}
status: {podIP: 10.42.1.21}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: app}
spec:
  clusterIP: 10.96.1.30
  selector: {app: api}
  ports: [{port: 80, targetPort: 8000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-x1, namespace: app, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: "", protocol: TCP, port: 8000}]
endpoints:
  - addresses: [10.42.1.30]
    conditions: {ready: true}
    nodeName: n1
    targetRef: {kind: Pod, namespace: app, name: api}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec:
  clusterIP: 10.96.1.20
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-x1, namespace: app, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints:
  - addresses: [10.42.1.20]
    conditions: {ready: true}
    nodeName: n1
    targetRef: {kind: Pod, namespace: app, name: web-a}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-x2, namespace: app, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 9090}]
endpoints:
  - addresses: [10.42.1.21]
    conditions: {ready: true}
    nodeName: n2
    targetRef: {kind: Pod, namespace: app, name: web-b}
---
apiVersion: v1
kind: Service
metadata: {name: external, namespace: app}
spec:
  clusterIP: 10.96.1.40
  ports: [{name: https, port: 443, targetPort: 6443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: external-1, namespace: app, labels: {kubernetes.io/service-name: external}}
addressType: IPv4
ports: [{name: https, protocol: TCP, port: 6443}]
endpoints:
  - addresses: [192.0.2.10]
  - addresses: [198.51.100.10]
  - addresses: [198.51.100.11]
    conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: web-local, namespace: app}
spec:
  clusterIP: 10.96.1.60
  internalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-local-1, namespace: app, labels: {kubernetes.io/service-name: web-local}}
addressType: IPv4
ports: [{name: "", protocol: TCP, port: 8080}]
endpoints:
  - addresses: [10.42.1.20]
    nodeName: n1
    targetRef: {kind: Pod, namespace: app, name: web-a}
  - addresses: [10.42.1.21]
    nodeName: n2
    targetRef: {kind: Pod, namespace: app, name: web-b}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: app}
spec:
  clusterIP: 10.96.1.50
  selector: {app: nobody}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: app}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: app}
spec: {type: ExternalName, externalName: example.com}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: app}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{port: 8000}]
    - to: [{podSelector: {matchLabels: {app: web}}}]
      ports: [{port: 8080}]
    - to: [{ipBlock: {cidr: 192.0.2.0/24}}]
      ports: [{port: 6443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client80-egress, namespace: app}
spec:
  podSelector: {matchLabels: {app: client80}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-ingress, namespace: app}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
    - from: [{podSelector: {}}]
      ports: [{port: 8000}]
"#;

pub(super) fn services(test: &str) -> TempDir {
    let scratch = scratch_dir(&format!("explain-{test}"));
    std::fs::write(scratch.path().join("services.yaml"), SERVICES).expect("writing a manifest");
    scratch
}
