//! Flow events on the real datapath (`BPF_PROG_TEST_RUN`): a Calico `Log` rule writes an event
//! naming the rule that decided, denies write events only with log-denies on, each CPU writes
//! at most its budget per second, and `policy-agent flows` prints them from the pinned ring.
//! Privileged: needs root (a failure under CI=true).

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    net::IpAddr,
    process::{Command, Stdio},
};

use palisade_tests::{require_root, scratch::Scratch};
use policy_agent::{
    compiler::{Compiled, Compiler, Scope},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    flows,
    replay::{Direction, Packet},
};
use policy_common::flow::{EVENTS_PER_SECOND, TO_ENDPOINT};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx}]}
status: {podIP: 10.42.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.42.0.21}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: audit-web}
spec:
  selector: app == 'web'
  types: [Ingress]
  ingress:
    - action: Log
      protocol: TCP
      destination: {ports: [8080]}
    - action: Allow
      protocol: TCP
      destination: {ports: [8080, 9090]}
"#;

fn scratch(test: &str) -> Scratch {
    let scratch = Scratch::new("flows", test);
    scratch.write("cluster.yaml", CLUSTER);
    scratch
}

fn programmed(scratch: &Scratch) -> (Datapath, Compiled) {
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading the manifests");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let compiled = Compiler::new().compile(&snapshot.cluster, &Scope::default());
    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    datapath
        .apply(&Default::default(), &compiled.maps)
        .expect("programming the maps");
    (datapath, compiled)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn tcp(dport: u16) -> Vec<u8> {
    Packet {
        src: ip("10.42.0.21"),
        dst: ip("10.42.0.20"),
        protocol: 6,
        sport: 40_000,
        dport,
    }
    .to_frame()
}

#[test]
fn log_rules_and_denies_write_events_within_a_budget() {
    if !require_root("log_rules_and_denies_write_events_within_a_budget") {
        return;
    }
    let scratch = scratch("events");
    let (mut datapath, compiled) = programmed(&scratch);
    let tables = flows::table_names(&compiled);
    let mut reader = datapath.take_flows().expect("the ring");
    let mut drain = || std::iter::from_fn(|| reader.next_event()).collect::<Vec<_>>();

    // Port 8080: the Log rule matches, then the Allow rule decides; one event saying so.
    let run = |datapath: &Datapath, dport, repeat| {
        datapath
            .test_run(Direction::ToEndpoint, &tcp(dport), repeat)
            .expect("test run")
    };
    assert!(run(&datapath, 8080, 1).allowed());
    let events = drain();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = events[0];
    assert_eq!(
        (event.direction, event.allowed, event.protocol, event.dport),
        (TO_ENDPOINT, 1, 6, 8080)
    );
    assert_eq!(
        flows::decided_by(&event, &tables),
        "GlobalNetworkPolicy audit-web ingress[1]"
    );
    let json = flows::render_json(&event, &tables);
    assert_eq!(json["src"], "10.42.0.21");
    assert_eq!(json["dst"], "10.42.0.20");

    // Port 9090: allowed without a Log rule on the way: no event.
    assert!(run(&datapath, 9090, 1).allowed());
    assert!(drain().is_empty());

    // Port 81: denied by the default tier's default action: an event only with log-denies.
    assert!(!run(&datapath, 81, 1).allowed());
    assert!(drain().is_empty());
    datapath.set_log_denies(true).expect("log-denies on");
    assert!(!run(&datapath, 81, 1).allowed());
    let events = drain();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].allowed, 0);
    assert_eq!(
        flows::decided_by(&events[0], &tables),
        "the default action of the tier of GlobalNetworkPolicy audit-web"
    );

    // A flood of denied packets on one CPU: at most the budget is written this second.
    let flood = u32::try_from(EVENTS_PER_SECOND).expect("small") + 500;
    assert!(!run(&datapath, 81, flood).allowed());
    let written = drain().len();
    assert!(
        written as u64 <= EVENTS_PER_SECOND && written >= 1000,
        "{written} events written for {flood} denied packets"
    );
}

#[test]
fn the_flows_command_prints_events_from_the_pinned_ring() {
    if !require_root("the_flows_command_prints_events_from_the_pinned_ring") {
        return;
    }
    let scratch = scratch("cli");
    let (mut datapath, compiled) = programmed(&scratch);
    datapath.set_log_denies(true).expect("log-denies on");
    // The status file the agent would write, for the names.
    let status = policy_agent::status::Status {
        tables: flows::table_names(&compiled),
        ..Default::default()
    };
    let status_path = scratch.manifests.join("status.json");
    status.write_atomic(&status_path).expect("status file");

    let mut child = Command::new(crate::agent_binary())
        .args([
            "flows",
            "--json",
            "--count",
            "2",
            "--seconds",
            "20",
            "--bpffs",
        ])
        .arg(&scratch.pins)
        .arg("--status-file")
        .arg(&status_path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting policy-agent flows");
    // One logged allow, one denied packet (from the client's side: not an endpoint there, so
    // it is checked as ingress of web).
    assert!(
        datapath
            .test_run(Direction::ToEndpoint, &tcp(8080), 1)
            .expect("test run")
            .allowed()
    );
    assert!(
        !datapath
            .test_run(Direction::ToEndpoint, &tcp(22), 1)
            .expect("test run")
            .allowed()
    );
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<serde_json::Value> = BufReader::new(stdout)
        .lines()
        .map(|l| serde_json::from_str(&l.expect("a line")).expect("JSON"))
        .collect();
    let status = child.wait().expect("flows exits");
    assert!(status.success());
    assert_eq!(lines.len(), 2, "{lines:?}");
    let by_port: BTreeMap<u64, &serde_json::Value> = lines
        .iter()
        .map(|l| (l["dport"].as_u64().unwrap_or_default(), l))
        .collect();
    assert_eq!(by_port[&8080]["allowed"], true);
    assert_eq!(
        by_port[&8080]["decided_by"],
        "GlobalNetworkPolicy audit-web ingress[1]"
    );
    assert_eq!(by_port[&22]["allowed"], false);
    assert_eq!(by_port[&22]["direction"], "ingress");
}
