//! What a compile has to do, chosen from what changed before anything is changed.
//!
//! The compiler gathers what it observed between the cluster it last compiled and the new one
//! into [`Observed`]; [`CompilePlan::choose`] turns that into one of four plans, with no state
//! of its own, so that the choice can be read (and tested) apart from carrying it out. The
//! compiler's executor (`Compiler::compile`) then runs exactly one plan.

/// What a compile observed, as plain facts: everything [`CompilePlan::choose`] decides on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Observed {
    /// The node or its addresses differ from the last compile's (or there was none).
    pub scope_changed: bool,
    /// What the policies observe (label keys, named ports, blocks, their numbering) changed.
    pub relevance_changed: bool,
    /// Of what the relevance and the Calico context observe, only what network sets list
    /// changed: the same sets with the same labels, the same host endpoints, the same blocks
    /// named by policies. Meaningful only with `relevance_changed`.
    pub only_set_members_changed: bool,
    /// The endpoints of a Service that a Calico rule matches changed: its addresses are
    /// blocks and its ports are in the rules.
    pub matched_services_changed: bool,
    /// What every ordered table is built on changed: network sets, host endpoints, or the
    /// labels of a namespace holding a set.
    pub calico_context_changed: bool,
    /// Any Calico resource changed (policies and tiers among them).
    pub calico_changed: bool,
    /// Some Namespace, Pod or NetworkPolicy was added, removed or changed.
    pub objects_changed: bool,
    /// The compiled state has a Calico context, which new memberships are written into.
    pub has_calico_context: bool,
}

/// One of the four ways a compile brings the maps to the new cluster, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CompilePlan {
    /// Nothing the maps depend on changed: only the copy of the EndpointSlices is followed.
    Nothing,
    /// Follow the changed objects: the views of the changed pods' addresses and the tables
    /// of the endpoints they reach. `every_endpoint`: Calico policies or tiers changed, so
    /// every local endpoint's tables are evaluated again.
    Update { every_endpoint: bool },
    /// Only what network sets list changed: every address and block gets the CIDR class of
    /// its new memberships, the pods' views and every endpoint's tables are refreshed;
    /// unchanged identities and tables keep their numbers.
    NewMemberships,
    /// Everything from scratch under new numbers; the datapath switches over as a
    /// renumbering.
    Rebuild,
}

impl CompilePlan {
    /// The cheapest plan that compiles `observed` exactly.
    pub(super) fn choose(observed: &Observed) -> Self {
        let Observed {
            scope_changed,
            relevance_changed,
            only_set_members_changed,
            matched_services_changed,
            calico_context_changed,
            calico_changed,
            objects_changed,
            has_calico_context,
        } = *observed;
        if relevance_changed
            && only_set_members_changed
            && !scope_changed
            && !matched_services_changed
            && has_calico_context
        {
            Self::NewMemberships
        } else if scope_changed
            || relevance_changed
            || matched_services_changed
            || calico_context_changed
        {
            Self::Rebuild
        } else if objects_changed || calico_changed {
            Self::Update {
                every_endpoint: calico_changed,
            }
        } else {
            Self::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CompilePlan, Observed};

    fn plan(observed: Observed) -> CompilePlan {
        CompilePlan::choose(&observed)
    }

    #[test]
    fn nothing_changed_is_nothing() {
        assert_eq!(plan(Observed::default()), CompilePlan::Nothing);
        let calico = Observed {
            has_calico_context: true,
            ..Observed::default()
        };
        assert_eq!(plan(calico), CompilePlan::Nothing);
    }

    #[test]
    fn changed_objects_are_followed() {
        let pods = Observed {
            objects_changed: true,
            ..Observed::default()
        };
        assert_eq!(
            plan(pods),
            CompilePlan::Update {
                every_endpoint: false
            }
        );
        let calico_policy = Observed {
            calico_changed: true,
            has_calico_context: true,
            ..Observed::default()
        };
        assert_eq!(
            plan(calico_policy),
            CompilePlan::Update {
                every_endpoint: true
            }
        );
    }

    #[test]
    fn what_the_numbering_rests_on_rebuilds() {
        for observed in [
            Observed {
                scope_changed: true,
                ..Observed::default()
            },
            Observed {
                relevance_changed: true,
                objects_changed: true,
                ..Observed::default()
            },
            Observed {
                matched_services_changed: true,
                ..Observed::default()
            },
            Observed {
                calico_context_changed: true,
                calico_changed: true,
                has_calico_context: true,
                ..Observed::default()
            },
        ] {
            assert_eq!(plan(observed), CompilePlan::Rebuild, "{observed:?}");
        }
    }

    #[test]
    fn only_set_members_is_new_memberships() {
        let members = Observed {
            relevance_changed: true,
            only_set_members_changed: true,
            calico_context_changed: true,
            calico_changed: true,
            has_calico_context: true,
            ..Observed::default()
        };
        assert_eq!(plan(members), CompilePlan::NewMemberships);
    }

    #[test]
    fn new_memberships_need_all_else_unchanged() {
        let members = Observed {
            relevance_changed: true,
            only_set_members_changed: true,
            calico_context_changed: true,
            calico_changed: true,
            has_calico_context: true,
            ..Observed::default()
        };
        for observed in [
            Observed {
                scope_changed: true,
                ..members
            },
            Observed {
                matched_services_changed: true,
                ..members
            },
            // No context to write memberships into: the first Calico resource.
            Observed {
                has_calico_context: false,
                ..members
            },
            // The relevance is what memberships change: without a change there are none
            // (and the context changing otherwise is a rebuild).
            Observed {
                relevance_changed: false,
                ..members
            },
        ] {
            assert_eq!(plan(observed), CompilePlan::Rebuild, "{observed:?}");
        }
    }
}
