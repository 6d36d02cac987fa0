//! `gen-conformance [DIR]`: writes the upstream NetworkPolicy e2e cases described in
//! `tests/src/conformance/` as lab scenarios into DIR (default: `examples/conformance/` in the
//! workspace), removing `*.yaml` files there that no case generates.

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use palisade_tests::conformance::{
    self, LEFT_OUT, SCENARIO_DIR, UPSTREAM_COMMIT, UPSTREAM_DIR, UPSTREAM_FILE,
};

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| palisade_tests::workspace_root().join(SCENARIO_DIR));
    match conformance::write_all(&dir) {
        Ok(count) => {
            let mut text = format!(
                "wrote {count} scenarios to {} from kubernetes/kubernetes \
                 {UPSTREAM_DIR}/{UPSTREAM_FILE} at {UPSTREAM_COMMIT}\nleft out:\n",
                dir.display()
            );
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
