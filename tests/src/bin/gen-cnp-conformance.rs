//! `gen-cnp-conformance [ROOT]`: writes the kubernetes-sigs/network-policy-api conformance
//! tests described in `tests/src/cnp_conformance/` as scenarios into
//! `ROOT/examples/cnp-conformance/` (TCP and UDP: the lab runs them) and
//! `ROOT/examples/cnp-conformance-sctp/` (SCTP: BPF-only), ROOT being the workspace by default,
//! and removes `*.yaml` files there that nothing generates.

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use palisade_tests::cnp_conformance::{
    self, LEFT_OUT, UPSTREAM_COMMIT_V1ALPHA1, UPSTREAM_COMMIT_V1ALPHA2,
};

fn main() -> ExitCode {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(palisade_tests::workspace_root);
    match cnp_conformance::write_all(&root) {
        Ok(written) => {
            let mut text = String::new();
            for (dir, count) in written {
                text.push_str(&format!("wrote {count} scenarios to {}\n", dir.display()));
            }
            text.push_str(&format!(
                "from kubernetes-sigs/network-policy-api {UPSTREAM_COMMIT_V1ALPHA2} (v1alpha2) \
                 and {UPSTREAM_COMMIT_V1ALPHA1} (v0.1.8, v1alpha1)\nleft out:\n"
            ));
            for l in LEFT_OUT {
                text.push_str(&format!(
                    "  {} {} / {} / t.Run({:?}): {}\n",
                    l.version, l.file, l.short_name, l.subtest, l.reason
                ));
            }
            // A closed stdout (`| head`) is not an error: the files are written.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-cnp-conformance: {e:#}");
            ExitCode::FAILURE
        }
    }
}
