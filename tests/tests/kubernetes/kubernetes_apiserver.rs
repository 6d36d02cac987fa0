//! An in-process stand-in for the Kubernetes API server (not a real one: none can run on these
//! machines), for Namespaces, Pods, NetworkPolicies, Services and EndpointSlices
//! (`discovery.k8s.io/v1`), Calico's custom resources (`crd.projectcalico.org/v1`, its staged
//! policies among them) and
//! network-policy-api's (`policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy,
//! `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy and BaselineAdminNetworkPolicy):
//! enough of the real list/watch protocol for kube-rs's watcher to run against it unchanged.
//!
//! - `GET /apis/<group>/<version>` of a custom group version is its discovery document (an
//!   `APIResourceList`). [`ApiServer::serve_group_version`]`(v, false)` (or
//!   [`ApiServer::serve_calico`]`(false)`) makes the server one without those CRDs: discovery
//!   and the collections are 404s, as a real API server's are for a group it does not serve.
//! - `GET <collection>` lists every object with the current resource version in the list's
//!   metadata (one page: the server may ignore `limit`, and does).
//! - `GET <collection>?watch=true&resourceVersion=N` streams newline-separated JSON events
//!   (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`): first every change after N from the
//!   history, then live ones, until `timeoutSeconds` or until the test drops the stream. A
//!   version older than the compaction point gets the API server's answer, an `ERROR` event
//!   with a 410 `Expired` status, on an otherwise successful (200) response.
//! - Resource versions are one global counter, like etcd's revision.
//!
//! The test drives it: change objects, send bookmarks, drop watches, expire them (410), stop
//! the server and start it again on the same port, or have it go away in the middle of a
//! relist ([`ApiServer::go_away_on_next_list`]).

// Some of the stand-in is kept for completeness rather than used by a test.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::mpsc, task::JoinSet};

/// The collections, as kube-rs requests them cluster-wide: the Kubernetes ones, Calico's
/// custom resources and network-policy-api's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Pod,
    NetworkPolicy,
    Service,
    EndpointSlice,
    GlobalNetworkPolicy,
    /// Calico's namespaced NetworkPolicy (`crd.projectcalico.org/v1`).
    CalicoNetworkPolicy,
    Tier,
    GlobalNetworkSet,
    NetworkSet,
    HostEndpoint,
    /// Calico's staged policies (`crd.projectcalico.org/v1`).
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    StagedKubernetesNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha2`.
    ClusterNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1`.
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1`.
    BaselineAdminNetworkPolicy,
}

/// Calico's custom resources' API version.
pub const CALICO_API_VERSION: &str = "crd.projectcalico.org/v1";
/// ClusterNetworkPolicy's API version (network-policy-api v0.2.0).
pub const CNP_API_VERSION: &str = "policy.networking.k8s.io/v1alpha2";
/// AdminNetworkPolicy's and BaselineAdminNetworkPolicy's (network-policy-api v0.1.x).
pub const ANP_API_VERSION: &str = "policy.networking.k8s.io/v1alpha1";
/// The custom group versions, whose CRDs a test may "uninstall".
pub const CUSTOM_API_VERSIONS: [&str; 3] = [CALICO_API_VERSION, CNP_API_VERSION, ANP_API_VERSION];

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::NetworkPolicy,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::GlobalNetworkPolicy,
        Kind::CalicoNetworkPolicy,
        Kind::Tier,
        Kind::GlobalNetworkSet,
        Kind::NetworkSet,
        Kind::HostEndpoint,
        Kind::StagedGlobalNetworkPolicy,
        Kind::StagedNetworkPolicy,
        Kind::StagedKubernetesNetworkPolicy,
        Kind::ClusterNetworkPolicy,
        Kind::AdminNetworkPolicy,
        Kind::BaselineAdminNetworkPolicy,
    ];

    pub const KUBERNETES: [Kind; 5] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::NetworkPolicy,
        Kind::Service,
        Kind::EndpointSlice,
    ];

    /// Calico's custom resources, its staged policies included.
    pub const CALICO: [Kind; 9] = [
        Kind::GlobalNetworkPolicy,
        Kind::CalicoNetworkPolicy,
        Kind::Tier,
        Kind::GlobalNetworkSet,
        Kind::NetworkSet,
        Kind::HostEndpoint,
        Kind::StagedGlobalNetworkPolicy,
        Kind::StagedNetworkPolicy,
        Kind::StagedKubernetesNetworkPolicy,
    ];

    /// network-policy-api's.
    pub const CLUSTER_POLICY: [Kind; 3] = [
        Kind::ClusterNetworkPolicy,
        Kind::AdminNetworkPolicy,
        Kind::BaselineAdminNetworkPolicy,
    ];

    pub fn is_calico(self) -> bool {
        Kind::CALICO.contains(&self)
    }

    /// Whether a CRD defines it (Calico's, network-policy-api's): the server may not serve it.
    pub fn is_custom(self) -> bool {
        !Kind::KUBERNETES.contains(&self)
    }

    fn path(self) -> String {
        match self {
            Kind::Namespace => "/api/v1/namespaces".to_owned(),
            Kind::Pod => "/api/v1/pods".to_owned(),
            Kind::NetworkPolicy => "/apis/networking.k8s.io/v1/networkpolicies".to_owned(),
            Kind::Service => "/api/v1/services".to_owned(),
            Kind::EndpointSlice => "/apis/discovery.k8s.io/v1/endpointslices".to_owned(),
            _ => format!("/apis/{}/{}", self.api_version(), self.rbac().1),
        }
    }

    /// The object's `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::NetworkPolicy | Kind::CalicoNetworkPolicy => "NetworkPolicy",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            Kind::Tier => "Tier",
            Kind::GlobalNetworkSet => "GlobalNetworkSet",
            Kind::NetworkSet => "NetworkSet",
            Kind::HostEndpoint => "HostEndpoint",
            Kind::StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
            Kind::StagedNetworkPolicy => "StagedNetworkPolicy",
            Kind::StagedKubernetesNetworkPolicy => "StagedKubernetesNetworkPolicy",
            Kind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Kind::AdminNetworkPolicy => "AdminNetworkPolicy",
            Kind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    /// The kind as the agent's datastore names it in errors and digests: Calico's carry their
    /// API version (network-policy-api's names are unique: they do not).
    pub fn qualified_name(self) -> String {
        if self.is_calico() {
            format!("{} ({CALICO_API_VERSION})", self.name())
        } else {
            self.name().to_owned()
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::Service => "v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::ClusterNetworkPolicy => CNP_API_VERSION,
            Kind::AdminNetworkPolicy | Kind::BaselineAdminNetworkPolicy => ANP_API_VERSION,
            _ => CALICO_API_VERSION,
        }
    }

    /// (API group, resource) as RBAC names them.
    pub fn rbac(self) -> (&'static str, &'static str) {
        match self {
            Kind::Namespace => ("", "namespaces"),
            Kind::Pod => ("", "pods"),
            Kind::NetworkPolicy => ("networking.k8s.io", "networkpolicies"),
            Kind::Service => ("", "services"),
            Kind::EndpointSlice => ("discovery.k8s.io", "endpointslices"),
            Kind::GlobalNetworkPolicy => ("crd.projectcalico.org", "globalnetworkpolicies"),
            Kind::CalicoNetworkPolicy => ("crd.projectcalico.org", "networkpolicies"),
            Kind::Tier => ("crd.projectcalico.org", "tiers"),
            Kind::GlobalNetworkSet => ("crd.projectcalico.org", "globalnetworksets"),
            Kind::NetworkSet => ("crd.projectcalico.org", "networksets"),
            Kind::HostEndpoint => ("crd.projectcalico.org", "hostendpoints"),
            Kind::StagedGlobalNetworkPolicy => {
                ("crd.projectcalico.org", "stagedglobalnetworkpolicies")
            }
            Kind::StagedNetworkPolicy => ("crd.projectcalico.org", "stagednetworkpolicies"),
            Kind::StagedKubernetesNetworkPolicy => {
                ("crd.projectcalico.org", "stagedkubernetesnetworkpolicies")
            }
            Kind::ClusterNetworkPolicy => ("policy.networking.k8s.io", "clusternetworkpolicies"),
            Kind::AdminNetworkPolicy => ("policy.networking.k8s.io", "adminnetworkpolicies"),
            Kind::BaselineAdminNetworkPolicy => {
                ("policy.networking.k8s.io", "baselineadminnetworkpolicies")
            }
        }
    }

    pub fn is_namespaced(self) -> bool {
        matches!(
            self,
            Kind::Pod
                | Kind::NetworkPolicy
                | Kind::Service
                | Kind::EndpointSlice
                | Kind::CalicoNetworkPolicy
                | Kind::NetworkSet
                | Kind::StagedNetworkPolicy
                | Kind::StagedKubernetesNetworkPolicy
        )
    }

    /// The kind of an object: Calico's when its `apiVersion` says so, else the Kubernetes one
    /// of that name.
    fn of(object: &Value) -> Option<Kind> {
        let name = object["kind"].as_str()?;
        let calico = object["apiVersion"].as_str() == Some(CALICO_API_VERSION);
        Kind::ALL
            .into_iter()
            .find(|k| k.is_calico() == calico && k.name() == name)
    }
}

/// (kind, namespace, name); the namespace is empty for Namespaces.
pub type Key = (Kind, String, String);

struct Watch {
    kind: Kind,
    bookmarks: bool,
    events: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct State {
    revision: u64,
    /// Watches from a resource version below this get 410 Gone.
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change: (revision, kind, event type, object).
    history: Vec<(u64, Kind, &'static str, Value)>,
    watches: Vec<Watch>,
    /// Set by [`ApiServer::stop`]: the connections are being cut, and a request that reaches
    /// one before it is gone must not be served.
    stopped: bool,
    /// Requests served, per kind: lists, and the resource version each watch started from.
    lists: BTreeMap<Kind, u64>,
    watch_versions: BTreeMap<Kind, Vec<u64>>,
    /// Every request as RBAC sees it: (API group, resource, verb); anything this server does
    /// not serve is recorded as ("?", path, method). Discovery is not: it is a non-resource
    /// URL every authenticated user may read (`system:discovery`).
    requests: BTreeSet<(String, String, String)>,
    /// Custom group versions whose CRDs are not "installed" (see
    /// [`ApiServer::serve_group_version`]).
    absent: BTreeSet<&'static str>,
    /// Discovery requests, per custom group version.
    discoveries: BTreeMap<&'static str, u64>,
    /// Set by [`ApiServer::go_away_on_next_list`]: the next list request finds the server
    /// going away (see there).
    go_away_on_list: bool,
}

/// A change made while no watch can see it (see [`ApiServer::expire_watches`]).
pub enum Change {
    Apply(Value),
    Delete(Kind, &'static str, &'static str),
}

impl State {
    fn apply(&mut self, mut object: Value) -> u64 {
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

    fn delete(&mut self, kind: Kind, namespace: &str, name: &str) {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let mut object = self
            .objects
            .remove(&key)
            .expect("deleting an existing object");
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(kind, "DELETED", object);
    }

    fn compact(&mut self) {
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

pub struct ApiServer {
    state: Arc<Mutex<State>>,
    /// Where it listens; `None` until [`ApiServer::listen`] for an [`ApiServer::unbound`] one.
    addr: Mutex<Option<SocketAddr>>,
    /// The accept loop and every connection; dropping it closes them all.
    serving: Mutex<Option<JoinSet<()>>>,
}

impl ApiServer {
    /// Starts serving on a free loopback port.
    pub async fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the stand-in API server");
        let server = ApiServer::unbound();
        server.serve(listener);
        server
    }

    /// Holds objects, serves nobody until [`ApiServer::listen`].
    pub fn unbound() -> ApiServer {
        ApiServer {
            state: Arc::default(),
            addr: Mutex::new(None),
            serving: Mutex::new(None),
        }
    }

    /// Serves on `listener` (bound wherever the caller chose, e.g. in another network
    /// namespace); must be called within a tokio runtime.
    pub fn listen(&self, listener: std::net::TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let listener = TcpListener::from_std(listener).expect("registering the listener");
        self.serve(listener);
    }

    fn addr(&self) -> SocketAddr {
        self.addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect("the stand-in API server is not listening yet")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// A kubeconfig file's contents naming this server (no credentials: it wants none).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\n\
             clusters: [{{name: stand-in, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: agent, user: {{}}}}]\n\
             contexts: [{{name: stand-in, context: {{cluster: stand-in, user: agent}}}}]\n",
            self.url()
        )
    }

    /// A kube client for this server, as the agent builds one from a kubeconfig.
    pub fn client(&self) -> kube::Client {
        let url = self.url().parse().expect("server URL");
        kube::Client::try_from(kube::Config::new(url)).expect("kube client")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serve(&self, listener: TcpListener) {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(listener.local_addr().expect("local address"));
        let mut tasks = JoinSet::new();
        let state = self.state.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            // Bounded by the test: the set is dropped (aborting every connection) on stop.
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, &request)) }
                    });
                    let _closed = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        *self.serving.lock().unwrap_or_else(|e| e.into_inner()) = Some(tasks);
    }

    /// The API server goes away: the port is closed and every connection (watches included)
    /// is cut.
    pub fn stop(&self) {
        let tasks = self
            .serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(tasks);
        let mut state = self.state();
        state.stopped = true;
        state.watches.clear();
    }

    /// Comes back on the same port, with the same objects and history (etcd survived).
    pub async fn restart(&self) {
        // The client may be reconnecting at the same moment: retry the bind briefly.
        for _ in 0..50 {
            match TcpListener::bind(self.addr()).await {
                Ok(listener) => {
                    self.state().stopped = false;
                    self.serve(listener);
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        panic!("could not bind {} again", self.addr());
    }

    /// Creates or replaces an object (its `kind` and `metadata` decide which); returns its new
    /// resource version.
    pub fn apply(&self, object: Value) -> u64 {
        self.state().apply(object)
    }

    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) {
        self.state().delete(kind, namespace, name);
    }

    /// Sends every watch that asked for bookmarks one carrying the current resource version.
    pub fn bookmark(&self) {
        let mut state = self.state();
        let revision = state.revision.to_string();
        state.watches.retain(|w| {
            if !w.bookmarks {
                return true;
            }
            let bookmark = json!({
                "kind": w.kind.name(),
                "apiVersion": w.kind.api_version(),
                "metadata": {"resourceVersion": revision},
            });
            w.events.send(event_line("BOOKMARK", &bookmark)).is_ok()
        });
    }

    /// Ends every watch stream cleanly, as a load balancer or an API server's timeout does.
    pub fn drop_watches(&self) {
        self.state().watches.clear();
    }

    /// Forgets the history up to now: a watch resumed from an older version gets 410 Gone.
    pub fn compact(&self) {
        self.state().compact();
    }

    /// Every open watch gets an `ERROR` 410 event and ends; `changes` are then made, in the
    /// same critical section, without any watch seeing them, and the history is compacted past
    /// them: only a relist can find them.
    pub fn expire_watches(&self, changes: Vec<Change>) {
        let mut state = self.state();
        let gone = event_line("ERROR", &gone_status(state.revision));
        for watch in state.watches.drain(..) {
            let _closed_already = watch.events.send(gone.clone());
        }
        for change in changes {
            match change {
                Change::Apply(object) => {
                    state.apply(object);
                }
                Change::Delete(kind, namespace, name) => state.delete(kind, namespace, name),
            }
        }
        state.compact();
    }

    /// The API server goes away in the middle of the next relist: the next list request (of
    /// any kind) is answered 503, and from then on the server serves nothing, as one shutting
    /// down does; the test then calls [`ApiServer::stop`] to close the port (see
    /// [`ApiServer::is_stopped`]) and [`ApiServer::restart`] to bring it back.
    pub fn go_away_on_next_list(&self) {
        self.state().go_away_on_list = true;
    }

    /// Whether the server is stopped, by [`ApiServer::stop`] or by going away during a list.
    pub fn is_stopped(&self) -> bool {
        self.state().stopped
    }

    /// Whether Calico's CRDs are served (the default) or not (a cluster without Calico: 404s).
    /// Objects of them the test applies are kept either way.
    pub fn serve_calico(&self, served: bool) {
        self.serve_group_version(CALICO_API_VERSION, served);
    }

    /// Whether the CRDs of `api_version` (one of [`CUSTOM_API_VERSIONS`]) are served (the
    /// default) or not (their CRDs are not installed: discovery and collections are 404s).
    /// Objects of them the test applies are kept either way, and served again with it.
    pub fn serve_group_version(&self, api_version: &str, served: bool) {
        let api_version = CUSTOM_API_VERSIONS
            .into_iter()
            .find(|v| *v == api_version)
            .expect("a custom group version");
        let mut state = self.state();
        if served {
            state.absent.remove(api_version);
        } else {
            state.absent.insert(api_version);
            // Open watches end, as the API server ends them when a CRD is deleted.
            state
                .watches
                .retain(|w| w.kind.api_version() != api_version);
        }
    }

    /// Discovery requests for Calico's group version so far.
    pub fn discoveries(&self) -> u64 {
        self.discoveries_of(CALICO_API_VERSION)
    }

    /// Discovery requests for `api_version` (a custom group version) so far.
    pub fn discoveries_of(&self, api_version: &str) -> u64 {
        self.state()
            .discoveries
            .get(api_version)
            .copied()
            .unwrap_or(0)
    }

    /// Full lists served for `kind` so far.
    pub fn lists(&self, kind: Kind) -> u64 {
        self.state().lists.get(&kind).copied().unwrap_or(0)
    }

    /// The resource version each watch of `kind` started from, in order.
    pub fn watch_versions(&self, kind: Kind) -> Vec<u64> {
        self.state()
            .watch_versions
            .get(&kind)
            .cloned()
            .unwrap_or_default()
    }

    /// Every request so far as (API group, resource, verb).
    pub fn requests(&self) -> BTreeSet<(String, String, String)> {
        self.state().requests.clone()
    }

    /// Open watch streams.
    pub fn open_watches(&self) -> usize {
        self.state().watches.len()
    }

    /// Every object served, as the agent's datastore digest sees them: (kind, namespace, name,
    /// resource version). Objects of a group version not served are left out, as the agent
    /// cannot see them.
    pub fn versions(&self) -> Vec<(String, String, String, String)> {
        let state = self.state();
        state
            .objects
            .iter()
            .filter(|((kind, ..), _)| !state.absent.contains(kind.api_version()))
            .map(|((kind, namespace, name), object)| {
                (
                    kind.qualified_name(),
                    namespace.clone(),
                    name.clone(),
                    object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Every object served as one multi-document YAML manifest, for the file datastore:
    /// Calico's as the `projectcalico.org/v3` documents they stand for (network-policy-api's
    /// are read as written). Like [`ApiServer::versions`], objects of a group version not
    /// served are left out.
    pub fn manifests(&self) -> String {
        let state = self.state();
        state
            .objects
            .iter()
            .filter(|((kind, ..), _)| !state.absent.contains(kind.api_version()))
            .map(|((kind, ..), object)| {
                let mut object = object.clone();
                if kind.is_calico() {
                    object["apiVersion"] = json!("projectcalico.org/v3");
                }
                serde_yaml::to_string(&object).expect("object as YAML")
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
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

fn event_line(event: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": event, "object": object})).expect("event as JSON");
    line.push(b'\n');
    Bytes::from(line)
}

fn gone_status(revision: u64) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("too old resource version: (compacted at {revision})"),
        "reason": "Expired",
        "code": 410,
    })
}

type Body = BoxBody<Bytes, Infallible>;

fn not_found() -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "the server could not find the requested resource",
            "reason": "NotFound",
            "code": 404,
        }),
    )
}

/// A custom group version's discovery document.
fn discovery(api_version: &str) -> Value {
    let resources: Vec<Value> = Kind::ALL
        .into_iter()
        .filter(|k| k.is_custom() && k.api_version() == api_version)
        .map(|k| {
            json!({
                "name": k.rbac().1,
                "singularName": k.name().to_lowercase(),
                "namespaced": k.is_namespaced(),
                "kind": k.name(),
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    })
}

fn handle(state: &Mutex<State>, request: &Request<Incoming>) -> Response<Body> {
    if let Some(api_version) = CUSTOM_API_VERSIONS
        .into_iter()
        .find(|v| request.uri().path() == format!("/apis/{v}"))
    {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        *state.discoveries.entry(api_version).or_default() += 1;
        if state.stopped {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"kind": "Status", "code": 503}),
            );
        }
        if state.absent.contains(api_version) {
            return not_found();
        }
        return json_response(StatusCode::OK, &discovery(api_version));
    }
    let absent = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .absent
        .clone();
    let Some(kind) = Kind::ALL
        .into_iter()
        .filter(|k| !absent.contains(k.api_version()))
        .find(|k| k.path() == request.uri().path())
    else {
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .insert((
                "?".to_owned(),
                request.uri().path().to_owned(),
                request.method().to_string(),
            ));
        return not_found();
    };
    if request.method() != Method::GET {
        let (group, resource) = kind.rbac();
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .insert((
                group.to_owned(),
                resource.to_owned(),
                request.method().as_str().to_lowercase(),
            ));
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"kind": "Status", "code": 405}),
        );
    }
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    if state.stopped {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"kind": "Status", "code": 503}),
        );
    }
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let (group, resource) = kind.rbac();
    let verb = if watching { "watch" } else { "list" };
    state
        .requests
        .insert((group.to_owned(), resource.to_owned(), verb.to_owned()));
    if watching {
        watch(&mut state, kind, &query)
    } else if state.go_away_on_list {
        state.go_away_on_list = false;
        state.stopped = true;
        state.watches.clear();
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"kind": "Status", "code": 503, "message": "shutting down"}),
        )
    } else {
        *state.lists.entry(kind).or_default() += 1;
        let items: Vec<&Value> = state
            .objects
            .iter()
            .filter(|((k, ..), _)| *k == kind)
            .map(|(_, object)| object)
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "kind": format!("{}List", kind.name()),
                "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": state.revision.to_string()},
                "items": items,
            }),
        )
    }
}

fn watch(state: &mut State, kind: Kind, query: &BTreeMap<String, String>) -> Response<Body> {
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    state.watch_versions.entry(kind).or_default().push(from);
    let (events, receiver) = mpsc::unbounded_channel();
    if from < state.compacted {
        let _receiver_is_here = events.send(event_line("ERROR", &gone_status(state.compacted)));
        drop(events);
    } else {
        for (_, _, event, object) in state
            .history
            .iter()
            .filter(|(revision, k, ..)| *revision > from && *k == kind)
        {
            let _receiver_is_here = events.send(event_line(event, object));
        }
        state.watches.push(Watch {
            kind,
            bookmarks: query
                .get("allowWatchBookmarks")
                .is_some_and(|b| b == "true"),
            events,
        });
    }
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = futures::stream::unfold(receiver, move |mut receiver| async move {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(line)) => Some((Ok::<_, Infallible>(Frame::data(line)), receiver)),
            // Dropped by the test, or timed out: the stream ends, as the API server's does.
            Ok(None) | Err(_) => None,
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}
