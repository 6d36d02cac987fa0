//! What kube-proxy programs, case by case: the table `service_tables_follow_kube_proxy`
//! checks `service_table` against.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    let a = Some("node-a");
    let b = Some("node-b");
    vec![
        case(
            "one ready endpoint",
            vec![web()],
            vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        case(
            "no EndpointSlice: the frontend is listed without backends",
            vec![web()],
            vec![],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
        ),
        case(
            "slices of other Services, other namespaces and without the label are ignored",
            vec![web()],
            vec![
                slice(
                    "api-1",
                    "api",
                    &[("http", Tcp, 8080)],
                    vec![ready("10.42.0.11", a)],
                ),
                EndpointSlice {
                    namespace: "other".into(),
                    ..web_slice("web-1", vec![ready("10.42.0.12", a)])
                },
                EndpointSlice {
                    service: None,
                    ..web_slice("web-2", vec![ready("10.42.0.13", a)])
                },
            ],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
        ),
        case(
            "each Service port takes the number of the slice port of its name",
            vec![service(
                "web",
                &["10.96.0.10"],
                &[("http", Tcp, 80), ("metrics", Tcp, 9090)],
            )],
            vec![slice(
                "web-1",
                "web",
                &[("metrics", Tcp, 9100), ("http", Tcp, 8080)],
                vec![ready("10.42.0.11", a)],
            )],
            &[
                ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                ("10.96.0.10", Tcp, 9090, ClusterIp, &["10.42.0.11:9100"]),
            ],
        ),
        case(
            "a slice port of the same name but another protocol does not match",
            vec![service(
                "dns",
                &["10.96.0.53"],
                &[("dns", Udp, 53), ("dns-tcp", Tcp, 53)],
            )],
            vec![slice(
                "dns-1",
                "dns",
                &[("dns", Tcp, 5353), ("dns-tcp", Tcp, 5353)],
                vec![ready("10.42.0.20", a)],
            )],
            &[
                ("10.96.0.53", Tcp, 53, ClusterIp, &["10.42.0.20:5353"]),
                ("10.96.0.53", Udp, 53, ClusterIp, &[]),
            ],
        ),
        case(
            "an unnamed port matches the unnamed slice port (the API server's Service)",
            vec![service("kubernetes", &["10.96.0.1"], &[("", Tcp, 443)])],
            vec![slice(
                "kubernetes",
                "kubernetes",
                &[("", Tcp, 6443)],
                vec![ready("192.168.1.10", None)],
            )],
            &[("10.96.0.1", Tcp, 443, ClusterIp, &["192.168.1.10:6443"])],
        ),
        case(
            "SCTP ports",
            vec![service("assoc", &["10.96.0.30"], &[("sctp", Sctp, 9999)])],
            vec![slice(
                "assoc-1",
                "assoc",
                &[("sctp", Sctp, 9000)],
                vec![ready("10.42.0.30", a)],
            )],
            &[("10.96.0.30", Sctp, 9999, ClusterIp, &["10.42.0.30:9000"])],
        ),
        case(
            "only ready endpoints while one is ready",
            vec![web()],
            vec![web_slice(
                "web-1",
                vec![
                    ready("10.42.0.11", a),
                    state(ready("10.42.0.12", a), TERMINATING),
                    state(ready("10.42.0.13", a), NOT_READY),
                    state(ready("10.42.0.14", a), GONE),
                ],
            )],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        case(
            "none ready: the serving and terminating ones",
            vec![web()],
            vec![web_slice(
                "web-1",
                vec![
                    state(ready("10.42.0.12", a), TERMINATING),
                    state(ready("10.42.0.13", b), NOT_READY),
                    state(ready("10.42.0.14", a), GONE),
                    state(ready("10.42.0.15", b), TERMINATING),
                ],
            )],
            &[(
                "10.96.0.10",
                Tcp,
                80,
                ClusterIp,
                &["10.42.0.12:8080", "10.42.0.15:8080"],
            )],
        ),
        case(
            "none ready and none serving while terminating: no backends",
            vec![web()],
            vec![web_slice(
                "web-1",
                vec![
                    state(ready("10.42.0.13", a), NOT_READY),
                    state(ready("10.42.0.14", a), GONE),
                ],
            )],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
        ),
        case(
            "the same endpoint in two slices is one backend",
            vec![web()],
            vec![
                web_slice("web-1", vec![ready("10.42.0.11", a)]),
                web_slice(
                    "web-2",
                    vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
                ),
            ],
            &[(
                "10.96.0.10",
                Tcp,
                80,
                ClusterIp,
                &["10.42.0.11:8080", "10.42.0.12:8080"],
            )],
        ),
        case(
            "one address at two ports (a named targetPort mid-rollout) is two backends",
            vec![web()],
            vec![
                web_slice("web-1", vec![ready("10.42.0.11", a)]),
                slice(
                    "web-2",
                    "web",
                    &[("http", Tcp, 8081)],
                    vec![ready("10.42.0.11", a)],
                ),
            ],
            &[(
                "10.96.0.10",
                Tcp,
                80,
                ClusterIp,
                &["10.42.0.11:8080", "10.42.0.11:8081"],
            )],
        ),
        case(
            "only an endpoint's first address is used",
            vec![web()],
            vec![web_slice(
                "web-1",
                vec![Endpoint {
                    addresses: ips(&["10.42.0.11", "10.42.0.99"]),
                    ..ready("10.42.0.11", a)
                }],
            )],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        case(
            "dual-stack: each family's cluster IP gets that family's slices",
            vec![service(
                "web",
                &["10.96.0.10", "fd00:96::10"],
                &[("http", Tcp, 80)],
            )],
            vec![
                web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                web_slice("web-v6", vec![ready("fd00:42::11", a)]),
            ],
            &[
                ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                ("fd00:96::10", Tcp, 80, ClusterIp, &["[fd00:42::11]:8080"]),
            ],
        ),
        case(
            "single-stack IPv4: IPv6 slices are ignored",
            vec![web()],
            vec![
                web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                web_slice("web-v6", vec![ready("fd00:42::11", a)]),
            ],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        case(
            "single-stack IPv6: IPv4 slices are ignored",
            vec![service("web", &["fd00:96::10"], &[("http", Tcp, 80)])],
            vec![
                web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                web_slice("web-v6", vec![ready("fd00:42::11", a)]),
            ],
            &[("fd00:96::10", Tcp, 80, ClusterIp, &["[fd00:42::11]:8080"])],
        ),
        case(
            "FQDN slices are ignored",
            vec![web()],
            vec![EndpointSlice {
                family: None,
                ..web_slice("web-1", vec![ready("10.42.0.11", a)])
            }],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
        ),
        case(
            "headless: no frontends",
            vec![service("db", &[], &[("pg", Tcp, 5432)])],
            vec![slice(
                "db-1",
                "db",
                &[("pg", Tcp, 5432)],
                vec![ready("10.42.0.40", a)],
            )],
            &[],
        ),
        case(
            "ExternalName: no frontends",
            vec![Service {
                service_type: ServiceType::ExternalName,
                cluster_ips: Vec::new(),
                ..external(web(), &["192.0.2.7"])
            }],
            vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
            &[],
        ),
        case(
            "internalTrafficPolicy Local: this node's endpoints only",
            vec![local(web())],
            vec![web_slice(
                "web-1",
                vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
            )],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        case(
            "internalTrafficPolicy Local without local endpoints: none",
            vec![local(web())],
            vec![web_slice("web-1", vec![ready("10.42.0.12", b)])],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
        ),
        case(
            "internalTrafficPolicy Local: an endpoint without nodeName is not local",
            vec![local(web())],
            vec![web_slice("web-1", vec![ready("10.42.0.11", None)])],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
        ),
        on(
            case(
                "internalTrafficPolicy Local and no node name: nothing is local",
                vec![local(web())],
                vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                &[("10.96.0.10", Tcp, 80, ClusterIp, &[])],
            ),
            None,
            &[],
        ),
        case(
            "Local falls back to local serving-terminating ones though others are ready",
            vec![local(web())],
            vec![web_slice(
                "web-1",
                vec![
                    state(ready("10.42.0.11", a), TERMINATING),
                    ready("10.42.0.12", b),
                ],
            )],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        case(
            "Cluster policy: a ready endpoint anywhere excludes terminating ones",
            vec![web()],
            vec![web_slice(
                "web-1",
                vec![
                    state(ready("10.42.0.11", a), TERMINATING),
                    ready("10.42.0.12", b),
                ],
            )],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.12:8080"])],
        ),
        case(
            "a duplicate's local copy wins over a remote one",
            vec![local(web())],
            vec![
                web_slice("web-1", vec![ready("10.42.0.11", b)]),
                web_slice("web-2", vec![ready("10.42.0.11", a)]),
            ],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        case(
            "otherwise a duplicate's first copy (by slice name) gives its conditions",
            vec![web()],
            vec![
                web_slice("web-1", vec![state(ready("10.42.0.11", b), GONE)]),
                web_slice(
                    "web-2",
                    vec![
                        ready("10.42.0.11", b),
                        state(ready("10.42.0.12", b), TERMINATING),
                    ],
                ),
            ],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.12:8080"])],
        ),
        case(
            "external IPs take every endpoint, whatever internalTrafficPolicy says",
            vec![local(external(web(), &["192.0.2.7"]))],
            vec![web_slice(
                "web-1",
                vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
            )],
            &[
                ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                (
                    "192.0.2.7",
                    Tcp,
                    80,
                    ExternalIp,
                    &["10.42.0.11:8080", "10.42.0.12:8080"],
                ),
            ],
        ),
        case(
            "external IPs of a family without a cluster IP are not captured",
            vec![external(web(), &["192.0.2.7", "2001:db8::7"])],
            vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
            &[
                ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                ("192.0.2.7", Tcp, 80, ExternalIp, &["10.42.0.11:8080"]),
            ],
        ),
        on(
            case(
                "NodePort: each node address of the family at the node port",
                vec![with_node_port(web(), ServiceType::NodePort, 30080)],
                vec![web_slice("web-1", vec![ready("10.42.0.12", b)])],
                &[
                    ("10.0.0.5", Tcp, 30080, NodePort, &["10.42.0.12:8080"]),
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.12:8080"]),
                    ("198.18.0.1", Tcp, 30080, NodePort, &["10.42.0.12:8080"]),
                ],
            ),
            a,
            &["198.18.0.1", "10.0.0.5", "fd00:fab::1"],
        ),
        on(
            case(
                "node ports take every endpoint, whatever internalTrafficPolicy says",
                vec![local(with_node_port(web(), ServiceType::NodePort, 30080))],
                vec![web_slice(
                    "web-1",
                    vec![ready("10.42.0.11", a), ready("10.42.0.12", b)],
                )],
                &[
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                    (
                        "198.18.0.1",
                        Tcp,
                        30080,
                        NodePort,
                        &["10.42.0.11:8080", "10.42.0.12:8080"],
                    ),
                ],
            ),
            a,
            &["198.18.0.1"],
        ),
        case(
            "NodePort without node addresses: the cluster IP only",
            vec![with_node_port(web(), ServiceType::NodePort, 30080)],
            vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
            &[("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"])],
        ),
        on(
            case(
                "LoadBalancer: ingress IPs, node ports and the cluster IP",
                vec![Service {
                    load_balancer_ips: ips(&["203.0.113.5"]),
                    ..with_node_port(web(), ServiceType::LoadBalancer, 31000)
                }],
                vec![web_slice("web-1", vec![ready("10.42.0.11", a)])],
                &[
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                    ("198.18.0.1", Tcp, 31000, NodePort, &["10.42.0.11:8080"]),
                    ("203.0.113.5", Tcp, 80, LoadBalancer, &["10.42.0.11:8080"]),
                ],
            ),
            a,
            &["198.18.0.1"],
        ),
        on(
            case(
                "dual-stack NodePort: each family's node addresses get that family's backends",
                vec![with_node_port(
                    service("web", &["fd00:96::10", "10.96.0.10"], &[("http", Tcp, 80)]),
                    ServiceType::NodePort,
                    30080,
                )],
                vec![
                    web_slice("web-v4", vec![ready("10.42.0.11", a)]),
                    web_slice("web-v6", vec![ready("fd00:42::11", a)]),
                ],
                &[
                    ("10.96.0.10", Tcp, 80, ClusterIp, &["10.42.0.11:8080"]),
                    ("198.18.0.1", Tcp, 30080, NodePort, &["10.42.0.11:8080"]),
                    ("fd00:96::10", Tcp, 80, ClusterIp, &["[fd00:42::11]:8080"]),
                    ("fd00:fab::1", Tcp, 30080, NodePort, &["[fd00:42::11]:8080"]),
                ],
            ),
            a,
            &["198.18.0.1", "fd00:fab::1"],
        ),
        case(
            "two Services claiming one external IP and port: the first by name keeps it",
            vec![
                external(
                    service("a", &["10.96.0.1"], &[("http", Tcp, 80)]),
                    &["192.0.2.7"],
                ),
                external(
                    service("b", &["10.96.0.2"], &[("http", Tcp, 80)]),
                    &["192.0.2.7"],
                ),
            ],
            vec![
                slice(
                    "a-1",
                    "a",
                    &[("http", Tcp, 8080)],
                    vec![ready("10.42.0.1", a)],
                ),
                slice(
                    "b-1",
                    "b",
                    &[("http", Tcp, 8080)],
                    vec![ready("10.42.0.2", a)],
                ),
            ],
            &[
                ("10.96.0.1", Tcp, 80, ClusterIp, &["10.42.0.1:8080"]),
                ("10.96.0.2", Tcp, 80, ClusterIp, &["10.42.0.2:8080"]),
                ("192.0.2.7", Tcp, 80, ExternalIp, &["10.42.0.1:8080"]),
            ],
        ),
    ]
}
