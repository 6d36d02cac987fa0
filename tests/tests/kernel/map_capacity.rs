//! Policy map capacities (`run --rule-capacity`, `--identity-capacity`) on the real maps: a
//! compiled policy that needs more entries than a map holds is refused whole, with an error
//! naming the map, the need and the option, and nothing written; raised capacities are what
//! the kernel creates, and hold more entries than the defaults.
//! Privileged: needs root (a failure under CI=true).

use std::path::Path;

use aya::maps::{MapData, MapInfo};
use palisade_tests::{require_root, scratch::Pins};
use policy_agent::{
    compiler::{LpmKey, MapContents},
    dataplane::{Capacities, Datapath, DataplaneError},
};
use policy_common::{
    capacity, map_names,
    rule::{PREFIX_ANY_PORT, PREFIX_FULL, RuleKey, RuleValue, action},
};

/// `count` rule entries of one table: whole keys (one port each) or, with `prefix` shorter
/// than `PREFIX_FULL`, trie entries.
fn rules(count: u32, prefix: u32) -> MapContents {
    let mut maps = MapContents::default();
    for i in 0..count {
        maps.rules.insert(
            LpmKey {
                prefix_len: prefix,
                data: RuleKey {
                    table: 1,
                    // One peer each: distinct keys whatever the prefix (a trie entry has
                    // no port to tell it apart).
                    peer_identity: 256 + i,
                    protocol: 6,
                    source_class: 0,
                    port_be: if prefix == PREFIX_FULL {
                        80u16.to_be()
                    } else {
                        0
                    },
                },
            },
            RuleValue {
                action: action::ALLOW,
                rule_ref: 0,
                flags: 0,
            },
        );
    }
    maps
}

fn info(pins: &Path, map: &str) -> MapInfo {
    MapInfo::from_pin(pins.join(map)).expect("reading the pinned map's info")
}

fn entries(pins: &Path, map: &str) -> usize {
    let data = MapData::from_pin(pins.join(map)).expect("opening the pinned map");
    if map == map_names::RULES {
        let trie: aya::maps::LpmTrie<_, RuleKey, RuleValue> =
            aya::maps::LpmTrie::try_from(aya::maps::Map::LpmTrie(data)).expect("a trie");
        return trie.keys().filter(Result::is_ok).count();
    }
    let map = aya::maps::Map::HashMap(data);
    let hash: aya::maps::HashMap<_, RuleKey, RuleValue> =
        aya::maps::HashMap::try_from(map).expect("a hash map");
    hash.keys().filter(Result::is_ok).count()
}

#[test]
fn a_policy_that_does_not_fit_is_refused_whole_and_named() {
    if !require_root("a_policy_that_does_not_fit_is_refused_whole_and_named") {
        return;
    }
    let pins = Pins::new("capacity-small");
    let capacities = Capacities {
        rules: 64,
        identities: capacity::IDENTITIES,
    };
    let mut datapath = Datapath::load_with(&pins.0, capacities).expect("loading the datapath");
    assert_eq!(info(&pins.0, map_names::RULES_EXACT).max_entries(), 64);
    assert_eq!(info(&pins.0, map_names::RULES).max_entries(), 64);

    // Fits: 64 whole keys and 64 prefixes, 128 entries in all.
    let mut fits = rules(64, PREFIX_FULL);
    fits.rules.extend(rules(64, PREFIX_ANY_PORT).rules);
    datapath
        .apply(&MapContents::default(), &fits)
        .expect("64 entries per map fit");
    assert_eq!(entries(&pins.0, map_names::RULES_EXACT), 64);
    assert_eq!(entries(&pins.0, map_names::RULES), 64);

    // One prefix too many: the trie's half of the check refuses it, writing nothing.
    let mut too_many_prefixes = rules(64, PREFIX_FULL);
    too_many_prefixes
        .rules
        .extend(rules(65, PREFIX_ANY_PORT).rules);
    let error = datapath
        .apply(&fits, &too_many_prefixes)
        .expect_err("65 prefixes do not fit 64");
    assert!(
        matches!(
            error,
            DataplaneError::Capacity {
                map: map_names::RULES,
                needed: 65,
                capacity: 64,
                option: "--rule-capacity",
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        entries(&pins.0, map_names::RULES),
        64,
        "the trie keeps what it held"
    );

    // One whole key too many: refused before anything is written.
    let too_many = rules(65, PREFIX_FULL);
    let error = datapath
        .apply(&fits, &too_many)
        .expect_err("65 whole keys do not fit 64");
    assert!(
        matches!(
            error,
            DataplaneError::Capacity {
                map: map_names::RULES_EXACT,
                needed: 65,
                capacity: 64,
                option: "--rule-capacity",
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("PALISADE_RULES_EXACT")
            && message.contains("65")
            && message.contains("--rule-capacity"),
        "{message}"
    );
    assert_eq!(
        entries(&pins.0, map_names::RULES_EXACT),
        64,
        "the maps keep what they held"
    );
    assert!(datapath.check_fits(&fits).is_ok());
}

#[test]
fn raised_capacities_hold_more_than_the_defaults() {
    if !require_root("raised_capacities_hold_more_than_the_defaults") {
        return;
    }
    let pins = Pins::new("capacity-large");
    let needed = capacity::RULES + 20_000;
    let mut datapath = Datapath::load_with(
        &pins.0,
        Capacities {
            rules: needed,
            identities: 2 * capacity::IDENTITIES,
        },
    )
    .expect("loading the datapath");
    for map in [map_names::RULES_EXACT, map_names::RULES] {
        assert_eq!(info(&pins.0, map).max_entries(), needed);
    }
    for map in [map_names::ADDRESSES, map_names::IDENTITIES] {
        assert_eq!(info(&pins.0, map).max_entries(), 2 * capacity::IDENTITIES);
    }
    let maps = rules(needed, PREFIX_FULL);
    datapath
        .apply(&MapContents::default(), &maps)
        .expect("a raised capacity holds more than the default");
    assert_eq!(entries(&pins.0, map_names::RULES_EXACT), needed as usize);

    // The same entries do not fit the default capacity.
    let pins = Pins::new("capacity-default");
    let datapath = Datapath::load(&pins.0).expect("loading the datapath");
    assert!(matches!(
        datapath.check_fits(&maps),
        Err(DataplaneError::Capacity { needed: n, .. }) if n == needed as usize
    ));
}
