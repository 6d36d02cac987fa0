//! A cell written as rule entries: an `ANY`-protocol entry, protocol entries where a
//! protocol's most common verdict differs from it, and aligned port prefixes where a range
//! differs from its protocol's. Separate because it is the only part that knows the map's
//! key layout.

use policy_common::rule::{
    PREFIX_ANY_PORT, PREFIX_ANY_PROTOCOL, RuleKey, RuleValue, action as verdict_action,
    flags as rule_flags,
};

use super::PeerVerdicts;
use crate::compiler::{LpmKey, ordered::Verdict, ports::port_prefixes, rules::Entries};

/// The rule entries storing `cell` for `(table, identity)`.
pub fn entries(table: u32, identity: u32, cell: &PeerVerdicts) -> Entries {
    let mut out = Entries::new();
    let mut insert = |prefix_len: u32, class: u8, protocol: u8, port: u16, verdict: Verdict| {
        let key = LpmKey {
            prefix_len,
            data: RuleKey {
                table,
                peer_identity: identity,
                protocol,
                source_class: class,
                port_be: port.to_be(),
            },
        };
        let action = if verdict.allow {
            verdict_action::ALLOW
        } else {
            verdict_action::DENY
        };
        out.insert(
            key,
            RuleValue {
                action,
                rule_ref: verdict.rule_ref,
                flags: if verdict.log { rule_flags::LOG } else { 0 },
            },
        );
    };
    insert(PREFIX_ANY_PROTOCOL, 0, 0, 0, cell.other);
    for ((class, protocol), intervals) in cell.all_intervals() {
        // The protocol's entry carries its most common verdict; ranges differing from it get
        // port prefixes.
        let span = |i: usize| {
            let start = intervals[i].0;
            let end = intervals.get(i + 1).map_or(1 << 16, |(next, _)| *next);
            end - start
        };
        let mut coverage: Vec<(Verdict, u32)> = Vec::new();
        for (i, (_, verdict)) in intervals.iter().enumerate() {
            match coverage.iter_mut().find(|(v, _)| v == verdict) {
                Some((_, total)) => *total += span(i),
                None => coverage.push((*verdict, span(i))),
            }
        }
        let Some(&(common, _)) = coverage.iter().max_by_key(|(_, total)| *total) else {
            continue;
        };
        if common != cell.other {
            insert(PREFIX_ANY_PORT, class, protocol, 0, common);
        }
        for (i, (start, verdict)) in intervals.iter().enumerate() {
            if *verdict == common {
                continue;
            }
            let last = start + span(i) - 1;
            let (first, last) = (
                u16::try_from(*start).unwrap_or(u16::MAX),
                u16::try_from(last).unwrap_or(u16::MAX),
            );
            for (prefix_start, bits) in port_prefixes(first, last) {
                insert(
                    PREFIX_ANY_PORT + bits,
                    class,
                    protocol,
                    prefix_start,
                    *verdict,
                );
            }
        }
    }
    out
}
