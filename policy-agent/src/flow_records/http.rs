//! Flow records over HTTP: `GET /flows?since=N` answers the closed windows numbered N or later
//! that are still kept, and the open window, as one JSON object ([`super::live::Snapshot`]);
//! a reader passes the `next` it was given to get only what is new.
//!
//! Records name workloads, so this listener is separate from `/metrics` (which a cluster's
//! Prometheus scrapes from everywhere) and binds where the operator says, loopback by default.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::live::FlowRecords;

/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `records` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, records: Arc<FlowRecords>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accepting a flow records connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let records = records.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&records, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "flow records connection");
            }
        });
    }
}

fn respond<B>(records: &FlowRecords, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    if request.uri().path() != "/flows" {
        return plain(StatusCode::NOT_FOUND, "not found: try /flows?since=0\n");
    }
    let since = match since(request.uri().query()) {
        Ok(since) => since,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    match serde_json::to_vec(&records.snapshot(since)) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding the records: {e}\n"),
        ),
    }
}

/// `since=N` from the query (0 when absent).
fn since(query: Option<&str>) -> Result<u64, String> {
    let Some(query) = query else {
        return Ok(0);
    };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("since=") {
            return value
                .parse()
                .map_err(|e| format!("since={value:?}: not a window number: {e}\n"));
        }
    }
    Ok(0)
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;
    use crate::flow_records::Limits;

    fn get(records: &FlowRecords, uri: &str) -> (StatusCode, String) {
        let request = Request::get(uri).body(()).expect("a request");
        let response = respond(records, &request);
        let status = response.status();
        let body = futures_body(response);
        (status, body)
    }

    fn futures_body(response: Response<Full<Bytes>>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let bytes = runtime
            .block_on(response.into_body().collect())
            .expect("the body")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn flows_answers_json_and_refuses_what_it_cannot_read() {
        let records = FlowRecords::new(Limits::default());
        let (status, body) = get(&records, "/flows");
        assert_eq!(status, StatusCode::OK);
        let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(value["next"], 0);
        assert_eq!(value["closed"], serde_json::json!([]));
        assert_eq!(get(&records, "/flows?since=3").0, StatusCode::OK);
        let (status, body) = get(&records, "/flows?since=x");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("since=\"x\""), "{body}");
        assert_eq!(get(&records, "/metrics").0, StatusCode::NOT_FOUND);
    }
}
