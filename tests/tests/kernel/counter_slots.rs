//! Per-interface counters by slot on the real datapath (`BPF_PROG_TEST_RUN`, whose packets
//! arrive on the namespace's loopback): the packets of an endpoint bound to its interface
//! are counted in the counter slot the agent's binding gave it, those of no endpoint by
//! ifindex, both reported under the interface; and a restarted agent takes the slots over
//! with their counts. Privileged: needs root (a failure under CI=true).

use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuHashMap};
use nix::net::if_::if_nametoindex;
use palisade_tests::{require_root, scratch::Scratch};
use policy_agent::{
    compiler::{Compiler, MapContents, Scope, identity_addr},
    dataplane::Datapath,
    datastore::file::FileDatastore,
    replay::Direction,
};
use policy_common::{
    counters::{Counters, drop_reason},
    endpoint::{EndpointKey, NO_COUNTER_SLOT},
    map_names,
};

use crate::shop::{CLIENT, PODS, SYN, WEB, ip, tcp};

/// What `PALISADE_COUNTERS` (by ifindex) holds for `ifindex`, summed over CPUs.
fn counted_by_ifindex(scratch: &Scratch, ifindex: u32) -> Counters {
    let data = MapData::from_pin(scratch.pins.join(map_names::COUNTERS)).expect("the pin");
    let map: PerCpuHashMap<MapData, u32, Counters> =
        PerCpuHashMap::try_from(aya::maps::Map::PerCpuLruHashMap(data)).expect("its type");
    let mut total = Counters::default();
    if let Ok(per_cpu) = map.get(&ifindex, 0) {
        for cpu in per_cpu.iter() {
            total.add(cpu);
        }
    }
    total
}

#[test]
fn an_endpoint_s_packets_are_counted_in_its_slot_and_kept_across_a_restart() {
    if !require_root("an_endpoint_s_packets_are_counted_in_its_slot_and_kept_across_a_restart") {
        return;
    }
    let scratch = Scratch::new("counter-slots", "restart");
    scratch.write("pods.yaml", PODS);
    let snapshot = FileDatastore::new(&scratch.manifests)
        .load()
        .expect("reading the manifests");
    let maps = Compiler::new()
        .compile(&snapshot.cluster, &Scope::default())
        .maps;
    let lo = if_nametoindex("lo").expect("the loopback");
    let routes = BTreeMap::from([(ip(WEB), "lo".to_owned())]);
    let web = EndpointKey {
        addr: identity_addr(ip(WEB)),
    };

    let mut datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
    let bound = datapath
        .bind_endpoints(&maps, &routes)
        .expect("binding the endpoints");
    let slot = bound.endpoints[&web].counter_slot;
    assert_eq!(bound.endpoints[&web].ifindex, lo);
    assert_ne!(slot, NO_COUNTER_SLOT, "a bound endpoint gets a slot");
    // Client has no route: unbound, counted by ifindex.
    let client = EndpointKey {
        addr: identity_addr(ip(CLIENT)),
    };
    assert_eq!(bound.endpoints[&client].counter_slot, NO_COUNTER_SLOT);
    datapath
        .apply(&MapContents::default(), &bound)
        .expect("programming");

    // No policy selects web: three new flows to it pass.
    for port in 0..3 {
        let (_, frame) = tcp(CLIENT, 40_000 + port, 8080, SYN);
        let verdict = datapath
            .test_run(Direction::ToEndpoint, &frame, 1)
            .expect("test run");
        assert!(verdict.allowed());
    }
    // A packet to an address of no endpoint: dropped before any endpoint is found, so
    // counted by ifindex.
    let mut stray = tcp(CLIENT, 40_000, 8080, SYN).1;
    stray[14 + 16..14 + 20].copy_from_slice(&[10, 42, 0, 99]);
    let verdict = datapath
        .test_run(Direction::ToEndpoint, &stray, 1)
        .expect("test run");
    assert!(!verdict.allowed());

    let reported = datapath.counters().expect("reading the counters")[&lo];
    assert_eq!(reported.allowed, 3);
    assert_eq!(
        reported.drops[usize::from(drop_reason::UNKNOWN_ENDPOINT)],
        1
    );
    let by_ifindex = counted_by_ifindex(&scratch, lo);
    assert_eq!(
        (
            by_ifindex.allowed,
            by_ifindex.drops[usize::from(drop_reason::UNKNOWN_ENDPOINT)]
        ),
        (0, 1),
        "web's packets went to its slot, the stray one by ifindex"
    );
    drop(datapath);

    // A new agent on the same pins: web keeps its slot, and the slot its counts.
    let mut restarted = Datapath::load(&scratch.pins).expect("loading the datapath again");
    let rebound = restarted
        .bind_endpoints(&maps, &routes)
        .expect("binding the endpoints");
    assert_eq!(rebound.endpoints[&web].counter_slot, slot);
    let reported = restarted.counters().expect("reading the counters")[&lo];
    assert_eq!(reported.allowed, 3, "the counts outlive the restart");
}
