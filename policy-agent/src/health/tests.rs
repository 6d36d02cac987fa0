use super::*;

fn get(health: &Health, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(()).unwrap_or_default();
    let response = respond(health, &request);
    let status = response.status();
    let body = futures::executor::block_on(http_body_util::BodyExt::collect(response.into_body()))
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn ready_only_after_the_first_sync_and_metrics_follow_the_maps() {
    let health = Health::new();
    health.beat();
    assert_eq!(get(&health, "/healthz").0, StatusCode::OK);
    assert_eq!(get(&health, "/readyz").0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(get(&health, "/metrics").1.contains("palisade_ready 0"));

    let mut maps = MapContents::default();
    maps.endpoints.insert(
        policy_common::endpoint::EndpointKey { addr: [1; 16] },
        policy_common::endpoint::EndpointPolicy::default(),
    );
    health.synced(&maps, 2, Duration::from_millis(3));
    health.datapath_stats(
        7,
        &crate::status::PacketCounts {
            allowed: 10,
            denied: 4,
            malformed: 1,
            drops: [("no_rule", 3), ("spoofed", 1), ("malformed", 1)]
                .into_iter()
                .map(|(reason, count)| (reason.to_string(), count))
                .collect(),
        },
    );
    health.rule_hits(&[RuleCount {
        rule: crate::rule_hits::RuleId {
            policy: crate::flows::PolicyRef {
                kind: "NetworkPolicy".to_owned(),
                namespace: "shop".to_owned(),
                name: "web".to_owned(),
            },
            rule: "ingress[0]".to_owned(),
            action: "allow".to_owned(),
        },
        counts: crate::rule_hits::Counts {
            packets: 6,
            flows: 5,
        },
    }]);
    health.flow_losses(9, (1, 2), 3);
    health.watch_progress(Arc::new(WatchProgress::default()));
    health.set_ready();
    assert_eq!(get(&health, "/readyz").0, StatusCode::OK);
    let (status, metrics) = get(&health, "/metrics");
    assert_eq!(status, StatusCode::OK);
    for line in [
        "palisade_ready 1",
        "palisade_syncs_total 1",
        "palisade_rejected_objects 2",
        "palisade_map_entries{map=\"endpoints\"} 1",
        "palisade_map_entries{map=\"rules\"} 0",
        "palisade_conntrack_entries 7",
        "palisade_packets{outcome=\"denied\"} 4",
        "palisade_packets{outcome=\"malformed\"} 1",
        "palisade_drops_total{reason=\"no_rule\"} 3",
        "palisade_drops_total{reason=\"spoofed\"} 1",
        "palisade_drops_total{reason=\"malformed\"} 1",
        "palisade_drops_total{reason=\"capacity\"} 0",
        "palisade_flow_events_dropped_total 9",
        "palisade_flow_records_lost_total{verdict=\"deny\"} 2",
        "palisade_flow_connections_unfollowed_total 3",
        "palisade_rule_packets_total{kind=\"NetworkPolicy\",namespace=\"shop\",name=\"web\",rule=\"ingress[0]\",action=\"allow\"} 6",
        "palisade_rule_flows_total{kind=\"NetworkPolicy\",namespace=\"shop\",name=\"web\",rule=\"ingress[0]\",action=\"allow\"} 5",
        "palisade_datastore_lists_total{resource=\"networkpolicies\"} 0",
        "palisade_datastore_watch_errors_total{resource=\"pods\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert_eq!(get(&health, "/other").0, StatusCode::NOT_FOUND);
}

#[test]
fn cluster_policies_and_attach_failures_are_counted() {
    let health = Health::new();
    let state = |kind: &str, accepted, enforced| crate::status::ClusterPolicyState {
        kind: kind.to_owned(),
        name: "p".to_owned(),
        accepted,
        enforced,
        tier: None,
        priority: None,
        error: None,
    };
    health.attached(2, 1);
    health.cluster_policies(&[
        state("ClusterNetworkPolicy", true, true),
        state("ClusterNetworkPolicy", true, true),
        state("ClusterNetworkPolicy", false, true),
        state("AdminNetworkPolicy", false, false),
    ]);
    let metrics = health.metrics();
    for line in [
        "palisade_cluster_policies{kind=\"ClusterNetworkPolicy\",state=\"accepted\"} 2",
        "palisade_cluster_policies{kind=\"ClusterNetworkPolicy\",state=\"rejected_previous\"} 1",
        "palisade_cluster_policies{kind=\"AdminNetworkPolicy\",state=\"rejected\"} 1",
        "palisade_cluster_policies{kind=\"BaselineAdminNetworkPolicy\",state=\"accepted\"} 0",
        "palisade_attached_interfaces 2",
        "palisade_attach_failures 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[test]
fn a_stuck_loop_fails_liveness() {
    let mut health = Health::new();
    health.beat();
    assert!(health.is_alive());
    // As if the last beat were long ago.
    health.skew = LIVENESS_STALE + Duration::from_secs(1);
    assert!(!health.is_alive());
    assert_eq!(get(&health, "/healthz").0, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn a_failing_sync_and_repaired_drift_are_reported() {
    let health = Health::new();
    health.beat();
    health.synced(&MapContents::default(), 0, Duration::from_millis(1));
    health.sync_failed("1 sync(s) in a row failed: map full".to_owned());
    let (status, body) = get(&health, "/healthz");
    // Alive (the applied state is enforced), with why the newer one is not.
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("sync failing: 1 sync(s) in a row failed: map full"),
        "{body}"
    );
    assert!(
        body.contains("enforcing the state applied 0 s ago"),
        "{body}"
    );

    let mut drift = crate::dataplane::Drift::default();
    drift.rules.missing = 3;
    drift.endpoints.changed = 1;
    health.resynced(&drift);
    let metrics = get(&health, "/metrics").1;
    for line in [
        "palisade_sync_failures_total 1",
        "palisade_resyncs_total 1",
        "palisade_drift_entries_total{map=\"rules\",kind=\"missing\"} 3",
        "palisade_drift_entries_total{map=\"endpoints\",kind=\"changed\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("palisade_applied_state_age_seconds ")),
        "{metrics}"
    );

    // The next successful sync clears it.
    health.synced(&MapContents::default(), 0, Duration::from_millis(1));
    assert_eq!(get(&health, "/healthz").1, "ok\n");
}
