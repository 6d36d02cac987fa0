//! The agent's periodic resync on real traffic (issue 18): an endpoint entry removed from the
//! pinned maps behind the agent's back (the server then looks like no endpoint of this node,
//! so nothing isolates it) is found and written back, so the stranger is denied again.
//! `examples/resync/scenario.yaml`, with the removal made by this test between its steps.
//! Privileged: needs root (a failure under CI=true).

use std::{
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use aya::maps::{HashMap, Map, MapData};
use palisade_tests::lab::{Lab, LabOptions, Scenario};
use policy_agent::compiler::identity_addr;
use policy_common::{
    endpoint::{EndpointKey, EndpointPolicy},
    map_names,
};

/// The resync runs every second: a repair is expected within this.
const REPAIR_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn the_resync_repairs_an_endpoint_entry_removed_behind_the_agent() {
    let Some(_turn) =
        crate::lab_turn("the_resync_repairs_an_endpoint_entry_removed_behind_the_agent")
    else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/resync/scenario.yaml");
    let scenario = Scenario::from_file(&path).expect("the scenario");
    let mut lab = Lab::start(&scenario, &LabOptions::default()).expect("starting the lab");
    let mut failures = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        if i == 1 {
            let pins = lab.pin_dir();
            let data = MapData::from_pin(pins.join(map_names::ENDPOINTS)).expect("the pinned map");
            let mut endpoints: HashMap<_, EndpointKey, EndpointPolicy> =
                HashMap::try_from(Map::HashMap(data)).expect("a hash map");
            let server = EndpointKey {
                addr: identity_addr(Ipv4Addr::new(10, 45, 0, 11).into()),
            };
            endpoints
                .remove(&server)
                .expect("removing the server's entry");
            let started = Instant::now();
            while endpoints.get(&server, 0).is_err() {
                assert!(
                    started.elapsed() < REPAIR_DEADLINE,
                    "no repair within {REPAIR_DEADLINE:?}:\n{}",
                    lab.agent_log_tail().join("\n")
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("repaired after {:?}", started.elapsed());
        }
        let report = lab.run_step(i + 1, step).expect("running a step");
        eprintln!("{}", report.render_table());
        if !report.all_ok() {
            failures.push(format!("step {}", i + 1));
        }
    }
    let log = lab.agent_log_tail().join("\n");
    lab.finish().expect("finishing the lab");
    assert!(failures.is_empty(), "failed: {failures:?}\n{log}");
    assert!(
        log.contains("resync: the map differed from the applied state; repaired")
            && log.contains("map=\"endpoints\"")
            && log.contains("missing=1"),
        "the repair is logged with what it found:\n{log}"
    );
}
