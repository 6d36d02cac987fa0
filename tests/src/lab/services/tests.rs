use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use anyhow::Context as _;
use serde_json::Value;

use super::*;
use crate::lab::{
    datastore,
    scenario::{Family, KubeProxyMode, Object, ObjectKey, Scenario},
    topology,
};

const SCENARIO: &str = r#"
resources:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, labels: {app: a}}
    spec: {nodeName: n1, containers: [{name: c, image: x, ports: [{name: web, containerPort: 7000}]}]}
    status: {podIPs: [{ip: 10.42.0.10}, {ip: "fd00:42::10"}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: b, labels: {app: a}}
    spec: {containers: [{name: c, image: x, ports: [{name: web, containerPort: 7001}]}]}
    status: {podIPs: [{ip: 10.42.0.11}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: c, labels: {app: c}}
    spec: {containers: [{name: c, image: x}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: a}
    spec: {type: NodePort, ipFamilyPolicy: PreferDualStack, selector: {app: a}, ports: [{port: 80, targetPort: web}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: given}
    spec: {clusterIP: 10.96.0.20, selector: {app: c}, ports: [{name: x, port: 81, nodePort: 30000}]}
steps: []
"#;

fn lab() -> anyhow::Result<(ServiceLab, Scenario)> {
    let scenario = Scenario::from_yaml(SCENARIO)?;
    let plans = topology::plan(&scenario.pods()?)?;
    let mut lab = ServiceLab::new(&scenario, KubeProxyMode::Iptables, Vec::new())?;
    for object in &scenario.resources {
        let object = lab.complete(object);
        let manifest = datastore::complete(&object, &plans)?;
        lab.applied(&object.key, manifest);
    }
    Ok((lab, scenario))
}

#[test]
fn addresses_are_assigned_around_given_ones() -> anyhow::Result<()> {
    let (lab, _) = lab()?;
    let a = lab.plans().get("default", "a").context("a")?;
    // 10.96.0.20 is given to `given`: `a` gets the next one.
    assert_eq!(
        a.cluster_ips,
        vec!["10.96.0.21".parse::<IpAddr>()?, "fd00:96::14".parse()?]
    );
    assert_eq!(a.families, vec![Family::V4, Family::V6]);
    // 30000 is given to `given` (a ClusterIP Service, kept as written).
    assert_eq!(a.ports[0].node_port, Some(30001));
    let given = lab.plans().get("default", "given").context("given")?;
    assert_eq!(given.cluster_ips, vec!["10.96.0.20".parse::<IpAddr>()?]);
    Ok(())
}

#[test]
fn slices_follow_the_endpointslice_controller() -> anyhow::Result<()> {
    let (mut lab, _) = lab()?;
    let (write, remove) = lab.derive_slices()?;
    assert!(remove.is_empty());
    let by_name: BTreeMap<String, &Value> = write
        .iter()
        .map(|o| (o.key.name.clone(), &o.manifest))
        .collect();
    // IPv4: a and b resolve `web` to different ports: one slice each.
    let a4 = by_name.get("a-ipv4").context("a-ipv4")?;
    let a4b = by_name.get("a-ipv4-1").context("a-ipv4-1")?;
    let ports: BTreeSet<i64> = [a4, a4b]
        .iter()
        .filter_map(|s| s["ports"][0]["port"].as_i64())
        .collect();
    assert_eq!(ports, BTreeSet::from([7000, 7001]));
    assert_eq!(a4["metadata"]["labels"][SERVICE_NAME_LABEL], "a");
    assert_eq!(a4["addressType"], "IPv4");
    // IPv6: only a has an IPv6 address; nodeName and targetRef as the controller sets them.
    let a6 = by_name.get("a-ipv6").context("a-ipv6")?;
    assert_eq!(a6["endpoints"].as_array().map(Vec::len), Some(1));
    assert_eq!(a6["endpoints"][0]["addresses"][0], "fd00:42::10");
    assert_eq!(a6["endpoints"][0]["nodeName"], "n1");
    assert_eq!(a6["endpoints"][0]["targetRef"]["name"], "a");
    // `given` selects c, which has no port named... its targetPort is the number 81.
    let given = by_name.get("given-ipv4").context("given-ipv4")?;
    assert_eq!(given["ports"][0]["port"], 81);
    // Nothing changed: nothing to write again.
    let (write, remove) = lab.derive_slices()?;
    assert!(write.is_empty() && remove.is_empty());
    // b leaves the Service: its slice goes.
    lab.deleted(&ObjectKey::new("Pod", Some("default"), "b"));
    let (_, remove) = lab.derive_slices()?;
    assert_eq!(remove.len(), 1);
    // kube-proxy's view: a's port over both families, one endpoint each now.
    let view = lab.proxy_view()?;
    let a: Vec<_> = view.iter().filter(|p| p.service == "a").collect();
    assert_eq!(a.len(), 2);
    assert!(
        a.iter()
            .all(|p| p.endpoints.len() == 1 && p.node_port == Some(30001))
    );
    Ok(())
}

#[test]
fn each_version_keeps_its_own_ports() -> anyhow::Result<()> {
    let text = r#"
resources:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, labels: {app: a}}
    spec: {containers: [{name: c, image: x, ports: [{name: web, containerPort: 7000}]}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: a}
    spec: {type: NodePort, selector: {app: a}, ports: [{name: p, port: 80, targetPort: 8000}]}
steps:
  - apply:
      - apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec: {type: NodePort, selector: {app: a}, ports: [{name: p, port: 90, targetPort: web}]}
    probes:
      - {from: default/a, to: service/default/a, port: 90, expect: allow}
  - apply:
      - apiVersion: v1
        kind: Service
        metadata: {name: b}
        spec: {selector: {app: a}, ports: [{port: 100}]}
    probes:
      - {from: default/a, to: service/default/b, port: 100, expect: allow}
"#;
    let scenario = Scenario::from_yaml(text)?;
    let plans = topology::plan(&scenario.pods()?)?;
    let mut lab = ServiceLab::new(&scenario, KubeProxyMode::Nftables, Vec::new())?;
    let write = |lab: &mut ServiceLab, object: &Object| -> anyhow::Result<()> {
        let object = lab.complete(object);
        let manifest = datastore::complete(&object, &plans)?;
        lab.applied(&object.key, manifest);
        Ok(())
    };
    for object in &scenario.resources {
        write(&mut lab, object)?;
    }
    lab.derive_slices()?;
    let view = lab.proxy_view()?;
    assert_eq!(view.len(), 1);
    assert_eq!((view[0].port, view[0].node_port), (80, Some(30000)));
    assert_eq!(view[0].endpoints[0].1, 8000);
    // The new version: port 90 to the named port, same nodePort.
    write(&mut lab, &scenario.steps[0].apply[0])?;
    lab.derive_slices()?;
    let view = lab.proxy_view()?;
    assert_eq!((view[0].port, view[0].node_port), (90, Some(30000)));
    assert_eq!(view[0].endpoints[0].1, 7000);
    // A Service a step adds: its slice and its rules appear.
    write(&mut lab, &scenario.steps[1].apply[0])?;
    let (written, _) = lab.derive_slices()?;
    assert!(written.iter().any(|o| o.key.name == "b-ipv4"));
    let view = lab.proxy_view()?;
    let b = view.iter().find(|p| p.service == "b").context("b")?;
    assert_eq!((b.port, b.endpoints[0].1, b.node_port), (100, 100, None));
    assert_eq!(b.cluster_ip, "10.96.0.21".parse::<IpAddr>()?);
    Ok(())
}
