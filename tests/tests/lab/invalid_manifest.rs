//! Invalid manifests next to valid ones: the agent must reject the invalid ones (naming the file
//! and the field) and keep enforcing the valid ones.

use palisade_tests::lab::{LabOptions, Scenario, run_scenario};

/// Not YAML at all: an unclosed flow sequence.
const GARBAGE: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: [oops\n";

/// A policy that would let every pod reach backend on 8000 if its ICMP protocol were ignored
/// instead of rejected.
const BROKEN: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: broken-icmp
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: backend
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector: {}
      ports:
        - protocol: ICMP
          port: 8000
"#;

fn scenario() -> anyhow::Result<Scenario> {
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("          {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let yaml = format!(
        r#"
resources:
  - apiVersion: v1
    kind: Pod
    metadata: {{name: frontend, labels: {{app: frontend}}}}
    spec: {{containers: [{{name: nginx, image: nginx:alpine, ports: [{{containerPort: 80}}]}}]}}
  - apiVersion: v1
    kind: Pod
    metadata: {{name: backend, labels: {{app: backend}}}}
    spec: {{containers: [{{name: python, image: python:3.9-slim}}]}}
  - apiVersion: v1
    kind: Pod
    metadata: {{name: other}}
    spec: {{containers: [{{name: shell, image: busybox}}]}}
steps:
  - name: valid policies next to a broken one and a garbage file
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {{name: deny-all-ingress-to-backend, namespace: default}}
        spec:
          podSelector: {{matchLabels: {{app: backend}}}}
          policyTypes: [Ingress]
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {{name: allow-frontend-to-backend, namespace: default}}
        spec:
          podSelector: {{matchLabels: {{app: backend}}}}
          policyTypes: [Ingress]
          ingress:
            - from: [{{podSelector: {{matchLabels: {{app: frontend}}}}}}]
              ports: [{{protocol: TCP, port: 8000}}]
    writeFiles:
      - name: broken.yaml
        content: |
{broken}
      - name: garbage.yaml
        content: |
{garbage}
    expectErrors: [broken.yaml, "spec.ingress[0].ports[0].protocol", garbage.yaml]
    probes:
      - {{from: frontend, to: backend, port: 8000, expect: allow}}
      - {{from: other, to: backend, port: 8000, expect: deny}}
      - {{from: frontend, to: backend, port: 80, expect: deny}}
  - name: invalid files removed
    removeFiles: [broken.yaml, garbage.yaml]
    probes:
      - {{from: frontend, to: backend, port: 8000, expect: allow}}
      - {{from: other, to: backend, port: 8000, expect: deny}}
"#,
        broken = indent(BROKEN),
        garbage = indent(GARBAGE),
    );
    Ok(Scenario::from_yaml(&yaml)?)
}

#[test]
fn garbage_is_not_yaml() {
    assert!(serde_yaml::from_str::<serde_yaml::Value>(GARBAGE).is_err());
}

#[test]
fn scenario_writes_the_files_verbatim() -> anyhow::Result<()> {
    let scenario = scenario()?;
    let files = &scenario.steps[0].write_files;
    assert_eq!(files[0].content, BROKEN);
    assert_eq!(files[1].content, GARBAGE);
    Ok(())
}

#[test]
fn invalid_manifests_are_reported_and_valid_ones_enforced() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("invalid_manifests_are_reported_and_valid_ones_enforced")
    else {
        return Ok(());
    };
    let report = run_scenario(&scenario()?, &LabOptions::default())?;
    for step in &report.steps {
        eprintln!("{}", step.render_table());
    }
    let first = &report.steps[0];
    assert!(
        first
            .agent_errors
            .iter()
            .any(|e| e.contains("broken.yaml") && e.contains("spec.ingress[0].ports[0].protocol")),
        "no error names broken.yaml and its protocol field: {:?}",
        first.agent_errors
    );
    assert!(
        first
            .agent_errors
            .iter()
            .any(|e| e.contains("garbage.yaml")),
        "no error names garbage.yaml: {:?}",
        first.agent_errors
    );
    assert!(
        report.steps[1].agent_errors.is_empty(),
        "errors remain after the files were removed: {:?}",
        report.steps[1].agent_errors
    );
    assert!(
        report.all_ok(),
        "mismatches:\n{}\nagent log:\n{}",
        report.mismatches().join("\n"),
        report.agent_log_tail.join("\n")
    );
    Ok(())
}
