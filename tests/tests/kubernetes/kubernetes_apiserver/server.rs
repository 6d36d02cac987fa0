//! The server a test drives: listening, going away and returning, changes, what it served.

use std::{
    collections::BTreeSet,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinSet};

use super::kind::{CALICO_API_VERSION, CUSTOM_API_VERSIONS, Kind};
use super::protocol::{gone_status, handle};
use super::state::{Change, State, event_line};

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
