//! Fixed inputs: every seed is accepted, and the regressions the long runs found.

use std::time::{Duration, Instant};

use crate::scratch_dir;
use policy_agent::calico::selector::{MAX_NESTING, Selector};

use super::ingest::ingest;
use super::seeds::seeds;

/// Every seed on its own is accepted (the mutations start from valid input), and all of them
/// together compile.
#[test]
fn every_seed_is_accepted() {
    let scratch = scratch_dir("ingest-fuzz-seeds");
    for (index, seed) in seeds().iter().enumerate() {
        let text = serde_yaml::to_string(seed).expect("seed as YAML");
        let snapshot = ingest(scratch.path(), "seed.yaml", text.into_bytes())
            .unwrap_or_else(|e| panic!("seed {index}: {e}"));
        assert!(
            snapshot.errors.is_empty(),
            "seed {index} rejected: {:?}\n{seed:?}",
            snapshot.errors
        );
    }
}

/// Regression: a selector of 100,000 `!` (or `(`) overflowed the parser's stack and aborted
/// the whole agent; it is now refused at the level past [`MAX_NESTING`].
#[test]
fn a_deeply_nested_selector_is_refused_not_a_stack_overflow() {
    for text in [
        "!".repeat(100_000) + "all()",
        "(".repeat(100_000) + "all()" + &")".repeat(100_000),
        "!(".repeat(50_000) + "a == 'b'" + &")".repeat(50_000),
    ] {
        let e = Selector::parse(&text).expect_err("nested too deep");
        assert!(e.message.contains("nested more than"), "{e}");
        assert!(e.position < 2 * (MAX_NESTING + 1), "{e}");
    }
    // At the limit it still parses.
    let deep = "!".repeat(MAX_NESTING) + "all()";
    assert!(Selector::parse(&deep).is_ok());
    let deep = "(".repeat(MAX_NESTING) + "all()" + &")".repeat(MAX_NESTING);
    assert!(Selector::parse(&deep).is_ok());

    // Through the file datastore: the policy is rejected by name and field.
    let scratch = scratch_dir("ingest-fuzz-deep-selector");
    let manifest = format!(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: deep}}\n\
         spec:\n  selector: \"{}all()\"\n",
        "!".repeat(100_000)
    );
    let snapshot = ingest(scratch.path(), "deep.yaml", manifest.into_bytes()).expect("ingest");
    let rejected: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [(
            Some("GlobalNetworkPolicy (projectcalico.org/v3) deep"),
            Some("spec.selector")
        )]
    );
}

/// Regression: flow collections nested 100,000 deep (a 200 KB file) kept the YAML scanner
/// busy for over a minute (its work per token grows with the nesting) before serde_yaml's
/// recursion limit refused the file. A scan refuses them first, in milliseconds, with the
/// same outcome: not YAML, the file's previous objects kept.
#[test]
fn deeply_nested_flow_collections_are_refused_quickly() {
    let scratch = scratch_dir("ingest-fuzz-deep-flow");
    let header = "apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\nspec: ";
    for (file, contents) in [
        (
            "brackets.yaml",
            format!("{header}{}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        (
            "braces.yaml",
            format!("{header}{}1{}\n", "{a: ".repeat(50_000), "}".repeat(50_000)),
        ),
        ("open.json", "[".repeat(200_000)),
    ] {
        let started = Instant::now();
        let snapshot = ingest(scratch.path(), file, contents.into_bytes()).expect("ingest");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{file}: {took:?}");
        let messages: Vec<_> = snapshot.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 1, "{file}: {messages:?}");
        assert!(
            messages[0].starts_with("not valid YAML: '[' and '{' nested more than 128 deep"),
            "{file}: {messages:?}"
        );
    }

    // Brackets in quoted scalars and comments are not nesting: this file is valid.
    let quoted = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: quoted, namespace: default, annotations: {{a: \"{0}\", b: '{0}'}}}}\n\
         # {0}\nspec: {{podSelector: {{}}}}\n",
        "[{".repeat(200)
    );
    let snapshot = ingest(scratch.path(), "quoted.yaml", quoted.into_bytes()).expect("ingest");
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    assert_eq!(snapshot.cluster.policies.len(), 1);

    // At the limit, serde_yaml decides as before: nested 120 deep in a policy's spec, the
    // document parses and the error is the policy's own.
    let nested = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: nested, namespace: default}}\nspec: {{podSelector: {}{}}}\n",
        "[".repeat(120),
        "]".repeat(120)
    );
    let snapshot = ingest(scratch.path(), "nested.yaml", nested.into_bytes()).expect("ingest");
    let rejected: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [(
            Some("NetworkPolicy default/nested"),
            Some("spec.podSelector")
        )]
    );
}

/// Regression (found by the long run): an unknown key `""` at a Calico resource's root was
/// reported with no field (serde_path_to_error gives no path for it); it is named `""` now,
/// and an unknown key anywhere names itself.
#[test]
fn an_unknown_empty_key_is_named_as_the_field() {
    let scratch = scratch_dir("ingest-fuzz-empty-key");
    let manifest = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\n\
                    spec: {order: 100}\n\"\": x\n---\n\
                    apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: other}\n\
                    spec: {order: 100, \"\": x}\n---\n\
                    apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n\
                    metadata: {name: set}\nextra: 1\n---\n\
                    apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n\
                    metadata: {name: admin}\nspec: {priority: 6, subject: {namespaces: {}}}\n\
                    \"\": x\n";
    let snapshot =
        ingest(scratch.path(), "keys.yaml", manifest.as_bytes().to_vec()).expect("ingest");
    let rejected: Vec<_> = snapshot
        .errors
        .iter()
        .map(|e| (e.object.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [
            (Some("Tier (projectcalico.org/v3) security"), Some("\"\"")),
            (Some("Tier (projectcalico.org/v3) other"), Some("spec.\"\"")),
            (
                Some("GlobalNetworkSet (projectcalico.org/v3) set"),
                Some("extra")
            ),
            (Some("AdminNetworkPolicy admin"), Some("\"\"")),
        ]
    );
}
