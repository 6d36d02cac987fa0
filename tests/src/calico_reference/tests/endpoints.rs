//! Which side is checked: node traffic is allowed on the pod's side, and an address owned by
//! no live pod is not an endpoint.

use super::*;

#[test]
fn node_traffic_and_non_endpoints() {
    let world = with(
        "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-all}
spec:
  selector: all()
  types: [Ingress, Egress]
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
",
    );
    let from_node = world.verdict(&tcp(NODE, WEB, 80));
    assert!(from_node.allowed);
    assert!(matches!(from_node.ingress, Side::NodeTraffic { .. }));
    assert_eq!(from_node.egress, Side::NotAnEndpoint);
    assert!(allowed(&world, tcp(WEB, NODE, 80)));
    assert!(!allowed(&world, tcp(EXTERNAL, WEB, 80)));
    assert!(!allowed(&world, tcp(WEB, EXTERNAL, 80)));
    assert!(allowed(&world, tcp(EXTERNAL, "192.0.2.2", 80)));
    // A terminated pod is not an endpoint.
    let mut world = world;
    if let Some(status) = world.pods[0].status.as_mut() {
        status.phase = Some("Succeeded".to_owned());
    }
    assert!(allowed(&world, tcp(EXTERNAL, WEB, 80)));
}
