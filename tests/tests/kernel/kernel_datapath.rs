//! The real eBPF programs, run by the kernel with `BPF_PROG_TEST_RUN` on crafted frames, on
//! maps filled by the real agent code (file datastore → compiler → sync), checked against
//! the userspace replay of the same lookups. Privileged: needs root (a failure under CI=true).

use palisade_tests::{require_root, scratch::Scratch};
use std::{net::IpAddr, path::Path};

use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    replay::{self, Direction, Packet},
};

const SEED: &str = include_str!("data/seed-cluster.yaml");
const ALLOW: &str = include_str!("data/allow-frontend-to-backend.yaml");

fn compile(compiler: &mut Compiler, dir: &Path) -> MapContents {
    let snapshot = FileDatastore::new(dir)
        .load()
        .expect("reading the manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    std::sync::Arc::unwrap_or_clone(compiler.compile(&snapshot.cluster, &Scope::default()).maps)
}

/// A datapath programmed with the seed cluster, and what it needs to stay alive.
struct Seeded {
    scratch: Scratch,
    compiler: Compiler,
    datapath: Datapath,
    maps: MapContents,
}

fn seeded(test: &str) -> Seeded {
    let scratch = Scratch::new("kernel-test", test);
    scratch.write("seed.yaml", SEED);
    let mut compiler = Compiler::new();
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    let maps = compile(&mut compiler, &scratch.manifests);
    datapath
        .apply(&MapContents::default(), &maps)
        .expect("programming the seed");
    Seeded {
        scratch,
        compiler,
        datapath,
        maps,
    }
}

const ADDRS: [&str; 4] = ["10.42.0.10", "10.42.0.11", "10.42.0.12", "203.0.113.9"];

fn packets() -> Vec<Packet> {
    let mut packets = Vec::new();
    for src in ADDRS {
        for dst in ADDRS {
            if src == dst {
                continue;
            }
            for (protocol, ports) in [
                (6u8, &[80u16, 8000, 8001][..]),
                (17, &[8000]),
                (132, &[8000]),
                (1, &[0]),
            ] {
                for &dport in ports {
                    packets.push(Packet {
                        src: src.parse::<IpAddr>().expect("addr"),
                        dst: dst.parse::<IpAddr>().expect("addr"),
                        protocol,
                        sport: 40_000,
                        dport,
                    });
                }
            }
        }
    }
    packets
}

/// Runs every packet in both directions, each as the first packet of its flow (the replay
/// models policy, not connection state); returns (allowed, denied) counts.
fn check_against_replay(datapath: &mut Datapath, maps: &MapContents) -> (usize, usize) {
    let (mut allowed, mut denied) = (0, 0);
    for packet in packets() {
        for direction in [Direction::FromEndpoint, Direction::ToEndpoint] {
            datapath.clear_conntrack().expect("clearing conntrack");
            let kernel = datapath
                .test_run(direction, &packet.to_frame(), 1)
                .expect("BPF_PROG_TEST_RUN");
            let expected = replay::allows(maps, &packet, direction);
            assert_eq!(
                kernel.allowed(),
                expected,
                "{packet:?} {direction:?}: kernel returned {}",
                kernel.return_code
            );
            if expected {
                allowed += 1;
            } else {
                denied += 1;
            }
        }
    }
    (allowed, denied)
}

#[test]
fn kernel_verdicts_match_the_replay_through_policy_changes() {
    if !require_root("kernel_verdicts_match_the_replay_through_policy_changes") {
        return;
    }
    let Seeded {
        scratch,
        mut compiler,
        mut datapath,
        maps: seed,
    } = seeded("replay");
    let (allowed, denied) = check_against_replay(&mut datapath, &seed);
    assert!(
        allowed > 0 && denied > 0,
        "{allowed} allowed, {denied} denied"
    );

    // frontend → backend:8000 is denied by deny-all, then allowed once the allow policy lands.
    let frontend_to_backend = Packet {
        src: "10.42.0.10".parse().expect("addr"),
        dst: "10.42.0.11".parse().expect("addr"),
        protocol: 6,
        sport: 40_000,
        dport: 8000,
    };
    let kernel = |dp: &Datapath| {
        dp.test_run(Direction::ToEndpoint, &frontend_to_backend.to_frame(), 1)
            .expect("test run")
            .allowed()
    };
    assert!(!kernel(&datapath));

    scratch.write("allow.yaml", ALLOW);
    let with_allow = compile(&mut compiler, &scratch.manifests);
    datapath
        .apply(&seed, &with_allow)
        .expect("adding the allow policy");
    assert!(kernel(&datapath));
    check_against_replay(&mut datapath, &with_allow);

    scratch.remove("allow.yaml");
    let again = compile(&mut compiler, &scratch.manifests);
    datapath
        .apply(&with_allow, &again)
        .expect("removing the allow policy");
    assert!(!kernel(&datapath));
    check_against_replay(&mut datapath, &again);
}

#[test]
fn malformed_and_unusual_frames_fail_closed() {
    if !require_root("malformed_and_unusual_frames_fail_closed") {
        return;
    }
    let Seeded {
        scratch: _scratch,
        datapath,
        ..
    } = seeded("malformed");

    // frontend (not isolated) sending to backend: a well-formed frame passes egress.
    let good = Packet {
        src: "10.42.0.10".parse().expect("addr"),
        dst: "10.42.0.11".parse().expect("addr"),
        protocol: 6,
        sport: 40_000,
        dport: 8000,
    }
    .to_frame();
    let run = |frame: &[u8], direction| {
        datapath
            .test_run(direction, frame, 1)
            .expect("test run")
            .allowed()
    };
    assert!(run(&good, Direction::FromEndpoint));

    // TCP header cut before the destination port.
    assert!(!run(&good[..14 + 20 + 2], Direction::FromEndpoint));
    // IPv4 header length below 20 bytes.
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    assert!(!run(&bad_ihl, Direction::FromEndpoint));
    // A VLAN tag: nothing a pod interface should carry.
    let mut vlan = good.clone();
    vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    assert!(!run(&vlan, Direction::FromEndpoint));
    // A spoofed source address that is no endpoint's.
    let spoofed = Packet {
        src: "10.42.0.99".parse().expect("addr"),
        dst: "10.42.0.11".parse().expect("addr"),
        protocol: 6,
        sport: 40_000,
        dport: 8000,
    }
    .to_frame();
    assert!(!run(&spoofed, Direction::FromEndpoint));
    // IPv6 packets claiming IPv4-mapped addresses would borrow an IPv4 identity: dropped.
    let mapped = Packet {
        src: "::ffff:10.42.0.10".parse().expect("addr"),
        dst: "fd00::11".parse().expect("addr"),
        protocol: 6,
        sport: 40_000,
        dport: 8000,
    }
    .to_frame();
    assert_eq!(u16::from_be_bytes([mapped[12], mapped[13]]), 0x86dd);
    assert!(!run(&mapped, Direction::FromEndpoint));
    // ARP is plumbing and passes even to an isolated pod.
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    arp.extend_from_slice(&0x0806u16.to_be_bytes());
    arp.extend_from_slice(&[0u8; 28]);
    assert!(run(&arp, Direction::ToEndpoint));
    // A later IPv4 fragment to isolated backend carries no ports: denied (deny-all).
    let mut fragment = good.clone();
    fragment[14 + 6..14 + 8].copy_from_slice(&0x0010u16.to_be_bytes());
    assert!(!run(&fragment, Direction::ToEndpoint));
}

#[test]
fn replies_to_allowed_connections_pass_isolated_endpoints_and_nothing_else_does() {
    if !require_root("replies_to_allowed_connections_pass_isolated_endpoints_and_nothing_else_does")
    {
        return;
    }
    let Seeded {
        scratch: _scratch,
        mut datapath,
        ..
    } = seeded("conntrack");

    // backend (ingress isolated by deny-all) opens a connection to frontend:80 from port 40000.
    let backend = "10.42.0.11".parse::<IpAddr>().expect("addr");
    let frontend = "10.42.0.10".parse::<IpAddr>().expect("addr");
    let request = Packet {
        src: backend,
        dst: frontend,
        protocol: 6,
        sport: 40_000,
        dport: 80,
    }
    .to_frame();
    let mut reply = request.clone();
    // Swap addresses and ports: frontend:80 -> backend:40000.
    reply[26..30].copy_from_slice(&request[30..34]);
    reply[30..34].copy_from_slice(&request[26..30]);
    reply[34..36].copy_from_slice(&request[36..38]);
    reply[36..38].copy_from_slice(&request[34..36]);
    let run = |dp: &Datapath, frame: &[u8], direction| {
        dp.test_run(direction, frame, 1)
            .expect("test run")
            .allowed()
    };

    // Before the request, the "reply" is just an unsolicited packet to isolated backend.
    assert!(!run(&datapath, &reply, Direction::ToEndpoint));
    assert!(run(&datapath, &request, Direction::FromEndpoint));
    assert!(run(&datapath, &reply, Direction::ToEndpoint));
    let entries = datapath.conntrack_entries().expect("conntrack");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0].1.flags,
        policy_common::conntrack::ALLOWED_BY_EGRESS | policy_common::conntrack::SENT_HERE
    );

    // A new connection from frontend to backend is still denied: only replies pass.
    let new_connection = Packet {
        src: frontend,
        dst: backend,
        protocol: 6,
        sport: 40_000,
        dport: 40000,
    };
    let mut other_port = new_connection.to_frame();
    other_port[34..36].copy_from_slice(&81u16.to_be_bytes());
    assert!(!run(&datapath, &other_port, Direction::ToEndpoint));
    datapath.clear_conntrack().expect("clear");
    assert!(!run(&datapath, &reply, Direction::ToEndpoint));
}

#[test]
fn an_endpoint_address_is_only_accepted_on_its_own_interface() {
    if !require_root("an_endpoint_address_is_only_accepted_on_its_own_interface") {
        return;
    }
    let Seeded {
        scratch: _scratch,
        mut datapath,
        maps: unbound,
        ..
    } = seeded("binding");

    let frontend = policy_common::endpoint::EndpointKey {
        addr: policy_agent::compiler::identity_addr("10.42.0.10".parse().expect("addr")),
    };
    let bind = |ifindex: u32| {
        let mut maps = unbound.clone();
        maps.endpoints
            .get_mut(&frontend)
            .expect("frontend is an endpoint")
            .ifindex = ifindex;
        maps
    };
    let from_frontend = Packet {
        src: "10.42.0.10".parse().expect("addr"),
        dst: "10.42.0.12".parse().expect("addr"),
        protocol: 6,
        sport: 40_000,
        dport: 80,
    }
    .to_frame();
    let to_frontend = Packet {
        src: "10.42.0.12".parse().expect("addr"),
        dst: "10.42.0.10".parse().expect("addr"),
        protocol: 6,
        sport: 40_000,
        dport: 80,
    }
    .to_frame();
    let run = |dp: &mut Datapath, frame: &[u8], direction| {
        dp.clear_conntrack().expect("clear");
        dp.test_run(direction, frame, 1)
            .expect("test run")
            .allowed()
    };
    assert!(run(&mut datapath, &from_frontend, Direction::FromEndpoint));

    // Bound to another interface: the same packet, seen here, is someone else's spoof.
    let elsewhere = bind(424_242);
    datapath.apply(&unbound, &elsewhere).expect("binding");
    assert!(!run(&mut datapath, &from_frontend, Direction::FromEndpoint));
    assert!(!run(&mut datapath, &to_frontend, Direction::ToEndpoint));

    // Bound to the interface the kernel runs the test on (the loopback device, ifindex 1).
    let here = bind(1);
    datapath.apply(&elsewhere, &here).expect("binding");
    assert!(run(&mut datapath, &from_frontend, Direction::FromEndpoint));
    assert!(run(&mut datapath, &to_frontend, Direction::ToEndpoint));
}

#[test]
fn the_kernel_walks_every_table_of_a_full_list_with_every_lookup_kind() {
    if !require_root("the_kernel_walks_every_table_of_a_full_list_with_every_lookup_kind") {
        return;
    }
    let Seeded {
        scratch,
        mut compiler,
        mut datapath,
        maps: seed,
    } = seeded("full-list");
    // 20 policies on backend (more than the 16 slots: the last slot merges five), each
    // opening one TCP port, with selector, ipBlock and peerless rules in turn so every table
    // kind and lookup bit appears.
    let mut policies = String::new();
    for i in 0..20u16 {
        let from = match i % 3 {
            0 => "from: [{podSelector: {matchLabels: {app: frontend}}}]",
            1 => "from: [{ipBlock: {cidr: 10.42.0.10/32}}]",
            _ => "from: []",
        };
        policies.push_str(&format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {{name: p{i:02}, namespace: default}}\n\
             spec:\n  podSelector: {{matchLabels: {{app: backend}}}}\n  ingress:\n  \
             - {from}\n    ports: [{{port: {}}}]\n",
            8100 + i
        ));
    }
    scratch.write("many.yaml", &policies);
    let maps = compile(&mut compiler, &scratch.manifests);
    datapath
        .apply(&seed, &maps)
        .expect("programming 20 policies");
    let mut allowed = 0;
    for src in ["10.42.0.10", "10.42.0.12"] {
        for dport in 8099..8121 {
            let packet = Packet {
                src: src.parse().expect("addr"),
                dst: "10.42.0.11".parse().expect("addr"),
                protocol: 6,
                sport: 40_000,
                dport,
            };
            datapath.clear_conntrack().expect("clearing conntrack");
            let kernel = datapath
                .test_run(Direction::ToEndpoint, &packet.to_frame(), 1)
                .expect("BPF_PROG_TEST_RUN")
                .allowed();
            assert_eq!(
                kernel,
                replay::allows(&maps, &packet, Direction::ToEndpoint),
                "{packet:?}"
            );
            allowed += usize::from(kernel);
        }
    }
    // frontend: all 20 ports; other: only the peerless rules' ports (i % 3 == 2: 6 of them).
    assert_eq!(allowed, 20 + 6);
}

/// The verifier's figures are read back for each program loaded (issue 18: headroom reported).
#[test]
fn every_loaded_program_reports_what_it_cost_the_verifier() {
    if !require_root("every_loaded_program_reports_what_it_cost_the_verifier") {
        return;
    }
    let Seeded { datapath, .. } = seeded("verifier");
    let programs = datapath.programs();
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "palisade_from_endpoint",
            "palisade_to_endpoint",
            "palisade_after_nat"
        ]
    );
    for program in programs {
        eprintln!("{program:?}");
        // Kernel 5.16+ reports the count; this machine's 6.x does.
        assert!(program.verified_insns > 0, "{program:?}");
        assert!(program.xlated_bytes > 0, "{program:?}");
        assert_eq!(
            program.headroom_percent,
            (1_000_000 - program.verified_insns.min(1_000_000)) * 100 / 1_000_000,
            "{program:?}"
        );
    }
}
