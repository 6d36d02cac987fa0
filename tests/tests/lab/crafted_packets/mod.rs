//! Issue 17's crafted-packet campaign on real traffic: examples/bypasses through the lab with
//! the real agent, and crafted frames sent from inside the pods' namespaces on their own
//! interfaces (`AF_PACKET`, correct checksums, the pods' real MACs), counted where they would
//! be delivered by a capture on the victim's (and the client's, and the attacker's) own `eth0`.
//! Every crafted packet carries a marker naming its case, so each case is counted on its own.
//!
//! The setup (the scenario's first step checks it with ordinary probes): client, victim (TCP
//! 8000, UDP 5353) and attacker in `default`, dual-stack; the victim's ingress admits only the
//! client on those ports; the attacker's egress admits only UDP 53.
//!
//! 1. ICMP errors as "related" abuse: (a) the attacker sends UDP to the victim's port 53 (its
//!    egress allows it, the victim's ingress drops it), then errors of every kind quoting that
//!    flow reversed, to the victim; and errors to the client quoting the client's real flows;
//!    (b) errors over 576 (IPv4) / 1280 (IPv6) bytes quoting a real, open, allowed client ↔
//!    victim TCP connection, from the attacker and from the client; (c) fragmented errors.
//! 2. ICMP(v6) tracking confusion: the victim sends an error to the attacker, then the attacker
//!    sends echo requests and replies with identifier 0, type 200 and errors quoting untracked
//!    flows to the victim.
//! 3. Revocation when the server speaks first: the client's real TCP connection and UDP
//!    exchange with the victim; a step revokes the allow; the victim sends first on those
//!    tuples (crafted data, zero-window probes, datagrams), then the client keeps sending (real
//!    writes and crafted segments): no frame of those tuples reaches the victim afterwards.
//!    (The victim's own packets reach the client and are shown, not checked: its egress and
//!    the client's ingress are open, so policy allows them judged alone.)
//! 4. ND, RD and MLD (ICMPv6 130-137, 143) as a covert channel: routed hop limits (64, 254),
//!    the attacker's own, the client's and an address no pod owns as source, 1,200-byte
//!    payloads, to the victim and to the client.
//!
//! Each denied case must be delivered 0 times. Each class has positive controls, packets of
//! the same shapes that policy allows and that must arrive, so a capture that sees nothing
//! cannot pass. Captures fail on any frame the kernel dropped for them.
//! Privileged: needs root (a failure under CI=true).

mod covert_channel;
mod ledger;
mod packets;
mod related_errors;
mod revocation;
mod tracking_confusion;
mod world;

use std::{path::Path, time::Instant};

use anyhow::Context as _;
use palisade_tests::{
    crafted,
    lab::{Lab, LabOptions, Scenario, StepReport},
};

use covert_channel::covert_plumbing;
use ledger::{At, Expect, Ledger};
use related_errors::icmp_errors;
use revocation::speak_after_revocation;
use tracking_confusion::tracking_confusion;
use world::{Pod, World, connect};

fn check_step(report: &StepReport) -> anyhow::Result<()> {
    eprintln!("{}", report.render_table());
    anyhow::ensure!(
        report.programmed_ms.is_some(),
        "step {} not programmed",
        report.number
    );
    let wrong: Vec<String> = report
        .probes
        .iter()
        .filter(|p| !p.ok)
        .map(|p| {
            format!(
                "{} -> {}:{}/{} v{}: expected {:?}, observed {:?} ({})",
                p.from,
                p.to,
                p.port,
                p.protocol,
                p.family.number(),
                p.expect,
                p.observed,
                p.detail
            )
        })
        .collect();
    anyhow::ensure!(
        wrong.is_empty(),
        "step {}: the lab's own probes mismatched (the setup is wrong):\n{}",
        report.number,
        wrong.join("\n")
    );
    Ok(())
}

/// Everything between the lab's start and its finish.
fn campaign(lab: &mut Lab, scenario: &Scenario) -> anyhow::Result<()> {
    anyhow::ensure!(scenario.steps.len() == 2, "examples/bypasses has two steps");
    check_step(&lab.run_step(1, &scenario.steps[0])?)?;

    let client = Pod::open(lab, "client")?;
    let victim = Pod::open(lab, "victim")?;
    let attacker = Pod::open(lab, "attacker")?;
    let world = World {
        at_client: client.port.capture()?,
        at_victim: victim.port.capture()?,
        at_attacker: attacker.port.capture()?,
        client,
        victim,
        attacker,
    };
    let mut ledger = Ledger::default();
    let mut connections = [
        connect(&world.client, &world.victim, 4)?,
        connect(&world.client, &world.victim, 6)?,
    ];
    for (family, conns) in [4u8, 6].into_iter().zip(connections.iter_mut()) {
        let case = ledger.case(
            "3 revoked",
            At::Victim,
            Expect::Delivered,
            format!("IPv{family} control: the client's real TCP and UDP to the victim before the revocation"),
        );
        conns.exchange(&crafted::marker(case))?;
    }
    world.settle(&mut ledger)?;

    // ND/MLD first: it needs no flow, and on a datapath that still tracked ICMP errors the
    // errors of classes 1 and 2 would leave entries that pass its packets as replies, so a
    // parser fix could not be judged on its own.
    covert_plumbing(&world, &mut ledger)?;
    world.settle(&mut ledger)?;
    icmp_errors(&world, &mut ledger, &connections)?;
    world.settle(&mut ledger)?;
    tracking_confusion(&world, &mut ledger)?;
    world.settle(&mut ledger)?;

    // The connections are open and allowed: they still work after all this (an error that
    // reached the client's sockets would break them; the cases above say which).
    let mut failed = Vec::new();
    for (family, conns) in [4u8, 6].into_iter().zip(connections.iter_mut()) {
        if let Err(e) = conns.exchange(b"still open") {
            failed.push(format!(
                "IPv{family}: the client's real connections to the victim broke during classes 1, 2 and 4: {e:#}"
            ));
        }
    }

    check_step(&lab.run_step(2, &scenario.steps[1])?)?;
    failed.extend(speak_after_revocation(
        &world,
        &mut ledger,
        &mut connections,
    )?);

    let (lines, case_failures) = ledger.judge();
    eprintln!("{}", lines.join("\n"));
    failed.extend(case_failures);
    let of = |expect| ledger.cases.iter().filter(|c| c.expect == expect).count();
    eprintln!(
        "{} cases ({} denied, {} controls, {} shown), {} failed",
        ledger.cases.len(),
        of(Expect::Nothing),
        of(Expect::Delivered),
        of(Expect::Shown),
        failed.len()
    );
    anyhow::ensure!(
        failed.is_empty(),
        "crafted packets: {} failures (denied cases must be delivered 0 times, controls at least once):\n{}",
        failed.len(),
        failed.join("\n")
    );
    Ok(())
}

#[test]
fn crafted_packets_reach_nothing_they_are_denied() -> anyhow::Result<()> {
    let Some(_turn) = crate::lab_turn("crafted_packets_reach_nothing_they_are_denied") else {
        return Ok(());
    };
    let started = Instant::now();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bypasses/scenario.yaml");
    let scenario = Scenario::from_file(&path)?;
    let mut lab = Lab::start(&scenario, &LabOptions::default())?;
    let outcome = campaign(&mut lab, &scenario);
    let tail = lab.agent_log_tail();
    let report = lab.finish();
    eprintln!("crafted packets: {:.1} s", started.elapsed().as_secs_f64());
    outcome.with_context(|| format!("agent log:\n{}", tail.join("\n")))?;
    report?;
    Ok(())
}
