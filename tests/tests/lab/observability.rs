//! Observability on real traffic (issue 21, `examples/observability/`): an agent with the web
//! view and metrics on, Kubernetes and Calico policies enforced, two staged policies that are
//! not. The flow records name the rule behind each flow, the reason of each drop and the
//! verdict the staged policies would give; `/metrics` counts each rule's packets exactly (one
//! first packet per allowed probe); the page marks the flows whose staged verdict differs.
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

/// The value of the first sample of `metrics` whose line starts with `series`.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

const WEB_RULE: &str = "palisade_rule_packets_total{kind=\"NetworkPolicy\",namespace=\"shop\",name=\"web-from-client\",rule=\"ingress[0]\",action=\"allow\"}";
const WEB_FLOWS: &str = "palisade_rule_flows_total{kind=\"NetworkPolicy\",namespace=\"shop\",name=\"web-from-client\",rule=\"ingress[0]\",action=\"allow\"}";
const API_RULE: &str = "palisade_rule_packets_total{kind=\"GlobalNetworkPolicy\",namespace=\"\",name=\"api-ingress\",rule=\"ingress[1]\",action=\"allow\"}";
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
    let lines = read_records(&node, |lines| {
        record(lines, "client", "api", "allow", "ingress").is_some()
            && record(lines, "stranger", "web", "deny", "ingress").is_some()
            && record(lines, "stranger", "api", "deny", "ingress").is_some()
    });
    // The counts are read every 2 s with the web view on: wait for the last one, bounded.
    let started = Instant::now();
    let mut text = metrics(&node);
    while sample(&text, API_RULE) != Some(2) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        text = metrics(&node);
    }
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

    // Per-rule counts, exact for the allowed probes: one first packet (a SYN) each.
    assert_eq!(sample(&text, WEB_RULE), Some(3), "{text}");
    assert_eq!(sample(&text, WEB_FLOWS), Some(3), "{text}");
    assert_eq!(sample(&text, API_RULE), Some(2), "{text}");
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
