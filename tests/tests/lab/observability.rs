//! Observability on real traffic (issue 21, `examples/observability/`): an agent with the web
//! view and metrics on, Kubernetes and Calico policies enforced, two staged policies that are
//! not. The flow records name the rule behind each flow, the reason of each drop and the
//! verdict the staged policies would give, the Service the client addressed and the packets
//! and bytes each way; `/metrics` counts each rule's packets exactly (one first packet per
//! allowed probe); the page marks the flows whose staged verdict differs.
//! Privileged: needs root and Debian's `chromium` (a failure under CI=true).

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use palisade_tests::lab::{Lab, LabOptions, Scenario, netns::Netns, topology};
use serde_json::Value;

use crate::flow_records::{browse, read_records};

/// The first record from `src` to `dst` (pods of `shop`) at `reporter` with `verdict`.
fn record(lines: &[String], src: &str, dst: &str, verdict: &str, reporter: &str) -> Option<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["record"].clone())
        .find(|r| {
            r["src"]["name"] == src
                && r["dst"]["name"] == dst
                && r["verdict"] == verdict
                && r["reporter"] == reporter
        })
}

/// The records from `src` to `dst` at `reporter` with `verdict`, in every window read (each
/// once: the reads overlap).
fn records(lines: &[String], src: &str, dst: &str, verdict: &str, reporter: &str) -> Vec<Value> {
    let unique: std::collections::BTreeSet<&String> = lines.iter().collect();
    unique
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["record"].clone())
        .filter(|r| {
            r["src"]["name"] == src
                && r["dst"]["name"] == dst
                && r["verdict"] == verdict
                && r["reporter"] == reporter
        })
        .collect()
}

/// A field of `records`, summed.
fn sum(records: &[Value], field: &str) -> u64 {
    records.iter().filter_map(|r| r[field].as_u64()).sum()
}

/// Whether the client's three connections to web are in `lines` with what they carried:
/// each at least its SYN, handshake ACK and request one way, its SYN-ACK and echo the other.
fn web_traffic_read(lines: &[String]) -> bool {
    ["egress", "ingress"].iter().all(|reporter| {
        let web = records(lines, "client", "web", "allow", reporter);
        sum(&web, "flows") == 3 && sum(&web, "src_packets") >= 9 && sum(&web, "dst_packets") >= 6
    })
}

/// `GET /metrics` of the agent inside the node namespace.
fn metrics(node: &str) -> String {
    Netns::open(node)
        .expect("the node namespace")
        .run(|| {
            let mut stream = TcpStream::connect(("127.0.0.1", 9099))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut body = String::new();
            stream.read_to_string(&mut body)?;
            Ok::<_, std::io::Error>(body)
        })
        .expect("entering the node namespace")
        .expect("reading /metrics")
}

/// What `GET /flows/stream?since=0` streams inside the node namespace within `seconds`: the
/// kept windows' records, then each window's as it closes (HTTP/1.0: the body is the lines
/// themselves, no chunk framing).
fn stream(node: &str, seconds: u64) -> Vec<String> {
    Netns::open(node)
        .expect("the node namespace")
        .run(|| {
            let mut stream = TcpStream::connect(("127.0.0.1", 9098))?;
            stream.set_read_timeout(Some(Duration::from_millis(500)))?;
            stream.write_all(b"GET /flows/stream?since=0 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let started = Instant::now();
            let mut body = Vec::new();
            let mut buf = [0u8; 65536];
            while started.elapsed() < Duration::from_secs(seconds) {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&body).into_owned())
        })
        .expect("entering the node namespace")
        .expect("reading /flows/stream")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The value of the first sample of `metrics` whose line starts with `series`.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

const WEB_RULE: &str = "palisade_rule_packets_total{kind=\"NetworkPolicy\",namespace=\"shop\",name=\"web-from-client\",rule=\"ingress[0]\",action=\"allow\"}";
const WEB_FLOWS: &str = "palisade_rule_flows_total{kind=\"NetworkPolicy\",namespace=\"shop\",name=\"web-from-client\",rule=\"ingress[0]\",action=\"allow\"}";
const API_RULE: &str = "palisade_rule_packets_total{kind=\"GlobalNetworkPolicy\",namespace=\"\",name=\"api-ingress\",rule=\"ingress[1]\",action=\"allow\"}";
const COMPILE_API_RULE: &str =
    "  GlobalNetworkPolicy api-ingress ingress[1] allow  3 packets, 3 flows";
const API_DENY: &str = "palisade_rule_packets_total{kind=\"GlobalNetworkPolicy\",namespace=\"\",name=\"api-ingress\",rule=\"ingress[0]\",action=\"deny\"}";

#[test]
fn records_counters_and_staged_verdicts_on_real_traffic() {
    let Some(_turn) = crate::lab_turn("records_counters_and_staged_verdicts_on_real_traffic")
    else {
        return;
    };
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/observability/scenario.yaml");
    let scenario = Scenario::from_file(&path).expect("the scenario");
    let mut lab = Lab::start(&scenario, &LabOptions::default()).expect("starting the lab");
    let failures = lab.run_steps(&scenario.steps).expect("running the steps");
    let node = topology::node_netns(lab.id());
    let through_service = |lines: &[String]| {
        records(lines, "client", "api", "allow", "egress")
            .iter()
            .chain(&records(lines, "client", "api", "allow", "ingress"))
            .filter(|r| r["service"]["name"] == "api")
            .count()
            >= 2
    };
    let lines = read_records(&node, |lines| {
        record(lines, "client", "api", "allow", "ingress").is_some()
            && record(lines, "stranger", "web", "deny", "ingress").is_some()
            && record(lines, "stranger", "api", "deny", "ingress").is_some()
            && through_service(lines)
            && web_traffic_read(lines)
    });
    // The counts are read every 2 s with the web view on: wait for the last one, bounded.
    let started = Instant::now();
    let mut text = metrics(&node);
    while sample(&text, API_RULE) != Some(3) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        text = metrics(&node);
    }
    let streamed = stream(&node, 3);
    let page = browse(
        &node,
        "http://127.0.0.1:9098/?explain=shop/client,shop/api,9000,tcp",
        None,
    );
    // `PALISADE_WEB_SCREENSHOT=docs/web-view.png` redraws the README's picture from this page.
    if let Some(path) = std::env::var_os("PALISADE_WEB_SCREENSHOT") {
        browse(
            &node,
            "http://127.0.0.1:9098/?explain=shop/client,shop/api,9000,tcp",
            Some(Path::new(&path)),
        );
    }
    // `policy-agent compile` with the agent's status file: every rule, with its count.
    let (_, paths) = lab.agent_paths().into_iter().next().expect("one agent");
    let compile = |paths: &palisade_tests::lab::agent::AgentPaths| {
        let output = std::process::Command::new(&paths.binary)
            .arg("compile")
            .arg("--datastore")
            .arg(&paths.datastore)
            .arg("--status-file")
            .arg(&paths.status_file)
            .output()
            .expect("running policy-agent compile");
        assert!(
            output.status.success(),
            "policy-agent compile: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let started = Instant::now();
    let mut compiled = compile(&paths);
    while !compiled.contains(COMPILE_API_RULE) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        compiled = compile(&paths);
    }
    let log = lab.agent_log_tail().join("\n");
    lab.finish().expect("finishing the lab");
    assert!(failures.is_empty(), "failed: {failures:?}\n{log}");
    eprintln!("{}", lines.join("\n"));

    // Enforced as written; pending as the staged policies would have it.
    let web = record(&lines, "client", "web", "allow", "ingress").expect("client -> web");
    assert!(
        web["decided_by"]
            .as_str()
            .unwrap_or_default()
            .contains("web-from-client"),
        "{web}"
    );
    let api = record(&lines, "client", "api", "allow", "ingress").expect("client -> api");
    assert_eq!(
        api["pending"]["verdict"], "deny",
        "the staged api-ingress opens 9001 only: {api}"
    );
    let stranger_web =
        record(&lines, "stranger", "web", "deny", "ingress").expect("stranger -> web");
    assert_eq!(stranger_web["reason"], "no_rule", "{stranger_web}");
    assert_eq!(
        stranger_web["pending"]["verdict"], "allow",
        "the staged Delete leaves web without a policy: {stranger_web}"
    );
    let stranger_api =
        record(&lines, "stranger", "api", "deny", "ingress").expect("stranger -> api");
    assert_eq!(stranger_api["reason"], "deny_rule", "{stranger_api}");
    assert_eq!(stranger_api["pending"]["verdict"], "deny", "{stranger_api}");

    // The flow through api's Service names it, on the client's egress (decided after
    // kube-proxy's translation) and on api's ingress (same node); the direct ones do not.
    for reporter in ["egress", "ingress"] {
        let via = records(&lines, "client", "api", "allow", reporter);
        let named: Vec<Value> = via
            .iter()
            .filter(|r| !r["service"].is_null())
            .cloned()
            .collect();
        assert_eq!(sum(&via, "flows"), 3, "{reporter}: {via:?}");
        // One flow, and (in later windows) what its connection carried after.
        assert_eq!(sum(&named, "flows"), 1, "{reporter}: {via:?}");
        for record in &named {
            assert_eq!(
                record["service"],
                serde_json::json!({"namespace": "shop", "name": "api", "port": "http"}),
                "{reporter}"
            );
            assert_eq!(record["port"], 9000, "judged on the target port");
        }
    }
    // Sender and receiver report the same connections, counted once each way.
    let both = |reporter| {
        let via = records(&lines, "client", "web", "allow", reporter);
        (sum(&via, "src_packets"), sum(&via, "dst_packets"))
    };
    assert_eq!(both("egress"), both("ingress"));

    // The HTTP stream: the same records, with their traces and the Service.
    let streamed_web =
        record(&streamed, "client", "web", "allow", "ingress").expect("client -> web streamed");
    assert_eq!(
        streamed_web["decided_by"], web["decided_by"],
        "{streamed_web}"
    );
    assert!(
        records(&streamed, "client", "api", "allow", "egress")
            .iter()
            .any(|r| r["service"]["name"] == "api"),
        "{streamed:?}"
    );

    // Packets and bytes each way: the connections' first packets, and what the connection
    // table counted after them (each packet once, though it passed both pods' checks).
    let web_records = records(&lines, "client", "web", "allow", "ingress");
    assert!(web_traffic_read(&lines), "{web_records:?}");
    let (sent, sent_bytes) = (
        sum(&web_records, "src_packets"),
        sum(&web_records, "src_bytes"),
    );
    let replied = sum(&web_records, "dst_packets");
    let replied_bytes = sum(&web_records, "dst_bytes");
    // At least an Ethernet, IPv4 and TCP header per packet.
    assert!(
        sent_bytes >= 54 * sent && replied_bytes >= 54 * replied,
        "{web_records:?}"
    );
    // Denied flows: the packets that were dropped, none replied.
    let denied = records(&lines, "stranger", "web", "deny", "ingress");
    assert!(sum(&denied, "src_packets") >= 1, "{denied:?}");
    assert_eq!(sum(&denied, "dst_packets"), 0, "{denied:?}");

    // Per-rule counts, exact for the allowed probes: one first packet (a SYN) each.
    assert_eq!(sample(&text, WEB_RULE), Some(3), "{text}");
    assert_eq!(sample(&text, WEB_FLOWS), Some(3), "{text}");
    assert_eq!(sample(&text, API_RULE), Some(3), "{text}");
    // The denied probe's SYN, and any retransmission within its timeout.
    assert!(sample(&text, API_DENY).is_some_and(|n| n >= 1), "{text}");
    assert!(
        text.contains("palisade_drops_total{reason=\"deny_rule\"}"),
        "{text}"
    );
    // Nothing was lost: a handful of flows, far below the budget and the windows' bound.
    assert_eq!(
        sample(&text, "palisade_flow_events_dropped_total"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "palisade_flow_records_lost_total{verdict=\"deny\"}"),
        Some(0),
        "{text}"
    );

    for expected in [
        "  NetworkPolicy shop/web-from-client ingress[0] allow  3 packets, 3 flows",
        COMPILE_API_RULE,
        // A rule nothing matched is listed too.
        "  GlobalNetworkPolicy api-ingress default deny  0 packets, 0 flows",
    ] {
        assert!(
            compiled.lines().any(|l| l == expected),
            "compile lacks {expected:?}:\n{compiled}"
        );
    }

    // The page: the rule counts, and the flows whose staged verdict differs, marked.
    for expected in [
        "data-rule=\"NetworkPolicy shop/web-from-client ingress[0] allow\"",
        "data-rule=\"GlobalNetworkPolicy api-ingress ingress[1] allow\"",
        "class=\"deny differs\"",
        "class=\"allow differs\"",
        // The explain panel: enforced allow, pending deny by the staged api-ingress.
        "id=\"explain-verdict\">verdict: allow</p>",
        "id=\"explain-pending\">with the staged policies (not enforced): deny</p>",
        "ingress of shop/api: deny, by the default action of tier default",
    ] {
        assert!(
            page.contains(expected),
            "the page lacks {expected:?}:\n{page}"
        );
    }
}
