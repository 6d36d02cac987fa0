//! `gen-conformance [ROOT]`: writes the upstream NetworkPolicy e2e cases described in
//! `tests/src/conformance/` as scenarios into `ROOT/examples/conformance/` (the lab runs them)
//! and `ROOT/examples/conformance-sctp/` (BPF-only: they probe SCTP), ROOT being the workspace
//! by default, and removes `*.yaml` files there that no case generates.

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use palisade_tests::conformance::{self, LEFT_OUT, UPSTREAM_COMMIT, UPSTREAM_DIR, UPSTREAM_FILE};

fn main() -> ExitCode {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(palisade_tests::workspace_root);
    match conformance::write_all(&root) {
        Ok(written) => {
            let mut text = String::new();
            for (dir, count) in written {
                text.push_str(&format!(
                    "wrote {count} scenarios to {} from kubernetes/kubernetes \
                     {UPSTREAM_DIR}/{UPSTREAM_FILE} at {UPSTREAM_COMMIT}\n",
                    dir.display()
                ));
            }
            if LEFT_OUT.is_empty() {
                text.push_str("left out: none\n");
            } else {
                text.push_str("left out:\n");
            }
            for case in LEFT_OUT {
                text.push_str(&format!(
                    "  {} / It({:?}): {}\n",
                    case.context, case.title, case.reason
                ));
            }
            // A closed stdout (`| head`) is not an error: the files are written.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-conformance: {e:#}");
            ExitCode::FAILURE
        }
    }
}
