//! The HTTP answers: discovery documents, lists, watch streams, 404s, 410s and 503s.

use std::{collections::BTreeMap, convert::Infallible, sync::Mutex, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::kind::{CUSTOM_API_VERSIONS, Kind};
use super::state::{State, Watch, event_line};

pub(super) fn gone_status(revision: u64) -> Value {
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

pub(super) fn handle(state: &Mutex<State>, request: &Request<Incoming>) -> Response<Body> {
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
