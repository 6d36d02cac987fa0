//! The agent's small HTTP/1.1 servers (`/healthz` and `/metrics` in [`crate::health`], the web
//! view in [`crate::web`]): one accept loop, one connection setup, a handler per server.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// A response's body: whole (most answers) or streamed (`/flows/stream`).
pub type Body = BoxBody<Bytes, Infallible>;

/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers each request on `listener` with `respond` until the task is dropped; `what` names
/// the server in logs.
pub async fn serve<S, F>(listener: TcpListener, what: &'static str, state: Arc<S>, respond: F)
where
    S: Send + Sync + 'static,
    F: Fn(&S, &Request<Incoming>) -> Response<Body> + Copy + Send + Sync + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!(error = %e, server = what, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&state, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, server = what, "connection");
            }
        });
    }
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(whole(Bytes::from(body.into())));
    *response.status_mut() = status;
    response
}

/// A body sent whole.
pub fn whole(bytes: Bytes) -> Body {
    Full::new(bytes).boxed()
}
