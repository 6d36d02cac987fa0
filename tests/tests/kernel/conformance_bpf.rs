//! The upstream Kubernetes NetworkPolicy e2e suite at the BPF level: every scenario of
//! examples/conformance/ and examples/conformance-sctp/ (generated from tests/src/conformance/)
//! replayed without namespaces, with the verdicts of the real eBPF programs run by the kernel
//! (`BPF_PROG_TEST_RUN`) on crafted frames.
//!
//! For each scenario the manifests go into a temporary directory exactly as the lab writes them
//! (`lab::datastore`: namespace labels, pod status, file names), step by step; after each step
//! the real agent code reads the directory (`FileDatastore`), compiles it and syncs the maps
//! incrementally from what was programmed before (one `Datapath` and one `Compiler` for the
//! whole run, as one long-lived agent). Every probe is then a frame from the source pod's
//! address to the destination pod's, with the probe's protocol (TCP, UDP, SCTP) and port, run
//! with an empty connection table through the source's egress program (`FromEndpoint`) and
//! the destination's ingress program (`ToEndpoint`): allowed means both pass. An allowed
//! request must also get its reply back (through the destination's egress program and the
//! source's ingress program, by the connection table), as the lab's echo needs.
//!
//! This is the only runner for the SCTP context (the lab cannot open SCTP sockets on this
//! kernel). Privileged; the test fails listing every probe whose verdict is not upstream's.
//!
//! It replays the kubernetes-sigs/network-policy-api conformance scenarios the same way
//! (examples/cnp-conformance/ and, SCTP only, examples/cnp-conformance-sctp/, generated from
//! tests/src/cnp_conformance/): the only runner of their SCTP probes.

use std::{
    fs,
    net::IpAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use palisade_tests::{
    cnp_conformance,
    conformance::{self, SCENARIO_DIRS},
    lab::{
        Scenario,
        agent::ensure_bpffs,
        datastore::Datastore,
        scenario::{Family, PodRef, Probe, Verdict},
        topology::{self, PodPlan},
    },
    require_root,
    scratch::Scratch,
    workspace_root,
};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    replay::{Direction, Packet},
};

/// The source port [`Packet::to_frame`] writes.
const FRAME_SOURCE_PORT: u16 = 40000;

/// What the kernel said about one probe.
#[derive(Debug, Clone, Copy)]
struct Verdicts {
    /// The source's egress program on the request.
    egress: bool,
    /// The destination's ingress program on the request.
    ingress: bool,
    /// For an allowed request: whether its reply passed the destination's egress program and
    /// the source's ingress program.
    reply: Option<bool>,
}

impl Verdicts {
    /// The request passes both programs.
    fn allowed(&self) -> bool {
        self.egress && self.ingress
    }

    /// What upstream expects: the request passes both programs or neither lets it through,
    /// and an allowed request's reply passes too (the lab's echo needs it).
    fn matches(&self, expect: Verdict) -> bool {
        self.allowed() == (expect == Verdict::Allow) && self.reply != Some(false)
    }
}

fn word(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

/// The datapath and the agent code that programs it, for the whole run.
struct Kernel {
    datapath: Datapath,
    compiler: Compiler,
    programmed: MapContents,
    runs: usize,
}

impl Kernel {
    /// Reads the manifest directory, compiles it and syncs the maps from what was programmed
    /// before. Returns the objects the datastore rejected, as the agent reports them.
    fn program(&mut self, store: &mut FileDatastore) -> anyhow::Result<Vec<String>> {
        let snapshot = store
            .load()
            .with_context(|| format!("reading {}", store.dir().display()))?;
        let maps = self
            .compiler
            .compile(&snapshot.cluster, &Scope::default())
            .maps;
        self.datapath
            .apply(&self.programmed, &maps)
            .context("syncing the maps")?;
        self.programmed = std::sync::Arc::unwrap_or_clone(maps);
        Ok(snapshot.errors.iter().map(ToString::to_string).collect())
    }

    fn run(&mut self, direction: Direction, frame: &[u8]) -> anyhow::Result<bool> {
        self.runs += 1;
        Ok(self
            .datapath
            .test_run(direction, frame, 1)
            .context("BPF_PROG_TEST_RUN")?
            .allowed())
    }

    /// The first packet of a new flow, then (when it passes) its reply.
    fn probe(&mut self, request: Packet) -> anyhow::Result<Verdicts> {
        self.datapath
            .clear_conntrack()
            .context("clearing the connection table")?;
        let frame = request.to_frame();
        let egress = self.run(Direction::FromEndpoint, &frame)?;
        let ingress = self.run(Direction::ToEndpoint, &frame)?;
        let reply = if egress && ingress {
            let frame = reply_frame(&request);
            Some(
                self.run(Direction::FromEndpoint, &frame)?
                    && self.run(Direction::ToEndpoint, &frame)?,
            )
        } else {
            None
        };
        Ok(Verdicts {
            egress,
            ingress,
            reply,
        })
    }
}

/// The reply to `request`'s frame: addresses and ports swapped.
fn reply_frame(request: &Packet) -> Vec<u8> {
    let mut frame = Packet {
        src: request.dst,
        dst: request.src,
        protocol: request.protocol,
        sport: FRAME_SOURCE_PORT,
        dport: FRAME_SOURCE_PORT,
    }
    .to_frame();
    // Ethernet, then a 20-byte IPv4 or 40-byte IPv6 header; every L4 header starts with the
    // source port.
    let l4 = 14 + if request.src.is_ipv4() { 20 } else { 40 };
    frame[l4..l4 + 2].copy_from_slice(&request.dport.to_be_bytes());
    frame
}

fn address(plans: &[PodPlan], pod: &PodRef, family: Family) -> anyhow::Result<IpAddr> {
    let plan = plans
        .iter()
        .find(|p| p.pod == *pod)
        .with_context(|| format!("pod {pod} is not in the scenario"))?;
    match family {
        Family::V4 => plan.ipv4.map(IpAddr::V4),
        Family::V6 => plan.ipv6.map(IpAddr::V6),
    }
    .with_context(|| format!("pod {pod} has no IPv{} address", family.number()))
}

/// What one scenario observed.
struct Outcome {
    /// `examples/conformance*/<file>`.
    file: String,
    probes: usize,
    mismatches: Vec<String>,
    /// The scenario could not be replayed.
    error: Option<String>,
    elapsed: Duration,
}

fn describe(probe: &Probe, verdicts: &Verdicts) -> String {
    let mut text = format!(
        "{} -> {}:{}/{}{} expected {}, kernel {} (egress of {}: {}, ingress of {}: {}",
        probe.from,
        probe.to,
        probe.port,
        probe.protocol,
        match probe.family {
            Family::V4 => "",
            Family::V6 => " (IPv6)",
        },
        probe.expect,
        match (verdicts.allowed(), verdicts.reply) {
            (true, Some(false)) => "allow but drops the reply",
            (allowed, _) => word(allowed),
        },
        probe.from,
        word(verdicts.egress),
        probe.to,
        word(verdicts.ingress),
    );
    if verdicts.reply == Some(false) {
        text.push_str(&format!(
            "; the reply {} -> {} is dropped",
            probe.to, probe.from
        ));
    }
    text.push(')');
    text
}

/// Replays one scenario; mismatches go into `outcome`, errors mean it could not be replayed.
fn replay(
    kernel: &mut Kernel,
    path: &Path,
    manifests: &Path,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let scenario = Scenario::from_file(path)?;
    let plans = topology::plan(&scenario.pods()?)?;
    if manifests.exists() {
        fs::remove_dir_all(manifests)
            .with_context(|| format!("removing {}", manifests.display()))?;
    }
    fs::create_dir_all(manifests).with_context(|| format!("creating {}", manifests.display()))?;
    let lab_store = Datastore::new(manifests.to_owned());
    let mut agent_store = FileDatastore::new(manifests);

    lab_store.write_resources(&scenario, &plans)?;
    let mut seen_errors = kernel
        .program(&mut agent_store)
        .context("programming the initial resources")?;
    for error in &seen_errors {
        outcome
            .mismatches
            .push(format!("resources: the agent rejected: {error}"));
    }

    for (s, step) in scenario.steps.iter().enumerate() {
        let number = s + 1;
        let at = format!("step {number} ({})", step.display_name(number));
        lab_store.write_step(step, &plans)?;
        let errors = kernel
            .program(&mut agent_store)
            .with_context(|| format!("programming {at}"))?;
        for expected in &step.expect_errors {
            if !errors.iter().any(|e| e.contains(expected.as_str())) {
                outcome
                    .mismatches
                    .push(format!("{at}: no agent error contains {expected:?}"));
            }
        }
        for error in &errors {
            let expected = step
                .expect_errors
                .iter()
                .any(|x| error.contains(x.as_str()));
            if !expected && !seen_errors.contains(error) {
                outcome
                    .mismatches
                    .push(format!("{at}: the agent rejected: {error}"));
                seen_errors.push(error.clone());
            }
        }
        for (p, probe) in step.probes.iter().enumerate() {
            let request = Packet {
                src: address(&plans, &probe.from, probe.family)?,
                dst: address(&plans, &probe.to, probe.family)?,
                protocol: probe.protocol.number(),
                sport: FRAME_SOURCE_PORT,
                dport: probe.port,
            };
            let verdicts = kernel
                .probe(request)
                .with_context(|| format!("{at}: probe {p}"))?;
            outcome.probes += 1;
            if !verdicts.matches(probe.expect) {
                outcome
                    .mismatches
                    .push(format!("{at}: probe {p}: {}", describe(probe, &verdicts)));
            }
        }
    }
    Ok(())
}

#[test]
fn conformance_scenarios_hold_in_the_kernel() -> anyhow::Result<()> {
    if !require_root("conformance_scenarios_hold_in_the_kernel") {
        return Ok(());
    }
    let root = workspace_root();
    let mut files = Vec::new();
    let dirs: Vec<&str> = SCENARIO_DIRS
        .into_iter()
        .chain(cnp_conformance::SCENARIO_DIRS)
        .collect();
    for dir in dirs.iter().copied() {
        let found = conformance::scenario_files(&root.join(dir))?;
        anyhow::ensure!(!found.is_empty(), "no scenarios in {dir}");
        files.extend(found.into_iter().map(|path| (dir, path)));
    }

    if ensure_bpffs()? {
        eprintln!("mounted a bpffs at /sys/fs/bpf (it stays mounted)");
    }
    let start = Instant::now();
    let scratch = Scratch::new("conformance-bpf", "kernel");
    let mut kernel = Kernel {
        datapath: Datapath::load(&scratch.pins).context("loading the datapath")?,
        compiler: Compiler::new(),
        programmed: MapContents::default(),
        runs: 0,
    };
    let load_time = start.elapsed();

    let mut outcomes = Vec::new();
    for (dir, path) in &files {
        let started = Instant::now();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut outcome = Outcome {
            file: format!("{dir}/{name}"),
            probes: 0,
            mismatches: Vec::new(),
            error: None,
            elapsed: Duration::ZERO,
        };
        if let Err(e) = replay(&mut kernel, path, &scratch.manifests, &mut outcome) {
            outcome.error = Some(format!("{e:#}"));
        }
        outcome.elapsed = started.elapsed();
        eprintln!(
            "{:>8}  {:>4} probes  {:>6.1} ms  {}",
            if outcome.error.is_some() || !outcome.mismatches.is_empty() {
                "FAILED"
            } else {
                "ok"
            },
            outcome.probes,
            outcome.elapsed.as_secs_f64() * 1000.0,
            outcome.file
        );
        outcomes.push(outcome);
    }
    let wall = start.elapsed();

    let probes: usize = outcomes.iter().map(|o| o.probes).sum();
    let mismatched: usize = outcomes.iter().map(|o| o.mismatches.len()).sum();
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.error.is_some() || !o.mismatches.is_empty())
        .collect();
    for dir in dirs {
        let mine = outcomes
            .iter()
            .filter(|o| o.file.starts_with(&format!("{dir}/")));
        let (count, probes) = mine.fold((0, 0), |(c, p), o| (c + 1, p + o.probes));
        eprintln!("  {dir}: {count} scenarios, {probes} probes");
    }
    eprintln!(
        "\nconformance at the BPF level: {} scenarios, {probes} probes ({} program runs), \
         {mismatched} mismatches, {} scenarios failed; {:.2} s wall time (datapath load {:.2} s)",
        outcomes.len(),
        kernel.runs,
        failed.len(),
        wall.as_secs_f64(),
        load_time.as_secs_f64()
    );

    let mut report = String::new();
    for outcome in &failed {
        report.push_str(&format!(
            "\n{} ({} mismatches):\n",
            outcome.file,
            outcome.mismatches.len()
        ));
        if let Some(error) = &outcome.error {
            report.push_str(&format!("  error: {error}\n"));
        }
        for mismatch in &outcome.mismatches {
            report.push_str(&format!("  {mismatch}\n"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} conformance scenarios failed at the BPF level ({mismatched} mismatches of \
         {probes} probes):{report}",
        failed.len(),
        outcomes.len()
    );
    Ok(())
}
