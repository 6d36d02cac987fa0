//! Reading the policy and Service maps back from the kernel, to find and repair drift: entries
//! that differ from what the agent last wrote (another process writing the pinned maps, a
//! write lost to a bug). The agent's periodic resync compares them with its applied state.

use std::collections::{BTreeMap, BTreeSet};

use policy_common::map_names;

use super::{Datapath, DataplaneError, MapDelta, ServiceMaps, renumber::KernelMaps};
use crate::compiler::MapContents;

/// How the kernel's maps differ from what the agent wrote, per map: entries missing, entries
/// the agent never wrote, and entries with another value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drift {
    pub endpoints: DriftCounts,
    pub identities: DriftCounts,
    pub rules: DriftCounts,
    /// `PALISADE_SERVICES` (frontends) and `PALISADE_SERVICE_BACKENDS`.
    pub services: DriftCounts,
    pub service_backends: DriftCounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriftCounts {
    pub missing: usize,
    pub unexpected: usize,
    pub changed: usize,
}

impl DriftCounts {
    pub fn total(&self) -> usize {
        self.missing + self.unexpected + self.changed
    }
}

impl Drift {
    /// What `kernel` lacks, has in excess, or holds differently from `expected`.
    pub fn between(kernel: &MapContents, expected: &MapContents) -> Self {
        Self {
            endpoints: counts(&kernel.endpoints, &expected.endpoints),
            identities: counts(&kernel.identities, &expected.identities),
            rules: counts(&kernel.rules, &expected.rules),
            ..Self::default()
        }
    }

    pub fn total(&self) -> usize {
        self.per_map().iter().map(|(_, c)| c.total()).sum()
    }

    /// The counts with the map each belongs to, for logs and metrics.
    pub fn per_map(&self) -> [(&'static str, DriftCounts); 5] {
        [
            ("endpoints", self.endpoints),
            ("identities", self.identities),
            ("rules", self.rules),
            ("services", self.services),
            ("service_backends", self.service_backends),
        ]
    }
}

fn counts<K: Ord, V: PartialEq>(
    kernel: &std::collections::BTreeMap<K, V>,
    expected: &std::collections::BTreeMap<K, V>,
) -> DriftCounts {
    let keys: BTreeSet<&K> = kernel.keys().chain(expected.keys()).collect();
    let mut counts = DriftCounts::default();
    for key in keys {
        match (kernel.get(key), expected.get(key)) {
            (None, Some(_)) => counts.missing += 1,
            (Some(_), None) => counts.unexpected += 1,
            (Some(held), Some(wanted)) if held != wanted => counts.changed += 1,
            _ => {}
        }
    }
    counts
}

impl Datapath {
    /// Every entry of the policy maps (endpoints, identities, rules) as the kernel holds it.
    pub fn read_kernel_maps(&self) -> Result<KernelMaps, DataplaneError> {
        let mut endpoints = std::collections::BTreeMap::new();
        for entry in self.endpoints.iter() {
            let (key, value) = entry.map_err(|source| DataplaneError::MapUpdate {
                operation: "read",
                map: map_names::ENDPOINTS,
                source,
            })?;
            endpoints.insert(key, value);
        }
        Ok(KernelMaps {
            endpoints,
            identities: self.identities.entries()?,
            rules: self.rules.entries()?,
        })
    }

    /// The policy maps as the programs read them now, in the compiler's terms (an endpoint
    /// stamped with another numbering than the current one shows it, and so differs).
    pub fn read_policy_maps(&self) -> Result<MapContents, DataplaneError> {
        Ok(self.read_kernel_maps()?.view(self.numbering))
    }

    /// Compares the policy maps with `expected` (what the agent last wrote) and writes what
    /// differs back, in the usual order (and with a generation bump, since verdicts may have
    /// been wrong meanwhile). Returns what was found.
    /// The Service maps are compared with what the agent last wrote to them and repaired the
    /// same way, in their own order (see [`Datapath::sync_services`]).
    pub fn repair(&mut self, expected: &MapContents) -> Result<Drift, DataplaneError> {
        let kernel = self.read_policy_maps()?;
        let mut drift = Drift::between(&kernel, expected);
        if drift.total() > 0 {
            self.write(&MapDelta::full(&kernel, expected))?;
        }
        let (services, service_backends) = self.repair_services()?;
        drift.services = services;
        drift.service_backends = service_backends;
        Ok(drift)
    }

    /// The Service maps as the kernel holds them.
    pub fn read_service_maps(&self) -> Result<ServiceMaps, DataplaneError> {
        let read = |map| {
            move |source| DataplaneError::MapUpdate {
                operation: "read",
                map,
                source,
            }
        };
        let mut maps = ServiceMaps::default();
        for entry in self.services.frontends.iter() {
            let (key, value) = entry.map_err(read(map_names::SERVICES))?;
            maps.frontends.insert(key, value);
        }
        for key in self.services.backends.keys() {
            maps.backends
                .insert(key.map_err(read(map_names::SERVICE_BACKENDS))?);
        }
        Ok(maps)
    }

    fn repair_services(&mut self) -> Result<(DriftCounts, DriftCounts), DataplaneError> {
        let expected = self.services().clone();
        let kernel = self.read_service_maps()?;
        let as_map = |set: &BTreeSet<_>| set.iter().map(|k| (*k, ())).collect::<BTreeMap<_, _>>();
        let drift = (
            counts(&kernel.frontends, &expected.frontends),
            counts(&as_map(&kernel.backends), &as_map(&expected.backends)),
        );
        if drift.0.total() + drift.1.total() > 0 {
            // What the maps hold now is the starting point of the sync back to the expected.
            self.services.held = kernel;
            self.sync_services(&expected)?;
        }
        Ok(drift)
    }
}

#[cfg(test)]
mod tests {
    use policy_common::identity::{IdentityKey, IdentityValue};

    use super::*;
    use crate::compiler::LpmKey;

    fn identities(entries: &[(u8, u32)]) -> MapContents {
        MapContents {
            identities: entries
                .iter()
                .map(|(byte, id)| {
                    let key = LpmKey {
                        prefix_len: 128,
                        data: IdentityKey { addr: [*byte; 16] },
                    };
                    let value = IdentityValue {
                        pod_identity: *id,
                        cidr_identity: 2,
                    };
                    (key, value)
                })
                .collect(),
            ..MapContents::default()
        }
    }

    #[test]
    fn drift_counts_missing_unexpected_and_changed_entries() {
        let kernel = identities(&[(1, 10), (2, 20), (4, 40)]);
        let expected = identities(&[(1, 10), (2, 21), (3, 30)]);
        let drift = Drift::between(&kernel, &expected);
        assert_eq!(
            drift.identities,
            DriftCounts {
                missing: 1,
                unexpected: 1,
                changed: 1
            }
        );
        assert_eq!(drift.total(), 3);
        assert_eq!(Drift::between(&expected, &expected).total(), 0);
    }
}
