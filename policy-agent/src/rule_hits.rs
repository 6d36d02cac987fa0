//! Per-rule counts: what the datapath counted per rule entry (`PALISADE_RULE_HITS`, see
//! `policy_common::rule_hits`), named as (policy, rule, verdict) and kept as totals.
//!
//! The kernel counts per (table, `rule_ref`, verdict); one rule of one policy is in as many
//! tables as there are distinct sets of policies selecting endpoints, and a policy change
//! gives tables new numbers. So each read is turned into what each entry counted since the
//! last read, attributed to its rule through the tables' names, and added to that rule's
//! total: totals only grow while the policy exists, however its tables are renumbered. A
//! rule's series goes when its policy is no longer in any table. The label set is bounded by
//! the rules that exist (and were hit), never by addresses or flows.

use std::collections::{BTreeMap, BTreeSet};

use policy_common::{
    rule::{PROFILE_RULE_REF, TIER_DEFAULT_RULE, action},
    rule_hits::{RuleHitKey, RuleHits},
};
use serde::{Deserialize, Serialize};

use crate::{
    compiler::MapContents,
    flows::{PolicyRef, TableNames},
};

/// One rule of one policy, with the verdict its entries gave.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleId {
    #[serde(flatten)]
    pub policy: PolicyRef,
    /// `ingress[N]` / `egress[N]` (the rule's index in the policy's list), `default` (the
    /// default action of the tier the policy opens: Calico's implicit end-of-tier deny), or
    /// `profile` (no tier applied: kind `profile`, no policy).
    pub rule: String,
    /// `allow` or `deny`.
    pub action: String,
}

/// What a rule decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Packets policy decided with the rule (first packets, re-checks, untracked packets).
    pub packets: u64,
    /// Of those, first packets that opened a tracked connection.
    pub flows: u64,
}

/// One rule's totals, as the status file and the web view list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    #[serde(flatten)]
    pub rule: RuleId,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The totals per rule, following the kernel's counts read after read.
#[derive(Debug, Default)]
pub struct RuleHitTotals {
    last: BTreeMap<RuleHitKey, RuleHits>,
    totals: BTreeMap<RuleId, Counts>,
}

impl RuleHitTotals {
    /// Takes a new read of the kernel's counts, named by `tables` (the current compile's).
    /// An entry counting less than at the last read was evicted and started again: all it
    /// counts is new. Entries of tables `tables` no longer names (a sync between two reads)
    /// cannot be attributed: what they counted since the last read is left out.
    pub fn update(
        &mut self,
        read: BTreeMap<RuleHitKey, RuleHits>,
        tables: &BTreeMap<u32, TableNames>,
    ) {
        for (key, hits) in &read {
            let before = self.last.get(key).copied().unwrap_or_default();
            let delta = if hits.packets >= before.packets && hits.flows >= before.flows {
                Counts {
                    packets: hits.packets - before.packets,
                    flows: hits.flows - before.flows,
                }
            } else {
                Counts {
                    packets: hits.packets,
                    flows: hits.flows,
                }
            };
            if delta == Counts::default() {
                continue;
            }
            let Some(rule) = rule_id(key, tables) else {
                continue;
            };
            let total = self.totals.entry(rule).or_default();
            total.packets += delta.packets;
            total.flows += delta.flows;
        }
        self.last = read;
        let live: BTreeSet<&PolicyRef> = tables.values().flat_map(|t| &t.members).collect();
        self.totals
            .retain(|rule, _| rule.policy.kind == "profile" || live.contains(&rule.policy));
    }

    /// Every rule hit so far, in order.
    pub fn counts(&self) -> Vec<RuleCount> {
        self.totals
            .iter()
            .map(|(rule, counts)| RuleCount {
                rule: rule.clone(),
                counts: *counts,
            })
            .collect()
    }
}

/// Every rule the compiled maps can decide a packet with (their allow and deny entries),
/// named through their tables as the kernel's counts are: what `policy-agent compile` lists
/// the counts of.
pub fn rules_of(maps: &MapContents, tables: &BTreeMap<u32, TableNames>) -> BTreeSet<RuleId> {
    maps.rules
        .iter()
        .filter_map(|(key, value)| {
            let allowed = match value.action {
                action::ALLOW => 1,
                action::DENY => 0,
                _ => return None,
            };
            let key = RuleHitKey {
                table: key.data.table,
                rule_ref: value.rule_ref,
                allowed,
            };
            rule_id(&key, tables)
        })
        .collect()
}

/// The rules of a compile with what a running agent counted for each (its status file's
/// totals; a rule it has not counted shows 0), then the rules it counted that the compile
/// does not have (a policy changed since). One line each, for `policy-agent compile`;
/// without counts, the rules alone.
pub fn render_counts(rules: &BTreeSet<RuleId>, counted: Option<&[RuleCount]>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let Some(counted) = counted else {
        let _ = writeln!(
            out,
            "rules ({}; with --status-file of a running agent, what it counted for each):",
            rules.len()
        );
        for rule in rules {
            let _ = writeln!(out, "  {}", rule_label(rule));
        }
        return out;
    };
    let counts: BTreeMap<&RuleId, Counts> = counted.iter().map(|c| (&c.rule, c.counts)).collect();
    let _ = writeln!(out, "rule counts ({} rules):", rules.len());
    for rule in rules {
        let c = counts.get(rule).copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}  {} packets, {} flows",
            rule_label(rule),
            c.packets,
            c.flows
        );
    }
    for count in counted.iter().filter(|c| !rules.contains(&c.rule)) {
        let _ = writeln!(
            out,
            "  {}  {} packets, {} flows (counted, not in this compile)",
            rule_label(&count.rule),
            count.counts.packets,
            count.counts.flows
        );
    }
    out
}

/// `KIND [NAMESPACE/]NAME RULE ACTION`, as the web view labels a rule.
fn rule_label(rule: &RuleId) -> String {
    let policy = &rule.policy;
    if policy.kind == "profile" {
        return format!("profile {}", rule.action);
    }
    let name = if policy.namespace.is_empty() {
        policy.name.clone()
    } else {
        format!("{}/{}", policy.namespace, policy.name)
    };
    format!("{} {name} {} {}", policy.kind, rule.rule, rule.action)
}

/// The rule a kernel entry stands for, named through its table.
fn rule_id(key: &RuleHitKey, tables: &BTreeMap<u32, TableNames>) -> Option<RuleId> {
    let names = tables.get(&key.table)?;
    let action = if key.allowed != 0 { "allow" } else { "deny" }.to_owned();
    if key.rule_ref == PROFILE_RULE_REF {
        return Some(RuleId {
            policy: PolicyRef {
                kind: "profile".to_owned(),
                ..PolicyRef::default()
            },
            rule: "profile".to_owned(),
            action,
        });
    }
    let policy = names.members.get((key.rule_ref >> 16) as usize)?.clone();
    let index = key.rule_ref & 0xffff;
    let rule = if index == TIER_DEFAULT_RULE {
        "default".to_owned()
    } else {
        format!("{}[{index}]", names.direction)
    };
    Some(RuleId {
        policy,
        rule,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str) -> PolicyRef {
        PolicyRef {
            kind: "GlobalNetworkPolicy".to_owned(),
            namespace: String::new(),
            name: name.to_owned(),
        }
    }

    fn tables(entries: &[(u32, &[&str])]) -> BTreeMap<u32, TableNames> {
        entries
            .iter()
            .map(|(table, members)| {
                let names = TableNames {
                    direction: "ingress".to_owned(),
                    policies: members.iter().map(|m| (*m).to_owned()).collect(),
                    members: members.iter().map(|m| policy(m)).collect(),
                };
                (*table, names)
            })
            .collect()
    }

    fn key(table: u32, member: u32, rule: u32, allowed: u32) -> RuleHitKey {
        RuleHitKey {
            table,
            rule_ref: member << 16 | rule,
            allowed,
        }
    }

    fn read(entries: &[(RuleHitKey, u64, u64)]) -> BTreeMap<RuleHitKey, RuleHits> {
        entries
            .iter()
            .map(|(key, packets, flows)| {
                let hits = RuleHits {
                    packets: *packets,
                    flows: *flows,
                };
                (*key, hits)
            })
            .collect()
    }

    fn count(totals: &RuleHitTotals, name: &str, rule: &str, action: &str) -> Counts {
        totals
            .counts()
            .into_iter()
            .find(|c| c.rule.policy.name == name && c.rule.rule == rule && c.rule.action == action)
            .map(|c| c.counts)
            .unwrap_or_default()
    }

    #[test]
    fn one_rule_in_many_tables_is_one_total_that_survives_renumbering() {
        let mut totals = RuleHitTotals::default();
        // `web` is alone in table 1 and second in table 2 (with `db`).
        let named = tables(&[(1, &["web"]), (2, &["db", "web"])]);
        totals.update(
            read(&[
                (key(1, 0, 1, 1), 3, 2),
                (key(2, 1, 1, 1), 4, 4),
                (key(2, 0, 0, 0), 5, 0),
            ]),
            &named,
        );
        let web = |t: &RuleHitTotals| count(t, "web", "ingress[1]", "allow");
        assert_eq!(
            web(&totals),
            Counts {
                packets: 7,
                flows: 6
            }
        );
        assert_eq!(count(&totals, "db", "ingress[0]", "deny").packets, 5);

        // Read again: only what was counted since is added.
        totals.update(
            read(&[
                (key(1, 0, 1, 1), 10, 2),
                (key(2, 1, 1, 1), 4, 4),
                (key(2, 0, 0, 0), 5, 0),
            ]),
            &named,
        );
        assert_eq!(web(&totals).packets, 14);

        // A policy change renumbers web's table: its entries start from zero under table 3,
        // and the total goes on growing; `db` is gone, and with it its series.
        let renumbered = tables(&[(3, &["web"])]);
        totals.update(read(&[(key(3, 0, 1, 1), 1, 1)]), &renumbered);
        assert_eq!(
            web(&totals),
            Counts {
                packets: 15,
                flows: 7
            }
        );
        assert_eq!(
            count(&totals, "db", "ingress[0]", "deny"),
            Counts::default()
        );
        assert_eq!(totals.counts().len(), 1);
    }

    #[test]
    fn an_evicted_entry_counts_again_from_zero_and_defaults_are_named() {
        let mut totals = RuleHitTotals::default();
        let named = tables(&[(1, &["web"])]);
        let default = key(1, 0, TIER_DEFAULT_RULE, 0);
        totals.update(read(&[(default, 5, 0)]), &named);
        // Evicted and hit twice since: fewer than last read, so all of it is new.
        totals.update(read(&[(default, 2, 0)]), &named);
        assert_eq!(count(&totals, "web", "default", "deny").packets, 7);
        // An entry of a table no compile names is left out.
        totals.update(read(&[(default, 2, 0), (key(9, 0, 0, 1), 4, 4)]), &named);
        assert_eq!(totals.counts().len(), 1);
        // The profile's allow.
        let profile = RuleHitKey {
            table: 1,
            rule_ref: PROFILE_RULE_REF,
            allowed: 1,
        };
        totals.update(read(&[(default, 2, 0), (profile, 1, 1)]), &named);
        let counts = totals.counts();
        assert!(
            counts
                .iter()
                .any(|c| c.rule.policy.kind == "profile" && c.counts.flows == 1)
        );
    }
}
