//! The objects and their history: one resource-version counter, compaction, open watches.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::kind::{Key, Kind};

pub(super) struct Watch {
    pub(super) kind: Kind,
    pub(super) bookmarks: bool,
    pub(super) events: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) revision: u64,
    /// Watches from a resource version below this get 410 Gone.
    pub(super) compacted: u64,
    pub(super) objects: BTreeMap<Key, Value>,
    /// Every change: (revision, kind, event type, object).
    pub(super) history: Vec<(u64, Kind, &'static str, Value)>,
    pub(super) watches: Vec<Watch>,
    /// Set by [`ApiServer::stop`]: the connections are being cut, and a request that reaches
    /// one before it is gone must not be served.
    pub(super) stopped: bool,
    /// Requests served, per kind: lists, and the resource version each watch started from.
    pub(super) lists: BTreeMap<Kind, u64>,
    pub(super) watch_versions: BTreeMap<Kind, Vec<u64>>,
    /// Every request as RBAC sees it: (API group, resource, verb); anything this server does
    /// not serve is recorded as ("?", path, method). Discovery is not: it is a non-resource
    /// URL every authenticated user may read (`system:discovery`).
    pub(super) requests: BTreeSet<(String, String, String)>,
    /// Custom group versions whose CRDs are not "installed" (see
    /// [`ApiServer::serve_group_version`]).
    pub(super) absent: BTreeSet<&'static str>,
    /// Discovery requests, per custom group version.
    pub(super) discoveries: BTreeMap<&'static str, u64>,
    /// Set by [`ApiServer::go_away_on_next_list`]: the next list request finds the server
    /// going away (see there).
    pub(super) go_away_on_list: bool,
}

/// A change made while no watch can see it (see [`ApiServer::expire_watches`]).
pub enum Change {
    Apply(Value),
    Delete(Kind, &'static str, &'static str),
}

impl State {
    pub(super) fn apply(&mut self, mut object: Value) -> u64 {
        self.revision += 1;
        let revision = self.revision;
        let kind = Kind::of(&object).expect("object kind");
        object["apiVersion"] = json!(kind.api_version());
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        let key = key_of(kind, &object);
        let event = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(key, object.clone());
        self.record(kind, event, object);
        revision
    }

    pub(super) fn delete(&mut self, kind: Kind, namespace: &str, name: &str) {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let mut object = self
            .objects
            .remove(&key)
            .expect("deleting an existing object");
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(kind, "DELETED", object);
    }

    pub(super) fn compact(&mut self) {
        self.compacted = self.revision;
        let compacted = self.compacted;
        self.history.retain(|(revision, ..)| *revision > compacted);
    }

    fn record(&mut self, kind: Kind, event: &'static str, object: Value) {
        let line = event_line(event, &object);
        self.watches
            .retain(|w| w.kind != kind || w.events.send(line.clone()).is_ok());
        self.history.push((self.revision, kind, event, object));
    }
}

fn key_of(kind: Kind, object: &Value) -> Key {
    let meta = &object["metadata"];
    let name = meta["name"].as_str().expect("metadata.name").to_owned();
    let namespace = if kind.is_namespaced() {
        meta["namespace"].as_str().unwrap_or("default").to_owned()
    } else {
        String::new()
    };
    (kind, namespace, name)
}

pub(super) fn event_line(event: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": event, "object": object})).expect("event as JSON");
    line.push(b'\n');
    Bytes::from(line)
}
