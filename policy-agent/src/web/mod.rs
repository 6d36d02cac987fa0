//! The web view and its data, on a listener of its own (`--ui-port`, loopback by default:
//! everything here names workloads, unlike `/metrics`, which a cluster's Prometheus scrapes
//! from everywhere).
//!
//! - `GET /`: the page (`page.html`, embedded; no build step, no library): a live flow table
//!   with filters, a graph of which workloads talk to which, and an "explain this flow" panel.
//! - `GET /flows?since=N`: the closed windows of flow records from N on and the open one, as
//!   JSON ([`crate::flow_records::live::Snapshot`]); `policy-agent flows --agent` reads it.
//! - `GET /flows/stream[?since=N]`: the same records as JSON lines, each window's as it
//!   closes (from window N, or from the next one), for as long as the client reads.
//! - `GET /rules`: the packets and new flows each policy rule decided, as JSON
//!   ([`crate::rule_hits::RuleCount`]s).
//! - `GET /explain?from=A&to=B&port=P&protocol=tcp&family=4`: the walk `policy-agent explain`
//!   prints, as JSON, against the state the agent applied last; with staged policies, the walk
//!   with them applied under `pending` (`explain --staged`).

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::net::TcpListener;

use crate::{
    calico::resources::Protocol,
    compiler::{Scope, trace::TracePacket},
    explain::verdict,
    flow_records::{
        FlowRecords,
        client::{Filter, json_lines},
    },
    http_server::{self, Body, text, whole},
    model::Cluster,
    rule_hits::RuleCount,
};

const PAGE: &str = include_str!("page.html");

/// What the web view reads: the flow records, the per-rule counts, and the applied state for
/// explanations.
pub struct WebState {
    pub records: Arc<FlowRecords>,
    applied: Mutex<Option<(Arc<Cluster>, Scope)>>,
    rule_hits: Mutex<Vec<RuleCount>>,
}

impl WebState {
    pub fn new(records: Arc<FlowRecords>) -> Self {
        Self {
            records,
            applied: Mutex::new(None),
            rule_hits: Mutex::new(Vec::new()),
        }
    }

    /// The per-rule totals, as last read.
    pub fn set_rule_hits(&self, counts: Vec<RuleCount>) {
        *self
            .rule_hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = counts;
    }

    /// The state just written whole: what explanations are about from now on.
    pub fn set_applied(&self, cluster: Arc<Cluster>, scope: Scope) {
        *self.applied.lock().unwrap_or_else(PoisonError::into_inner) = Some((cluster, scope));
    }

    fn applied(&self) -> Option<(Arc<Cluster>, Scope)> {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Serves the web view on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<WebState>) {
    http_server::serve(listener, "web view", state, respond::<Incoming>).await;
}

fn respond<B>(state: &WebState, request: &Request<B>) -> Response<Body> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let query = query(request.uri().query());
    match request.uri().path() {
        "/" => with_type(
            Response::new(whole(Bytes::from_static(PAGE.as_bytes()))),
            "text/html; charset=utf-8",
        ),
        "/flows" => match since(&query) {
            Ok(since) => json(&state.records.snapshot(since.unwrap_or(0))),
            Err(message) => text(StatusCode::BAD_REQUEST, format!("{message}\n")),
        },
        "/flows/stream" => match since(&query) {
            Ok(since) => {
                let since = since.unwrap_or_else(|| state.records.next_window());
                stream(state.records.clone(), since)
            }
            Err(message) => text(StatusCode::BAD_REQUEST, format!("{message}\n")),
        },
        "/rules" => json(
            &*state
                .rule_hits
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
        "/explain" => match explain(state, &query) {
            Ok(value) => json(&value),
            Err(message) => text(StatusCode::BAD_REQUEST, format!("{message}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The query's `since` window number, if given, or why it is not one.
fn since(query: &HashMap<String, String>) -> Result<Option<u64>, String> {
    query
        .get("since")
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|e| format!("since: not a window number: {e}"))
}

/// How often `/flows/stream` looks for a newly closed window.
const STREAM_POLL: Duration = Duration::from_millis(500);

/// Every window closed from `since` on, as JSON lines (see
/// [`crate::flow_records::client::json_lines`]), sent as each closes, for as long as the client
/// reads: hyper stops polling the body when the connection goes.
fn stream(records: Arc<FlowRecords>, since: u64) -> Response<Body> {
    let frames = futures::stream::unfold((records, since), |(records, mut since)| async move {
        loop {
            let snapshot = records.snapshot(since);
            since = snapshot.next;
            let mut lines = String::new();
            for window in &snapshot.closed {
                for line in json_lines(window, &Filter::default()) {
                    lines.push_str(&line.to_string());
                    lines.push('\n');
                }
            }
            if !lines.is_empty() {
                let frame = Frame::data(Bytes::from(lines));
                return Some((Ok::<_, Infallible>(frame), (records, since)));
            }
            tokio::time::sleep(STREAM_POLL).await;
        }
    });
    with_type(
        Response::new(StreamBody::new(frames).boxed()),
        "application/x-ndjson",
    )
}

/// `policy-agent explain` for the query's packet, against the applied state.
fn explain(state: &WebState, query: &HashMap<String, String>) -> Result<serde_json::Value, String> {
    let (cluster, scope) = state
        .applied()
        .ok_or("no state applied yet: nothing to explain against")?;
    let field = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{name}: required"))
    };
    let family = match query.get("family").map(String::as_str) {
        None | Some("" | "4") => 4,
        Some("6") => 6,
        Some(other) => return Err(format!("family {other:?}: expected 4 or 6")),
    };
    let protocol_name = query.get("protocol").map_or("tcp", String::as_str);
    // The page's lower-case names, or Calico's spelling.
    let protocol = Protocol::NAMES
        .into_iter()
        .find_map(|(name, p)| name.eq_ignore_ascii_case(protocol_name).then_some(p))
        .map(|p| p.0)
        .or_else(|| protocol_name.parse::<u8>().ok())
        .ok_or_else(|| format!("protocol {protocol_name:?}: not a protocol name or number"))?;
    let number = |name: &str, default: u16| -> Result<u16, String> {
        match query.get(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| format!("{name} {v:?}: not a port: {e}")),
        }
    };
    let packet = TracePacket {
        src: verdict::resolve(&cluster, field("from")?, family)
            .map_err(|e| format!("from: {e}"))?,
        dst: verdict::resolve(&cluster, field("to")?, family).map_err(|e| format!("to: {e}"))?,
        protocol,
        sport: number("source_port", 40_000)?,
        dport: number("port", 0)?,
    };
    let trace = verdict::explain(&cluster, &scope, &packet).map_err(|e| e.to_string())?;
    let mut answer = verdict::render_json(&trace);
    // With staged policies, the walk they would give as well (`explain --staged`).
    if cluster.has_staged() {
        let pending =
            verdict::explain(&cluster.pending(), &scope, &packet).map_err(|e| e.to_string())?;
        answer["pending"] = verdict::render_json(&pending);
    }
    Ok(answer)
}

/// The query's `key=value` pairs, percent-decoded (`+` as a space, as forms send them).
fn query(raw: Option<&str>) -> HashMap<String, String> {
    raw.unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    // Two hex digits: at most 255.
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json<T: serde::Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(Response::new(whole(Bytes::from(body))), "application/json"),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the answer: {e}\n"),
        ),
    }
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;
    use crate::{datastore::file::load_for_test, flow_records::Limits};

    fn get(state: &WebState, uri: &str) -> (StatusCode, String) {
        let request = Request::get(uri).body(()).expect("a request");
        let response = respond(state, &request);
        let status = response.status();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let bytes = runtime
            .block_on(response.into_body().collect())
            .expect("the body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: default, labels: {app: frontend}}
spec: {containers: [{name: c, image: x}]}
status: {podIP: 10.42.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: backend, namespace: default, labels: {app: backend}}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}
status: {podIP: 10.42.0.11}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
"#;

    fn state() -> WebState {
        WebState::new(Arc::new(FlowRecords::new(Limits::default())))
    }

    #[test]
    fn flows_answers_json_and_refuses_what_it_cannot_read() {
        let state = state();
        let (status, body) = get(&state, "/flows");
        assert_eq!(status, StatusCode::OK);
        let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(value["next"], 0);
        assert_eq!(value["closed"], serde_json::json!([]));
        assert_eq!(get(&state, "/flows?since=3").0, StatusCode::OK);
        let (status, body) = get(&state, "/flows?since=x");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("since"), "{body}");
        assert_eq!(get(&state, "/metrics").0, StatusCode::NOT_FOUND);
        let (status, page) = get(&state, "/");
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<title>Palisade"), "{page}");
    }

    #[test]
    fn the_stream_sends_each_window_as_json_lines_when_it_closes() {
        use policy_common::flow::{FlowEvent, TO_ENDPOINT};
        let records = Arc::new(FlowRecords::new(Limits {
            window: Duration::from_secs(1),
            ..Limits::default()
        }));
        let state = WebState::new(records.clone());
        let event = |time_ns, port| FlowEvent {
            time_ns,
            src: policy_common::ipv4_mapped([10, 0, 0, 1]),
            dst: policy_common::ipv4_mapped([10, 0, 0, 2]),
            dport: port,
            protocol: 6,
            direction: TO_ENDPOINT,
            allowed: 1,
            ..FlowEvent::default()
        };
        // Window 0 closes when window 1's first flow comes; window 1 is open.
        records.record(&event(1, 80), None);
        records.record(&event(1_500_000_000, 81), None);
        let request = Request::get("/flows/stream?since=0")
            .body(())
            .expect("a request");
        let response = respond(&state, &request);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/x-ndjson"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let mut body = response.into_body();
        let mut next = || {
            runtime.block_on(async {
                let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                    .await
                    .expect("a frame within 5 s")
                    .expect("the stream goes on")
                    .expect("a frame");
                String::from_utf8(frame.into_data().expect("data").to_vec()).expect("UTF-8")
            })
        };
        let lines = next();
        let line: serde_json::Value = serde_json::from_str(lines.trim()).expect("one JSON line");
        assert_eq!(line["record"]["port"], 80, "{lines}");
        // The next frame is window 1, once it closes.
        records.tick(3_000_000_000);
        let lines = next();
        let line: serde_json::Value = serde_json::from_str(lines.trim()).expect("one JSON line");
        assert_eq!(line["record"]["port"], 81, "{lines}");
    }

    #[test]
    fn explain_answers_what_the_cli_does_for_the_applied_state() {
        let state = state();
        let (status, body) = get(&state, "/explain?from=default/frontend&to=default/backend");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("no state applied"), "{body}");

        let cluster = Arc::new(load_for_test("web", CLUSTER).cluster);
        state.set_applied(cluster.clone(), Scope::default());
        let pods: Vec<String> = cluster
            .pods
            .keys()
            .map(|(ns, name)| format!("{ns}/{name}"))
            .collect();
        assert_eq!(pods, ["default/backend", "default/frontend"]);
        let (from, to) = (&pods[1], &pods[0]);
        let (status, body) = get(
            &state,
            &format!(
                "/explain?from={}&to={}&port=80&protocol=tcp",
                from.replace('/', "%2F"),
                to
            ),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let packet = TracePacket {
            src: verdict::resolve(&cluster, from, 4).expect("from"),
            dst: verdict::resolve(&cluster, to, 4).expect("to"),
            protocol: 6,
            sport: 40_000,
            dport: 80,
        };
        let cli = verdict::render_json(
            &verdict::explain(&cluster, &Scope::default(), &packet).expect("explain"),
        );
        assert_eq!(answer, cli);
        // deny-all isolates the backend's ingress.
        assert_eq!(answer["allowed"], false, "{answer}");
        let (status, body) = get(&state, "/explain?from=nobody/x&to=default/backend");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.starts_with("from:"), "{body}");
        let (status, body) = get(&state, &format!("/explain?from={from}&to={to}&port=x"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("port"), "{body}");
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = query(Some("from=default%2Fweb&to=10.0.0.1&x=a+b&bad=%zz&empty"));
        assert_eq!(q["from"], "default/web");
        assert_eq!(q["to"], "10.0.0.1");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(q["empty"], "");
    }
}
