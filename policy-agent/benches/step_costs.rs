//! What each step of a packet's decision costs in the kernel, for `cargo xtask bench`: the
//! profile of the hot path by its parts, since this machine has no hardware performance
//! counters for `bpftool prog profile` or `perf` to sample the programs by instruction.
//!
//! Each step (a map lookup of one of our maps' shapes, an update, a helper) is measured alone:
//! a tc program made with the raw bpf() call does it [`REPEATS`] times, run with
//! `BPF_PROG_TEST_RUN` beside the empty program in the same round, and the step's cost is the
//! difference divided by [`REPEATS`]. The maps have our maps' key and value sizes, types and
//! capacities (`policy_common`), one entry (the key looked up, for a hit), so every lookup
//! hits the cache as it does in the decision bench's repeated runs. The verifier rewrites
//! these lookups as it rewrites ours (array lookups inlined, hash lookups called directly).
//!
//! It also prints which steps the decision bench's cases take ([`PATHS`]), so that the report
//! can set the sum of the steps beside the measured whole: the rest is parsing, the
//! decision's own instructions, and the calls between its functions.
//!
//! Run as root: `cargo bench -p policy-agent --bench step_costs [-- --quick]`. Prints one JSON
//! object per step on stdout and a table on stderr.

#[path = "shared/raw_bpf.rs"]
mod raw_bpf;

use std::{mem::size_of, time::Duration};

use anyhow::Context as _;
use policy_agent::replay::Packet;
use policy_common::{
    capacity,
    conntrack::{ConntrackKey, ConntrackValue},
    counters::Counters,
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{IdentityKey, IdentitySlots},
    rule::{RuleKey, RuleValue},
    rule_hits::{RuleHitKey, RuleHits},
};
use raw_bpf::{Insn, Map, Program};

/// How many times each program does its step: enough that the step, not the test run's own
/// cost, dominates the difference.
const REPEATS: usize = 8;

/// What a step does.
#[derive(Clone, Copy)]
enum Op {
    /// `bpf_map_lookup_elem` of a key the map holds (`hit`) or does not.
    Lookup { hit: bool },
    /// `bpf_map_update_elem` of a key the map holds (an LRU map takes a fresh element for it,
    /// as for a new key, and frees the old one).
    Update,
    /// A helper without arguments.
    Helper(i32),
}

struct MapShape {
    map_type: u32,
    key: usize,
    value: usize,
    entries: u32,
    flags: u32,
}

struct Step {
    name: &'static str,
    /// Which of our maps or calls it stands for.
    stands_for: &'static str,
    map: Option<MapShape>,
    op: Op,
}

fn steps() -> Vec<Step> {
    let map = |map_type, key, value, entries| {
        Some(MapShape {
            map_type,
            key,
            value,
            entries,
            flags: 0,
        })
    };
    let conntrack = || {
        map(
            raw_bpf::LRU_HASH,
            size_of::<ConntrackKey>(),
            size_of::<ConntrackValue>(),
            capacity::CONNTRACK,
        )
    };
    vec![
        Step {
            name: "array_lookup",
            stands_for: "PALISADE_CONFIG (the generation)",
            map: map(raw_bpf::ARRAY, 4, 4, 2),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "percpu_array_lookup",
            stands_for: "PALISADE_SCRATCH, PALISADE_TUPLES, PALISADE_COUNTER_SLOTS",
            map: map(raw_bpf::PERCPU_ARRAY, 4, 256, 1),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "hash_lookup_endpoint",
            stands_for: "PALISADE_ENDPOINTS",
            map: map(
                raw_bpf::HASH,
                size_of::<EndpointKey>(),
                size_of::<EndpointPolicy>(),
                capacity::ENDPOINTS,
            ),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "hash_lookup_address",
            stands_for: "PALISADE_ADDRESSES",
            map: map(
                raw_bpf::HASH,
                size_of::<IdentityKey>(),
                size_of::<IdentitySlots>(),
                capacity::ADDRESSES,
            ),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "hash_lookup_rule",
            stands_for: "PALISADE_RULES_EXACT",
            map: map(
                raw_bpf::HASH,
                size_of::<RuleKey>(),
                size_of::<RuleValue>(),
                capacity::RULES_EXACT,
            ),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "lru_lookup_conntrack_hit",
            stands_for: "PALISADE_CONNTRACK, found",
            map: conntrack(),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "lru_lookup_conntrack_miss",
            stands_for: "PALISADE_CONNTRACK, not found",
            map: conntrack(),
            op: Op::Lookup { hit: false },
        },
        Step {
            name: "lru_update_conntrack",
            stands_for: "PALISADE_CONNTRACK insert (a new flow)",
            map: conntrack(),
            op: Op::Update,
        },
        Step {
            name: "lru_update_conntrack_cpu_lists",
            stands_for: "the same, with BPF_F_NO_COMMON_LRU (not used: for comparison)",
            map: Some(MapShape {
                map_type: raw_bpf::LRU_HASH,
                key: size_of::<ConntrackKey>(),
                value: size_of::<ConntrackValue>(),
                entries: capacity::CONNTRACK,
                flags: raw_bpf::NO_COMMON_LRU,
            }),
            op: Op::Update,
        },
        Step {
            name: "percpu_hash_lookup_counters",
            stands_for: "PALISADE_COUNTERS as a plain per-CPU hash (not used: for comparison)",
            map: map(
                raw_bpf::PERCPU_HASH,
                4,
                size_of::<Counters>(),
                capacity::COUNTERS,
            ),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "lru_percpu_lookup_counters",
            stands_for: "PALISADE_COUNTERS (interfaces without a counter slot)",
            map: map(
                raw_bpf::LRU_PERCPU_HASH,
                4,
                size_of::<Counters>(),
                capacity::COUNTERS,
            ),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "lru_percpu_lookup_rule_hits",
            stands_for: "PALISADE_RULE_HITS",
            map: map(
                raw_bpf::LRU_PERCPU_HASH,
                size_of::<RuleHitKey>(),
                size_of::<RuleHits>(),
                capacity::RULE_HITS,
            ),
            op: Op::Lookup { hit: true },
        },
        Step {
            name: "ktime_get_ns",
            stands_for: "bpf_ktime_get_ns (not used: the programs' clock before)",
            map: None,
            op: Op::Helper(raw_bpf::KTIME_GET_NS),
        },
        Step {
            name: "ktime_get_coarse_ns",
            stands_for: "bpf_ktime_get_coarse_ns (the programs' clock)",
            map: None,
            op: Op::Helper(raw_bpf::KTIME_GET_COARSE_NS),
        },
    ]
}

/// The steps the decision bench's conntrack hit takes, with how many times (from
/// `policy-ebpf`'s `main::tc_verdict`, `decision::decide_first` and `decision::decide_flow`):
/// it is a reply, so its own tuple is looked up and missed before its original is found; the
/// server is bound to its interface, so it is counted in its counter slot (the fourth array
/// lookup). (A new flow's path depends on the policy: it is not listed.)
const PATHS: &[(&str, &[(&str, u32)])] = &[(
    "conntrack_hit",
    &[
        ("percpu_array_lookup", 4),
        ("hash_lookup_endpoint", 1),
        ("ktime_get_coarse_ns", 1),
        ("array_lookup", 1),
        ("lru_lookup_conntrack_miss", 1),
        ("lru_lookup_conntrack_hit", 1),
    ],
)];

/// Loads the program doing `step` [`REPEATS`] times.
fn program(step: &Step) -> anyhow::Result<(Program, Option<Map>)> {
    let mut body = Vec::new();
    let map = match &step.map {
        Some(shape) => Some(Map::create(
            shape.map_type,
            shape.key,
            shape.value,
            shape.entries,
            shape.flags,
        )?),
        None => None,
    };
    // The key, then the value, zeroed on the stack below the frame pointer.
    let key_room = step.map.as_ref().map_or(0, |m| m.key.next_multiple_of(8));
    let value_room = step.map.as_ref().map_or(0, |m| m.value.next_multiple_of(8));
    let room = i16::try_from(key_room + value_room).context("key and value too large")?;
    for offset in (0..room).step_by(8) {
        body.push(Insn::store_dw_imm(10, offset - room, 0));
    }
    let key_at = -i32::from(room);
    let value_at = key_at + i32::try_from(key_room).context("key too large")?;
    for _ in 0..REPEATS {
        match (step.op, &map) {
            (Op::Helper(helper), _) => body.push(Insn::call(helper)),
            (op, Some(map)) => {
                body.extend(Insn::load_map(1, map));
                body.push(Insn::mov_reg(2, 10));
                body.push(Insn::add_imm(2, key_at));
                let helper = if let Op::Update = op {
                    body.push(Insn::mov_reg(3, 10));
                    body.push(Insn::add_imm(3, value_at));
                    body.push(Insn::mov_imm(4, 0));
                    raw_bpf::MAP_UPDATE_ELEM
                } else {
                    raw_bpf::MAP_LOOKUP_ELEM
                };
                body.push(Insn::call(helper));
            }
            (_, None) => anyhow::bail!("{}: a map step without a map", step.name),
        }
    }
    if let (Some(map), Some(shape), Op::Lookup { hit: true } | Op::Update) =
        (&map, &step.map, step.op)
    {
        map.insert_zeroed(&vec![0u8; shape.key])?;
    }
    let program = Program::load(step.name, &body)?;
    Ok((program, map))
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("step-cost bench: SKIPPED, needs root to load BPF programs");
        return;
    }
    if let Err(e) = run() {
        eprintln!("step-cost bench failed: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (runs, repeat) = if quick { (3, 100_000) } else { (7, 1_000_000) };
    let steps = steps();
    let empty = Program::empty().context("loading the empty program")?;
    let programs = steps
        .iter()
        .map(|step| program(step).with_context(|| format!("step {}", step.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The decision bench's allowed frame (a TCP SYN); the steps do not read it.
    let frame = Packet {
        src: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
        dst: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 200, 0, 1)),
        protocol: 6,
        sport: 40_000,
        dport: 80,
    }
    .to_frame();
    let mut samples = vec![Vec::with_capacity(runs); steps.len()];
    // Rounds: every program once per round, beside the empty program of the same round, so
    // that a busy moment of the machine weighs on all of them alike.
    for _ in 0..runs {
        let floor = ns(empty.test_run(&frame, repeat)?);
        for ((program, _map), samples) in programs.iter().zip(&mut samples) {
            let whole = ns(program.test_run(&frame, repeat)?);
            #[expect(clippy::cast_precision_loss, reason = "a small count")]
            samples.push((whole - floor) / REPEATS as f64);
        }
    }
    for (step, mut samples) in steps.iter().zip(samples) {
        samples.sort_by(f64::total_cmp);
        eprintln!(
            "  {:<28} median {:>6.1} ns [{:.1}, {:.1}]  ({})",
            step.name,
            samples[samples.len() / 2],
            samples[0],
            samples[samples.len() - 1],
            step.stands_for
        );
        println!(
            "{}",
            serde_json::json!({
                "kind": "step",
                "step": step.name,
                "stands_for": step.stands_for,
                "samples_ns": samples,
            })
        );
    }
    for (case, path) in PATHS {
        println!(
            "{}",
            serde_json::json!({"kind": "step_path", "case": case, "steps": path})
        );
    }
    Ok(())
}

fn ns(d: Duration) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "values far below 2^52 ns")]
    let n = d.as_nanos() as f64;
    n
}
