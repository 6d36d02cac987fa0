//! The suite's figures as tables (Markdown; the console gets the same text) and the goal
//! verdicts they support.

use std::fmt::Write as _;

use serde_json::Value;

use super::{
    collect::Results,
    stats::{Summary, percentile, summarize},
};

pub const DECISION_CASES: [&str; 5] = [
    "empty",
    "conntrack_hit",
    "new_allowed",
    "new_denied_port",
    "new_denied_peer",
];
pub const ENFORCERS: [&str; 4] = ["none", "iptables", "nftables", "palisade"];
pub const METRICS: [(&str, &str); 2] = [
    ("tcp_conn_per_s", "new TCP connections/s"),
    ("udp_pkt_per_s", "small UDP packets/s (32-byte payload)"),
];

fn num(v: &Value, key: &str) -> Option<f64> {
    v[key].as_f64()
}

fn size(v: &Value, key: &str) -> Option<usize> {
    v[key].as_u64().and_then(|n| usize::try_from(n).ok())
}

/// Distinct values of an integer field, ascending.
pub fn sizes<'a>(lines: impl Iterator<Item = &'a Value>, key: &str) -> Vec<usize> {
    let mut out: Vec<usize> = lines.filter_map(|v| size(v, key)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Kernel ns per run for one case at one policy count.
pub fn decision(results: &Results, case: &str, policies: usize) -> Option<Summary> {
    decision_of(results, "decision", case, policies)
}

fn decision_of(results: &Results, kind: &str, case: &str, policies: usize) -> Option<Summary> {
    let samples: Vec<f64> = results
        .of_kind(kind)
        .filter(|v| v["case"] == case && size(v, "policies") == Some(policies))
        .flat_map(|v| v["samples_ns"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_f64())
        .collect();
    summarize(&samples)
}

/// Traffic rate for one enforcer, metric and rule count, over its repetitions.
pub fn traffic(results: &Results, enforcer: &str, metric: &str, rules: usize) -> Option<Summary> {
    let samples: Vec<f64> = results
        .of_kind("traffic")
        .filter(|v| {
            v["enforcer"] == enforcer && v["metric"] == metric && size(v, "rules") == Some(rules)
        })
        .filter_map(|v| num(v, "value"))
        .collect();
    summarize(&samples)
}

fn cell(s: Option<Summary>, digits: usize) -> String {
    s.map_or_else(
        || "–".to_owned(),
        |s| {
            format!(
                "{:.d$} [{:.d$}, {:.d$}]",
                s.median,
                s.min,
                s.max,
                d = digits
            )
        },
    )
}

fn ratio(a: Option<Summary>, b: Option<Summary>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
        _ => "–".to_owned(),
    }
}

/// Part 1 table, plus the two goal verdicts.
pub fn decision_section(results: &Results, out: &mut String) {
    let sizes = sizes(results.of_kind("decision"), "policies");
    out.push_str("| policies | RULES entries | empty program | conntrack hit | new allowed | new denied (port) | new denied (peer) | new allowed ÷ empty |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for &n in &sizes {
        let rules = results
            .of_kind("decision")
            .find(|v| size(v, "policies") == Some(n))
            .and_then(|v| size(v, "rules"))
            .unwrap_or(0);
        let _ = write!(out, "| {n} | {rules} |");
        for case in DECISION_CASES {
            let _ = write!(out, " {} |", cell(decision(results, case, n), 0));
        }
        let _ = writeln!(
            out,
            " {} |",
            ratio(
                decision(results, "new_allowed", n),
                decision(results, "empty", n)
            )
        );
    }
    out.push('\n');
    for v in results.of_kind("decision_skipped") {
        let why = match num(v, "compile_exceeded_s") {
            Some(limit) => format!("the compile did not finish within {limit:.0} s"),
            None => format!(
                "compiling them would take ~{:.0} s (extrapolated from the sizes before)",
                num(v, "estimated_compile_s").unwrap_or(0.0)
            ),
        };
        let _ = writeln!(
            out,
            "- {} policies: **not measured**: {why}, over the suite's {} s limit for one compile \
             (`cargo bench -p policy-agent --bench decision -- --sizes {} --compile-limit 1000` \
             measures it anyway).",
            v["policies"], v["limit_s"], v["policies"],
        );
    }
    let above_floor: Vec<f64> = sizes
        .iter()
        .filter_map(|&n| {
            Some(
                decision(results, "new_allowed", n)?.median
                    - decision(results, "empty_single", n)?.median,
            )
        })
        .collect();
    if let (Some(lo), Some(hi)) = (
        above_floor.iter().copied().reduce(f64::min),
        above_floor.iter().copied().reduce(f64::max),
    ) {
        let floor = sizes
            .iter()
            .filter_map(|&n| decision(results, "empty_single", n).map(|s| s.median))
            .fold(0.0f64, f64::max);
        let _ = writeln!(
            out,
            "- `new_allowed` less the single-run floor (the empty program timed as its single \
             runs are, each after the connection table is cleared: at most {floor:.0} ns): \
             {lo:.0}–{hi:.0} ns."
        );
    }
    for case in ["new_allowed", "new_denied_port", "new_denied_peer"] {
        let medians: Vec<f64> = sizes
            .iter()
            .filter_map(|&n| decision(results, case, n).map(|s| s.median))
            .collect();
        let (lo, hi) = medians
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &m| {
                (lo.min(m), hi.max(m))
            });
        if medians.is_empty() || lo <= 0.0 {
            continue;
        }
        let spread = (hi / lo - 1.0) * 100.0;
        let worst_ratio = sizes
            .iter()
            .filter_map(|&n| {
                Some(decision(results, case, n)?.median / decision(results, "empty", n)?.median)
            })
            .fold(0.0f64, f64::max);
        let _ = writeln!(
            out,
            "- `{case}`: {lo:.0}–{hi:.0} ns across {} to {} policies, a spread of {spread:.0}% \
             (goal ≤ 15%: **{}**); at most {worst_ratio:.1}× the empty program (goal ≤ 3×: **{}**).",
            sizes.first().unwrap_or(&0),
            sizes.last().unwrap_or(&0),
            if spread <= 15.0 { "met" } else { "not met" },
            if worst_ratio <= 3.0 { "met" } else { "not met" },
        );
    }
}

/// Each step alone (`step`), and for each path the bench lists (`step_path`) the sum of its
/// steps set beside the measured whole at the fewest policies, less the empty program.
pub fn steps_section(results: &Results, out: &mut String) {
    let step = |name: &str| {
        results
            .of_kind("step")
            .find(|v| v["step"] == name)
            .and_then(|v| {
                let samples: Vec<f64> = v["samples_ns"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect();
                summarize(&samples)
            })
    };
    out.push_str("| step | stands for | ns |\n|:---|:---|---:|\n");
    for v in results.of_kind("step") {
        let name = v["step"].as_str().unwrap_or("?");
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} |",
            v["stands_for"].as_str().unwrap_or(""),
            cell(step(name), 1)
        );
    }
    out.push('\n');
    let fewest = sizes(results.of_kind("decision"), "policies")
        .first()
        .copied();
    for path in results.of_kind("step_path") {
        let case = path["case"].as_str().unwrap_or("?");
        let mut sum = 0.0;
        let mut parts = Vec::new();
        for entry in path["steps"].as_array().into_iter().flatten() {
            let (Some(name), Some(count)) = (entry[0].as_str(), entry[1].as_f64()) else {
                continue;
            };
            let Some(cost) = step(name) else { continue };
            sum += count * cost.median;
            parts.push(format!("{count:.0} × `{name}`"));
        }
        let measured = fewest.and_then(|n| {
            Some((
                n,
                decision(results, case, n)?.median - decision(results, "empty", n)?.median,
            ))
        });
        let _ = write!(
            out,
            "- `{case}` takes {}: **{sum:.0} ns** of steps",
            parts.join(", ")
        );
        if let Some((n, whole)) = measured {
            let _ = write!(
                out,
                ", of the {whole:.0} ns it measures above the empty program at {n} policies; the \
                 other {:.0} ns are the parser, the decision's own instructions and the calls \
                 between its functions",
                whole - sum
            );
        }
        out.push_str(".\n");
    }
}

/// The decision's cost with flow records on (`<case>+events`) beside the same case off, in the
/// same run, and the goal: no more than 10% more per packet.
pub fn events_section(results: &Results, out: &mut String) {
    const CASES: [(&str, &str); 3] = [
        ("conntrack_hit", "conntrack hit"),
        ("new_allowed", "new allowed"),
        ("new_denied_port", "new denied (port)"),
    ];
    let sizes = sizes(results.of_kind("decision"), "policies");
    out.push_str("| policies |");
    for (_, title) in CASES {
        let _ = write!(out, " {title}: off | on | on ÷ off |");
    }
    out.push('\n');
    out.push_str("|---:|");
    for _ in CASES {
        out.push_str("---:|---:|---:|");
    }
    out.push('\n');
    let mut worst = [0.0f64; CASES.len()];
    for &n in &sizes {
        let _ = write!(out, "| {n} |");
        for (i, (case, _)) in CASES.iter().enumerate() {
            let off = decision(results, case, n);
            let on = decision(results, &format!("{case}+events"), n);
            if let (Some(off), Some(on)) = (off, on)
                && off.median > 0.0
            {
                worst[i] = worst[i].max(on.median / off.median);
            }
            let _ = write!(
                out,
                " {} | {} | {} |",
                cell(off, 0),
                cell(on, 0),
                ratio(on, off)
            );
        }
        out.push('\n');
    }
    out.push('\n');
    for ((case, _), worst) in CASES.iter().zip(worst) {
        if worst == 0.0 {
            continue;
        }
        let _ = writeln!(
            out,
            "- `{case}` with flow records on: at most {:+.0}% (goal ≤ +10%: **{}**).",
            (worst - 1.0) * 100.0,
            if worst <= 1.10 { "met" } else { "not met" },
        );
    }
}

/// The flow records' memory and cost per event under a flood of distinct flows.
pub fn flow_records_section(results: &Results, out: &mut String) {
    out.push_str("| distinct flows | window | records per window | windows kept | peak memory | retained | records kept | flows counted as lost | agent time per event |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    #[expect(clippy::cast_precision_loss, reason = "byte counts are far below 2^52")]
    for v in results.of_kind("flow_records_memory") {
        let mib = |key: &str| size(v, key).map_or(0.0, |b| b as f64 / 1_048_576.0);
        let _ = writeln!(
            out,
            "| {} | {} s | {} | {} | {:.1} MiB | {:.1} MiB | {} | {} | {:.0} ns |",
            v["flows"],
            v["window_s"],
            v["max_records"],
            v["keep_windows"],
            mib("peak_bytes"),
            mib("retained_bytes"),
            v["records_kept"],
            v["lost_in_kept_windows"],
            num(v, "ns_per_event").unwrap_or(0.0),
        );
    }
}

/// Part 2 tables: one per metric, enforcers side by side, with same-run ratios.
pub fn traffic_section(results: &Results, out: &mut String) {
    let sizes = sizes(results.of_kind("traffic"), "rules");
    for (metric, title) in METRICS {
        let _ = writeln!(out, "**{title}** (median [min, max] over repetitions)\n");
        out.push_str("| rules | none | iptables | nftables | Palisade | Palisade ÷ iptables | Palisade ÷ nftables | Palisade ÷ none |\n");
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for &n in &sizes {
            let s = |e: &str| traffic(results, e, metric, n);
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {} | {} | {} | {} |",
                cell(s("none"), 0),
                cell(s("iptables"), 0),
                cell(s("nftables"), 0),
                cell(s("palisade"), 0),
                ratio(s("palisade"), s("iptables")),
                ratio(s("palisade"), s("nftables")),
                ratio(s("palisade"), s("none")),
            );
        }
        out.push('\n');
    }
}

/// Service-traffic rate for one enforcer (`none`, `palisade`), destination (`pod`,
/// `service`) and metric, over its repetitions.
pub fn service_traffic(
    results: &Results,
    enforcer: &str,
    to: &str,
    metric: &str,
) -> Option<Summary> {
    let samples: Vec<f64> = results
        .of_kind("service_traffic")
        .filter(|v| v["enforcer"] == enforcer && v["to"] == to && v["metric"] == metric)
        .filter_map(|v| num(v, "value"))
        .collect();
    summarize(&samples)
}

/// The Service part's table: one row per metric, the four cases side by side, then the
/// same-run ratios.
pub fn services_section(results: &Results, out: &mut String) {
    let reps = results
        .of_kind("service_traffic")
        .filter_map(|v| size(v, "rep"))
        .max()
        .map_or(0, |r| r + 1);
    let load = |when: &str| {
        results
            .of_kind("part_load")
            .find(|v| v["part"] == "services" && v["when"] == when)
    };
    if let (Some(start), Some(end)) = (load("start"), load("end")) {
        let date = start["unix"]
            .as_u64()
            .and_then(|t| {
                crate::process::output(
                    "date",
                    &["-u", "-d", &format!("@{t}"), "+%Y-%m-%d %H:%M UTC"],
                )
            })
            .unwrap_or_default();
        let avg = |v: &Value| {
            v["loadavg"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_f64)
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let _ = writeln!(
            out,
            "Measured {}, over {:.0} s; load average (1, 5, 15 min) {} at the start and {} at the end, on {} cores.\n",
            date.trim(),
            end["unix"].as_f64().unwrap_or(0.0) - start["unix"].as_f64().unwrap_or(0.0),
            avg(start),
            avg(end),
            start["cores"],
        );
    }
    let _ = writeln!(
        out,
        "Rates (median [min, max] over {reps} repetitions) and ratios of medians:\n"
    );
    out.push_str("| metric | pod IP, none | Service, none | pod IP, Palisade | Service, Palisade | Service ÷ pod IP, none | Service ÷ pod IP, Palisade | Palisade ÷ none, pod IP | Palisade ÷ none, Service |\n");
    out.push_str("|:---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (metric, title) in METRICS {
        let s = |e: &str, to: &str| service_traffic(results, e, to, metric);
        let _ = writeln!(
            out,
            "| {title} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(s("none", "pod"), 0),
            cell(s("none", "service"), 0),
            cell(s("palisade", "pod"), 0),
            cell(s("palisade", "service"), 0),
            ratio(s("none", "service"), s("none", "pod")),
            ratio(s("palisade", "service"), s("palisade", "pod")),
            ratio(s("palisade", "pod"), s("none", "pod")),
            ratio(s("palisade", "service"), s("none", "service")),
        );
    }
    out.push('\n');
}

/// Part 3: latency percentiles, agent footprint, rule-set load times.
pub fn control_section(results: &Results, out: &mut String) {
    let latency: Vec<f64> = results
        .of_kind("latency")
        .filter_map(|v| num(v, "ms"))
        .collect();
    let programmed: Vec<f64> = results
        .of_kind("latency")
        .filter_map(|v| num(v, "agent_programmed_ms"))
        .collect();
    let pct = |v: &[f64], p: f64| {
        percentile(v, p).map_or_else(|| "–".to_owned(), |x| format!("{x:.0} ms"))
    };
    let _ = writeln!(
        out,
        "Manifest change → first packet with the new verdict, over {} changes (alternately \
         allowing and revoking one flow) with 1,000 pods and 200 policies loaded: **p50 {}, p99 {}** \
         (max {}). The lab saw the agent's status file report the change after p50 {}.\n",
        latency.len(),
        pct(&latency, 50.0),
        pct(&latency, 99.0),
        pct(&latency, 100.0),
        pct(&programmed, 50.0),
    );
    out.push_str("| pods | policies | endpoints | IDENTITIES | RULES | full sync (agent's `sync_millis`) | start to programmed | RSS | peak RSS |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for v in results.of_kind("agent") {
        let mib = |k: &str| {
            num(v, k).map_or_else(|| "–".to_owned(), |kb| format!("{:.1} MiB", kb / 1024.0))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} ms | {:.0} ms | {} | {} |",
            v["pods"],
            v["policies"],
            v["endpoints"],
            v["identities"],
            v["rules"],
            v["sync_ms"],
            num(v, "ready_ms").unwrap_or(0.0),
            mib("rss_kb"),
            mib("hwm_kb"),
        );
    }
    out.push('\n');
    let sizes = sizes(results.of_kind("load"), "rules");
    out.push_str("Loading the equivalent rule sets (the traffic runs' sets, into the lab's node namespace; median [min, max]):\n\n");
    out.push_str("| rules | `iptables-restore` | `nft -f` | Palisade agent (full sync: read, compile, program) |\n|---:|---:|---:|---:|\n");
    for &n in &sizes {
        let tool = |t: &str| {
            let s: Vec<f64> = results
                .of_kind("load")
                .filter(|v| v["tool"] == t && size(v, "rules") == Some(n))
                .filter_map(|v| num(v, "ms"))
                .collect();
            summarize(&s).map_or_else(|| "–".to_owned(), |s| format!("{} ms", cell(Some(s), 1)))
        };
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} |",
            tool("iptables-restore"),
            tool("nft -f"),
            tool("palisade agent (full sync)")
        );
    }
    out.push('\n');
}

/// The decision cost with N ClusterNetworkPolicies, beside the NetworkPolicy figure at the
/// same N (taken in the same run).
pub fn cluster_decision_section(results: &Results, out: &mut String) {
    let sizes = sizes(results.of_kind("decision_cluster"), "policies");
    out.push_str("| ClusterNetworkPolicies | RULES entries | conntrack hit | new allowed | new denied (port) | new denied (peer) | new allowed ÷ NetworkPolicies' |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    for &n in &sizes {
        let rules = results
            .of_kind("decision_cluster")
            .find(|v| size(v, "policies") == Some(n))
            .and_then(|v| size(v, "rules"))
            .unwrap_or(0);
        let _ = write!(out, "| {n} | {rules} |");
        for case in &DECISION_CASES[1..] {
            let _ = write!(
                out,
                " {} |",
                cell(decision_of(results, "decision_cluster", case, n), 0)
            );
        }
        let _ = writeln!(
            out,
            " {} |",
            ratio(
                decision_of(results, "decision_cluster", "new_allowed", n),
                decision(results, "new_allowed", n)
            )
        );
    }
    out.push('\n');
}

/// What the smoke run must have produced: every part, every enforcer, every decision case.
pub fn check_complete(results: &Results) -> anyhow::Result<()> {
    for case in DECISION_CASES {
        anyhow::ensure!(
            results.of_kind("decision").any(|v| v["case"] == case),
            "no kernel decision figure for {case}"
        );
        anyhow::ensure!(
            results
                .of_kind("decision_cluster")
                .any(|v| v["case"] == case),
            "no kernel decision figure with ClusterNetworkPolicies for {case}"
        );
    }
    anyhow::ensure!(
        results.of_kind("step").next().is_some() && results.of_kind("step_path").next().is_some(),
        "no figure for the decision's steps"
    );
    anyhow::ensure!(
        results
            .of_kind("flow_records_memory")
            .any(|v| size(v, "peak_bytes").is_some()),
        "no figure for the flow records under a flood"
    );
    for case in ["conntrack_hit", "new_allowed", "new_denied_port"] {
        anyhow::ensure!(
            results
                .of_kind("decision")
                .any(|v| v["case"] == format!("{case}+events")),
            "no kernel decision figure with flow records on for {case}"
        );
    }
    for enforcer in ENFORCERS {
        for (metric, _) in METRICS {
            anyhow::ensure!(
                results.of_kind("traffic").any(|v| v["enforcer"] == enforcer
                    && v["metric"] == metric
                    && num(v, "value").is_some_and(|x| x > 0.0)),
                "no {metric} figure for {enforcer}"
            );
        }
    }
    for enforcer in ["none", "palisade"] {
        for to in ["pod", "service"] {
            for (metric, _) in METRICS {
                anyhow::ensure!(
                    service_traffic(results, enforcer, to, metric).is_some_and(|s| s.min > 0.0),
                    "no {metric} figure through the {to} address for {enforcer}"
                );
            }
        }
    }
    for kind in ["latency", "agent", "load"] {
        anyhow::ensure!(results.of_kind(kind).next().is_some(), "no {kind} figure");
    }
    Ok(())
}
