//! The periodic resync's repair on the real maps (issue 18): the policy and Service maps read
//! back equal
//! what was written, and entries changed behind the agent's back (removed, added, rewritten
//! through the pinned maps, as another process could) are found, counted per map and kind,
//! and written back to the applied state, with the policy generation bumped.
//! Privileged: needs root (a failure under CI=true).

use std::collections::BTreeSet;

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, lpm_trie::Key};
use palisade_tests::{require_root, scratch::Pins};
use policy_agent::{
    compiler::{LpmKey, MapContents},
    dataplane::{Datapath, DriftCounts, FrontendSpec, ServiceMaps},
};
use policy_common::{
    endpoint::{EndpointKey, EndpointPolicy},
    identity::{IdentityKey, IdentitySlots, IdentityValue},
    map_names,
    rule::{PREFIX_FULL, RuleKey, RuleValue, action},
    service::{BackendKey, FrontendValue, TransportAddr},
};

fn rule(table: u32, prefix_len: u32) -> LpmKey<RuleKey> {
    LpmKey {
        prefix_len,
        data: RuleKey {
            table,
            peer_identity: 300,
            protocol: 6,
            source_class: 0,
            port_be: if prefix_len == PREFIX_FULL {
                80u16.to_be()
            } else {
                0
            },
        },
    }
}

fn identity(last: u8, prefix_len: u32) -> LpmKey<IdentityKey> {
    let mut addr = [0u8; 16];
    addr[10] = 0xff;
    addr[11] = 0xff;
    addr[12] = 10;
    addr[15] = last;
    LpmKey {
        prefix_len,
        data: IdentityKey { addr },
    }
}

fn endpoint(last: u8) -> EndpointKey {
    EndpointKey {
        addr: identity(last, 128).data.addr,
    }
}

/// Whole and prefix entries in each split table, and two endpoints.
fn applied() -> MapContents {
    let allow = RuleValue {
        action: action::ALLOW,
        rule_ref: 0,
        flags: 0,
    };
    let value = |pod_identity| IdentityValue {
        pod_identity,
        cidr_identity: 2,
    };
    let mut maps = MapContents::default();
    maps.rules.insert(rule(1, PREFIX_FULL), allow);
    maps.rules.insert(rule(2, PREFIX_FULL), allow);
    maps.rules.insert(rule(3, PREFIX_FULL - 16), allow);
    maps.identities.insert(identity(1, 128), value(300));
    maps.identities.insert(identity(2, 128), value(301));
    maps.identities.insert(identity(0, 120), value(0));
    for last in [1, 2] {
        let mut policy = EndpointPolicy::default();
        policy.ingress.isolated = 1;
        maps.endpoints.insert(endpoint(last), policy);
    }
    maps
}

fn pinned(pins: &Pins, name: &str) -> MapData {
    MapData::from_pin(pins.0.join(name)).expect("opening a pinned map")
}

fn generation(pins: &Pins) -> u32 {
    let config: Array<_, u32> =
        Array::try_from(Map::Array(pinned(pins, map_names::CONFIG))).expect("the config array");
    config
        .get(&policy_common::config::GENERATION, 0)
        .expect("the generation")
}

#[test]
fn drift_in_the_pinned_maps_is_found_and_repaired() {
    if !require_root("drift_in_the_pinned_maps_is_found_and_repaired") {
        return;
    }
    let pins = Pins::new("drift-repair");
    let mut datapath = Datapath::load(&pins.0).expect("loading the datapath");
    let expected = applied();
    datapath
        .apply(&MapContents::default(), &expected)
        .expect("programming the applied state");
    assert_eq!(
        datapath.read_policy_maps().expect("reading the maps back"),
        expected,
        "the maps read back as written"
    );
    let nothing = datapath.repair(&expected).expect("a resync");
    assert_eq!(
        nothing.total(),
        0,
        "no drift right after a write: {nothing:?}"
    );

    // Behind the agent's back: a rule removed, a trie prefix added, an endpoint rewritten.
    let mut rules: HashMap<_, RuleKey, RuleValue> =
        HashMap::try_from(Map::HashMap(pinned(&pins, map_names::RULES_EXACT))).expect("rules");
    rules
        .remove(&rule(2, PREFIX_FULL).data)
        .expect("removing a rule");
    let mut prefixes: LpmTrie<_, IdentityKey, IdentitySlots> =
        LpmTrie::try_from(Map::LpmTrie(pinned(&pins, map_names::IDENTITIES))).expect("trie");
    let stranger = identity(0, 112);
    let forged = IdentityValue {
        pod_identity: 300,
        cidr_identity: 2,
    };
    prefixes
        .insert(
            &Key::new(stranger.prefix_len, stranger.data),
            IdentitySlots::both(forged),
            0,
        )
        .expect("adding a prefix");
    let mut endpoints: HashMap<_, EndpointKey, EndpointPolicy> =
        HashMap::try_from(Map::HashMap(pinned(&pins, map_names::ENDPOINTS))).expect("endpoints");
    endpoints
        .insert(endpoint(2), EndpointPolicy::default(), 0)
        .expect("rewriting an endpoint: no longer isolated");
    let before = generation(&pins);

    let drift = datapath.repair(&expected).expect("a resync");
    let one = |missing, unexpected, changed| DriftCounts {
        missing,
        unexpected,
        changed,
    };
    assert_eq!(drift.rules, one(1, 0, 0), "{drift:?}");
    assert_eq!(drift.identities, one(0, 1, 0), "{drift:?}");
    assert_eq!(drift.endpoints, one(0, 0, 1), "{drift:?}");
    assert_eq!(
        datapath.read_policy_maps().expect("reading the maps back"),
        expected,
        "the repair brings back the applied state"
    );
    assert_ne!(
        generation(&pins),
        before,
        "verdicts may have been wrong: tracked connections are checked again"
    );
    assert_eq!(datapath.repair(&expected).expect("a resync").total(), 0);
}

/// The Service maps too: a frontend removed and a backend pair added behind the agent's back
/// are found and put back as the agent last wrote them.
#[test]
fn drift_in_the_service_maps_is_found_and_repaired() {
    if !require_root("drift_in_the_service_maps_is_found_and_repaired") {
        return;
    }
    let pins = Pins::new("drift-services");
    let mut datapath = Datapath::load(&pins.0).expect("loading the datapath");
    let spec = FrontendSpec {
        addr: "10.96.0.10".parse().expect("an address"),
        protocol: 6,
        port: 80,
        backends: [("10.42.0.5".parse().expect("an address"), 8080)].into(),
    };
    let expected = ServiceMaps::build([&spec], &BTreeSet::new());
    datapath
        .sync_services(&expected)
        .expect("programming the Service maps");
    assert_eq!(
        datapath.read_service_maps().expect("reading them back"),
        expected
    );
    let nothing = datapath.repair(&MapContents::default()).expect("a resync");
    assert_eq!(nothing.total(), 0, "{nothing:?}");

    let mut frontends: HashMap<_, TransportAddr, FrontendValue> =
        HashMap::try_from(Map::HashMap(pinned(&pins, map_names::SERVICES))).expect("frontends");
    let frontend = *expected.frontends.keys().next().expect("one frontend");
    frontends.remove(&frontend).expect("removing the frontend");
    let mut backends: HashMap<_, BackendKey, u32> =
        HashMap::try_from(Map::HashMap(pinned(&pins, map_names::SERVICE_BACKENDS)))
            .expect("backends");
    let forged = BackendKey {
        frontend,
        backend: expected
            .backends
            .iter()
            .next()
            .map(|pair| TransportAddr {
                port: 9,
                ..pair.backend
            })
            .expect("a pair"),
    };
    backends.insert(forged, 1, 0).expect("adding a pair");

    let drift = datapath.repair(&MapContents::default()).expect("a resync");
    let one = |missing, unexpected, changed| DriftCounts {
        missing,
        unexpected,
        changed,
    };
    assert_eq!(drift.services, one(1, 0, 0), "{drift:?}");
    assert_eq!(drift.service_backends, one(0, 1, 0), "{drift:?}");
    assert_eq!(
        datapath.read_service_maps().expect("reading them back"),
        expected,
        "the repair brings back what the agent wrote"
    );
    assert_eq!(
        datapath
            .repair(&MapContents::default())
            .expect("a resync")
            .total(),
        0
    );
}
