//! One state, one compile: two fresh compilers given the same cluster write the same map
//! entries. The agent relies on it after a restart (a new agent's compile of an unchanged
//! datastore should rewrite nothing it need not) and the tests that compare maps do too.
//! The ordered (Calico) tables choose the cell their `ANY` entries stand for by a tie-break
//! on the peers' order; the peers came from hashed maps, so two compiles of one cluster could
//! pick different default cells (same verdicts, different entries: found by
//! `staged_vs_model`'s author in 2 of ~70 worlds). Generated Calico worlds, each compiled
//! twice. `PALISADE_PROPTEST_CASES` scales the count (default 300).

use palisade_tests::{generate::cases_from_env, generate_calico::calico_case};
use policy_agent::compiler::{Compiler, Scope};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[test]
fn one_cluster_compiles_to_the_same_entries_every_time() {
    let mut runner = TestRunner::new(Config {
        cases: cases_from_env(4000) / 13,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&calico_case(), |case| {
        let scope = Scope {
            node_name: None,
            host_addrs: case.world.node_addrs.clone(),
        };
        let cluster = case.agent_cluster();
        let first = Compiler::new().compile(&cluster, &scope).maps;
        for _ in 0..2 {
            let again = Compiler::new().compile(&cluster, &scope).maps;
            if again != first {
                return Err(TestCaseError::fail(format!(
                    "two compiles of one cluster differ: {} and {} rule entries",
                    first.rules.len(),
                    again.rules.len()
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
