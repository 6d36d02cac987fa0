//! The property tests, one per generator, and how many cases each runs.

use std::time::Instant;

use crate::scratch_dir;
use policy_agent::{calico::selector::Selector, datastore::file::FileDatastore};
use proptest::{prelude::*, test_runner::FileFailurePersistence};

use super::checks::{check_errors, check_kept};
use super::generators::{Encoding, arbitrary_document, encode, mutated_case};
use super::ingest::{FILE_BUDGET, MAX_INPUT, bounded, ingest, ingest_into};

/// Cases per generator in an ordinary `cargo test`.
const DEFAULT_CASES: u32 = 512;

fn cases() -> u32 {
    std::env::var("PALISADE_INGEST_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a slow input repeatedly would itself take minutes.
        max_shrink_iters: 256,
        // Saved failures are replayed first. Named outright: by default proptest looks for
        // them beside the test crate's root (`tests/api/main.rs`), not beside this module.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/ingestion_fuzz.proptest-regressions"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Generator 1: valid objects of every kind, mutated.
    #[test]
    fn mutated_manifests_are_accepted_or_rejected_by_name_and_field(
        (originals, documents, encoding) in mutated_case()
    ) {
        let scratch = scratch_dir("ingest-fuzz-mutated");
        let (file, contents) = encode(&documents, encoding);
        bounded(&file, &contents)?;
        // The valid version first, in the same file: a rejected edit must leave it in force.
        let (_, original) = encode(&originals, Encoding::Yaml);
        let (store, base) = ingest_into(FileDatastore::new(scratch.path()), &file, original)?;
        let (_, snapshot) = ingest_into(store, &file, contents.clone())?;
        check_errors(&file, &contents, &snapshot)?;
        check_kept(&base, &originals, &snapshot, &contents)?;
    }

    /// Generator 2a: arbitrary documents, some claiming a known kind.
    #[test]
    fn arbitrary_documents_are_accepted_or_rejected_by_name_and_field(
        documents in prop::collection::vec(arbitrary_document(), 1..4),
        json in any::<bool>(),
    ) {
        let scratch = scratch_dir("ingest-fuzz-arbitrary");
        let encoding = if json { Encoding::Json } else { Encoding::Yaml };
        let (file, contents) = encode(&documents, encoding);
        bounded(&file, &contents)?;
        let snapshot = ingest(scratch.path(), &file, contents.clone())?;
        check_errors(&file, &contents, &snapshot)?;
    }

    /// Generator 2b: raw bytes, and YAML-looking text.
    #[test]
    fn raw_bytes_never_panic_or_hang(
        contents in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4096),
            "(apiVersion: v1\n|kind: [A-Za-z]{0,12}\n|metadata: \\{name: [a-z]{0,5}\\}\n|---\n|spec:\n|  [a-z]{1,8}: [^\n]{0,10}\n|- |&a |\\*a |!!str |\\{|\\[|\\}|\\]|: |\n)*"
                .prop_map(String::into_bytes),
            // Nesting, as deep as the input bound allows.
            (
                prop::sample::select(vec!["[", "{a: ", "[{", "- [", "{\"a\": ["]),
                1usize..60_000,
                any::<bool>(),
            )
                .prop_map(|(open, depth, closed)| {
                    let mut text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: n}}\nspec: {}", open.repeat(depth));
                    if closed {
                        text.push_str(&"]}".repeat(depth));
                    }
                    text.truncate(MAX_INPUT);
                    text.into_bytes()
                }),
        ],
    ) {
        let scratch = scratch_dir("ingest-fuzz-raw");
        bounded("case.yaml", &contents)?;
        let snapshot = ingest(scratch.path(), "case.yaml", contents.clone())?;
        check_errors("case.yaml", &contents, &snapshot)?;
    }

    /// Generator 3: the selector parser alone, on selector-like text nested at any depth.
    #[test]
    fn selectors_parse_or_fail_with_a_position_in_bounded_time(
        prefix in prop::collection::vec(
            prop::sample::select(vec!["!", "(", "!(", " ( ", "has(a) && ", "a == 'b' || "]),
            0..8,
        ),
        repeat in 0usize..20_000,
        body in "[a-z/.()!&|=' \"{},é-]{0,30}",
    ) {
        let text = prefix.concat().repeat(repeat.min(MAX_INPUT / 16)) + &body;
        let started = Instant::now();
        match Selector::parse(&text) {
            Ok(selector) => {
                // What parses prints and parses back to itself.
                prop_assert_eq!(Selector::parse(&selector.to_string()), Ok(selector));
            }
            Err(e) => prop_assert!(e.position <= text.len(), "{:?}", e),
        }
        prop_assert!(started.elapsed() < FILE_BUDGET, "{:?} for {} bytes", started.elapsed(), text.len());
    }
}
