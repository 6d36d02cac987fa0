//! Flow records and the web view on real traffic (issue 21): an agent run with `--ui-port`
//! has the datapath write an event for every new flow it decides, names both ends as
//! workloads and aggregates them, with the reason of each drop; the records `policy-agent flows --agent` prints, from inside the node namespace, are
//! the scenario's flows with the rule that decided each; and the page, opened in headless
//! Chromium inside the node namespace, shows them, draws their edges and answers an explain
//! question as `policy-agent explain` does. `examples/flow-records/scenario.yaml`.
//! Privileged: needs root and Debian's `chromium` (a failure under CI=true; `cargo xtask`
//! installs it).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use palisade_tests::lab::{Lab, LabOptions, Scenario, agent, topology};
use serde_json::Value;

#[test]
fn the_agent_serves_named_records_of_its_flow_events() {
    let Some(_turn) = crate::lab_turn("the_agent_serves_named_records_of_its_flow_events") else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flow-records/scenario.yaml");
    let scenario = Scenario::from_file(&path).expect("the scenario");
    let mut lab = Lab::start(&scenario, &LabOptions::default()).expect("starting the lab");
    let failures = lab.run_steps(&scenario.steps).expect("running the steps");
    // The windows are 1 s: read until both records are there, bounded.
    let node = topology::node_netns(lab.id());
    let lines = read_records(&node, |lines| {
        found(lines, "shop/client", "allow", "ingress").is_some()
            && found(lines, "shop/stranger", "deny", "ingress").is_some()
            && found(lines, "shop/stranger", "allow", "egress").is_some()
    });
    let page = browse(
        &node,
        "http://127.0.0.1:9098/?explain=shop/stranger,shop/web,8000,tcp",
        None,
    );
    let log = lab.agent_log_tail().join("\n");
    lab.finish().expect("finishing the lab");
    // The page, after its scripts ran: the flow table, the graph's edges, the explanation.
    for expected in [
        "<td>shop/client</td><td>shop/web</td><td>tcp/8000</td><td class=\"allow\">allow</td>",
        "<td>shop/stranger</td><td>shop/web</td><td>tcp/8000</td><td class=\"deny\">deny</td>",
        "data-edge=\"shop/client -&gt; shop/web\"",
        "class=\"edge deny\" data-edge=\"shop/stranger -&gt; shop/web\"",
        "id=\"explain-verdict\">verdict: deny</p>",
        // The rule hits: the allow rule and the end of the tier, counted in the kernel.
        "data-rule=\"GlobalNetworkPolicy audit-web ingress[1] allow\"",
        "data-rule=\"GlobalNetworkPolicy audit-web default deny\"",
        "ingress of shop/web: deny, by the default action of tier default",
    ] {
        assert!(
            page.contains(expected),
            "the page lacks {expected:?}:\n{page}"
        );
    }
    assert!(failures.is_empty(), "failed: {failures:?}\n{log}");
    eprintln!("{}", lines.join("\n"));

    let allowed = found(&lines, "shop/client", "allow", "ingress")
        .expect("the client's allowed flows at web's ingress");
    assert_eq!(allowed["record"]["src"]["kind"], "pod");
    assert_eq!(allowed["record"]["protocol"], 6);
    assert_eq!(allowed["record"]["port"], 8000);
    assert!(allowed["record"].get("reason").is_none(), "{allowed}");
    let by = allowed["record"]["decided_by"].as_str().unwrap_or_default();
    assert!(by.contains("audit-web"), "decided by {by}");
    let denied = found(&lines, "shop/stranger", "deny", "ingress")
        .expect("the stranger's denied flows at web's ingress");
    assert!(denied["record"]["flows"].as_u64().unwrap_or(0) >= 1);
    // The end of the tier: the implicit deny, not a Deny rule.
    assert_eq!(denied["record"]["reason"], "no_rule", "{denied}");
    // Every new flow is recorded, not only logged ones: the stranger's own egress check
    // (no policy selects it) allowed what web's ingress then dropped.
    let egress = found(&lines, "shop/stranger", "allow", "egress")
        .expect("the stranger's flows at its own egress");
    let by = egress["record"]["decided_by"].as_str().unwrap_or_default();
    assert!(by.contains("not isolated"), "decided by {by}");
    // Nothing else was recorded at web's ingress between these pods: no allow for the
    // stranger.
    assert!(
        found(&lines, "shop/stranger", "allow", "ingress").is_none(),
        "{lines:?}"
    );
}

/// The record lines `policy-agent flows --agent 127.0.0.1:9098 --json` prints inside the node
/// namespace, read two seconds at a time until `enough` says so, for at most 15 s.
pub(crate) fn read_records(node: &str, enough: impl Fn(&[String]) -> bool) -> Vec<String> {
    let binary = agent::agent_binary().expect("the agent binary");
    let started = Instant::now();
    let mut lines = Vec::new();
    while started.elapsed() < Duration::from_secs(15) {
        let output = Command::new("ip")
            .args(["netns", "exec", node])
            .arg(&binary)
            .args([
                "flows",
                "--agent",
                "127.0.0.1:9098",
                "--json",
                "--seconds",
                "2",
            ])
            .output()
            .expect("running policy-agent flows");
        assert!(
            output.status.success(),
            "policy-agent flows --agent: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        lines.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned),
        );
        if enough(&lines) {
            break;
        }
    }
    lines
}

/// The page's DOM after its scripts ran (and with `screenshot`, a PNG of it instead), from
/// headless Chromium inside the node namespace. Bounded: 20 s.
pub(crate) fn browse(node: &str, url: &str, screenshot: Option<&Path>) -> String {
    let profile = tempdir();
    let mut command = Command::new("ip");
    command.args([
        "netns",
        "exec",
        node,
        "timeout",
        "20",
        "chromium",
        "--headless",
    ]);
    // Root needs --no-sandbox; the profile is this test's own.
    command.args([
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=6000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some(path) => {
            command.arg(format!("--screenshot={}", path.display()));
            command.arg("--window-size=1400,900");
        }
        None => {
            command.arg("--dump-dom");
        }
    }
    let output = command.arg(url).output().expect("running chromium");
    std::fs::remove_dir_all(&profile).ok();
    assert!(
        output.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("palisade-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a profile directory");
    dir
}

/// The first record line from `src` (`namespace/name`) to the web pod with `verdict`.
/// The first record from `src` to the web pod with this verdict, reported by the check at
/// `reporter` (`ingress`: web's, `egress`: the sender's).
fn found(lines: &[String], src: &str, verdict: &str, reporter: &str) -> Option<Value> {
    let (namespace, name) = src.split_once('/')?;
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            let record = &v["record"];
            record["src"]["namespace"] == namespace
                && record["src"]["name"] == name
                && record["dst"]["name"] == "web"
                && record["verdict"] == verdict
                && record["reporter"] == reporter
        })
}
