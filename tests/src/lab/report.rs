//! What a lab run observed, and how it is shown: a table per step for people, one JSON object
//! per check for scripts.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Serialize;
use serde_json::json;

use super::scenario::{Family, Protocol, Verdict};

/// One probe's expectation and outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
    pub family: Family,
    pub expect: Verdict,
    pub observed: Verdict,
    /// Why the probe observed what it did (`echoed`, `timeout`, `refused`, ...).
    pub detail: String,
    pub elapsed_ms: u64,
    pub ok: bool,
}

/// One `expectErrors` entry and whether some agent error contained it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCheck {
    pub expect_error: String,
    pub ok: bool,
}

/// Everything one step observed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// 1-based.
    pub number: usize,
    pub name: String,
    /// Time from writing the step's files to the agent reporting them programmed (`None`
    /// without an agent); with several nodes, to the last node's agent.
    pub programmed_ms: Option<u64>,
    /// With several nodes, each node's agent's time (empty with one node).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub programmed_by_node: BTreeMap<String, u64>,
    pub probes: Vec<ProbeResult>,
    /// The agent's reported errors after this step, in Display form.
    pub agent_errors: Vec<String>,
    pub error_checks: Vec<ErrorCheck>,
}

impl StepReport {
    pub fn all_ok(&self) -> bool {
        self.probes.iter().all(|p| p.ok) && self.error_checks.iter().all(|c| c.ok)
    }

    /// (passed, failed) checks.
    pub fn counts(&self) -> (usize, usize) {
        let oks = self
            .probes
            .iter()
            .map(|p| p.ok)
            .chain(self.error_checks.iter().map(|c| c.ok));
        oks.fold(
            (0, 0),
            |(p, f), ok| if ok { (p + 1, f) } else { (p, f + 1) },
        )
    }

    /// A readable table.
    pub fn render_table(&self) -> String {
        let programmed = match self.programmed_ms {
            Some(ms) if self.programmed_by_node.is_empty() => format!("programmed in {ms} ms"),
            Some(ms) => format!(
                "programmed on every node in {ms} ms: {}",
                self.programmed_by_node
                    .iter()
                    .map(|(node, ms)| format!("{node} {ms} ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "no agent".to_owned(),
        };
        let mut out = format!("Step {}: {} ({programmed})\n", self.number, self.name);
        if !self.probes.is_empty() {
            let header = [
                "FROM", "TO", "PORT", "PROTO", "EXPECT", "OBSERVED", "RESULT",
            ]
            .map(str::to_owned);
            let rows: Vec<[String; 7]> = self
                .probes
                .iter()
                .map(|p| {
                    let proto = match p.family {
                        Family::V4 => p.protocol.to_string(),
                        Family::V6 => format!("{}/v6", p.protocol),
                    };
                    [
                        p.from.clone(),
                        p.to.clone(),
                        p.port.to_string(),
                        proto,
                        p.expect.to_string(),
                        format!("{} ({})", p.observed, p.detail),
                        if p.ok { "ok" } else { "MISMATCH" }.to_owned(),
                    ]
                })
                .collect();
            let mut widths = header.clone().map(|h| h.len());
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let cells: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .map(|(cell, w)| format!("{cell:<w$}"))
                    .collect();
                out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
            }
        }
        if !self.agent_errors.is_empty() {
            out.push_str("  agent errors:\n");
            for e in &self.agent_errors {
                out.push_str(&format!("    {e}\n"));
            }
        }
        for check in &self.error_checks {
            let result = if check.ok { "ok" } else { "MISMATCH" };
            out.push_str(&format!(
                "  expect error containing {:?}: {result}\n",
                check.expect_error
            ));
        }
        out
    }

    /// One JSON object per probe and per error check.
    pub fn json_lines(&self) -> Vec<String> {
        let probes = self.probes.iter().map(|p| {
            let mut line = json!({
                "step": self.number,
                "name": self.name,
                "from": p.from,
                "to": p.to,
                "port": p.port,
                "protocol": p.protocol.to_string(),
                "family": p.family.number(),
                "expect": p.expect.to_string(),
                "observed": p.observed.to_string(),
                "detail": p.detail,
                "programmedMs": self.programmed_ms,
                "ok": p.ok,
            });
            if !self.programmed_by_node.is_empty() {
                line["programmedMsByNode"] = json!(self.programmed_by_node);
            }
            line.to_string()
        });
        let checks = self.error_checks.iter().map(|c| {
            json!({
                "step": self.number,
                "name": self.name,
                "expectError": c.expect_error,
                "ok": c.ok,
            })
            .to_string()
        });
        probes.chain(checks).collect()
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The lab's unique id (`<pid>-<counter>`): namespaces are `pal-<id>-*`.
    pub lab_id: String,
    /// The namespaces the lab created (all removed by now).
    pub netns: Vec<String>,
    /// The bpffs directory the (default node's) agent pinned into (removed by now); `None`
    /// without an agent.
    pub pin_dir: Option<PathBuf>,
    /// Every node's agent's pin directory, the default node first (removed by now).
    pub pin_dirs: Vec<PathBuf>,
    /// The lab's temporary directory (removed by now).
    pub lab_dir: PathBuf,
    pub steps: Vec<StepReport>,
    /// Every distinct error the agent reported during the run, in order of appearance.
    pub agent_errors: Vec<String>,
    /// The end of the agent's log (of each node's, prefixed `[node]`), read just before
    /// cleanup.
    pub agent_log_tail: Vec<String>,
}

impl Report {
    /// Whether every probe and every error check matched its expectation.
    pub fn all_ok(&self) -> bool {
        self.steps.iter().all(StepReport::all_ok)
    }

    /// (passed, failed) checks over all steps.
    pub fn counts(&self) -> (usize, usize) {
        self.steps
            .iter()
            .map(StepReport::counts)
            .fold((0, 0), |(p, f), (sp, sf)| (p + sp, f + sf))
    }

    /// Every mismatch, one line each (for assertion messages).
    pub fn mismatches(&self) -> Vec<String> {
        let mut out = Vec::new();
        for step in &self.steps {
            for p in step.probes.iter().filter(|p| !p.ok) {
                out.push(format!(
                    "step {} ({}): {} -> {}:{}/{} expected {} observed {} ({})",
                    step.number,
                    step.name,
                    p.from,
                    p.to,
                    p.port,
                    p.protocol,
                    p.expect,
                    p.observed,
                    p.detail
                ));
            }
            for c in step.error_checks.iter().filter(|c| !c.ok) {
                out.push(format!(
                    "step {} ({}): no agent error contains {:?} (errors: {:?})",
                    step.number, step.name, c.expect_error, step.agent_errors
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(ok: bool) -> StepReport {
        StepReport {
            number: 1,
            name: "s".into(),
            programmed_ms: Some(12),
            programmed_by_node: BTreeMap::new(),
            probes: vec![ProbeResult {
                from: "default/a".into(),
                to: "default/b".into(),
                port: 80,
                protocol: Protocol::Tcp,
                family: Family::V4,
                expect: Verdict::Allow,
                observed: if ok { Verdict::Allow } else { Verdict::Deny },
                detail: "x".into(),
                elapsed_ms: 1,
                ok,
            }],
            agent_errors: vec!["broken.yaml: bad".into()],
            error_checks: vec![ErrorCheck {
                expect_error: "broken".into(),
                ok: true,
            }],
        }
    }

    #[test]
    fn table_and_json() -> anyhow::Result<()> {
        let s = step(false);
        let table = s.render_table();
        assert!(table.starts_with("Step 1: s (programmed in 12 ms)\n"));
        assert!(table.contains("MISMATCH"));
        assert!(table.contains("broken.yaml: bad"));
        let lines = s.json_lines();
        assert_eq!(lines.len(), 2);
        let probe: serde_json::Value = serde_json::from_str(&lines[0])?;
        assert_eq!(probe["observed"], "deny");
        assert_eq!(probe["ok"], false);
        assert_eq!(probe["protocol"], "TCP");
        assert_eq!(s.counts(), (1, 1));
        assert!(probe.get("programmedMsByNode").is_none());
        Ok(())
    }

    #[test]
    fn several_nodes_show_each_nodes_time() -> anyhow::Result<()> {
        let mut s = step(true);
        s.programmed_by_node = BTreeMap::from([("node-a".into(), 9), ("node-b".into(), 12)]);
        assert!(s.render_table().starts_with(
            "Step 1: s (programmed on every node in 12 ms: node-a 9 ms, node-b 12 ms)\n"
        ));
        let probe: serde_json::Value = serde_json::from_str(&s.json_lines()[0])?;
        assert_eq!(probe["programmedMsByNode"]["node-b"], 12);
        Ok(())
    }
}
