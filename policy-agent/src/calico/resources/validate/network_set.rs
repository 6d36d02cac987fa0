//! GlobalNetworkSet and namespaced NetworkSet: name, namespace, labels and CIDRs.

use super::{
    checker::Checker,
    fields::set_nets,
    names::{labels, namespace, subdomain_name},
};
use crate::calico::resources::{FieldError, Kind, NetworkSet, raw};

pub(in crate::calico::resources) fn network_set(
    object: raw::Object<raw::NetworkSetSpec>,
    kind: Kind,
) -> Result<NetworkSet, Vec<FieldError>> {
    let mut c = Checker::default();
    let name = subdomain_name(&mut c, &object.metadata);
    let namespace = namespace(&mut c, &object.metadata, kind);
    let labels = labels(&mut c, &object.metadata);
    let spec = object.spec.unwrap_or_default();
    let nets = set_nets(&mut c, "spec.nets", spec.nets.unwrap_or_default());
    c.finish(NetworkSet {
        name,
        namespace,
        labels,
        nets,
    })
}
