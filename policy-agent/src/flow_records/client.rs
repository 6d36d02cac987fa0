//! `policy-agent flows --agent ADDR`: reads a running agent's flow records (`GET /flows`),
//! filters them and prints each closed window once.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use thiserror::Error;

use super::{
    aggregate::{Record, Verdict, Window},
    live::Snapshot,
    workloads::Workload,
};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("connecting to the agent's flow records at {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("asking {addr} for /flows")]
    Http {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("{addr} answered {status}: {body}")]
    Status {
        addr: SocketAddr,
        status: http::StatusCode,
        body: String,
    },
    #[error("reading {addr}'s answer")]
    Decode {
        addr: SocketAddr,
        #[source]
        source: serde_json::Error,
    },
    #[error("the request for {addr}")]
    Request {
        addr: SocketAddr,
        #[source]
        source: http::Error,
    },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's windows closed since `since`, and its open one.
pub async fn fetch(addr: SocketAddr, since: u64) -> Result<Snapshot, ClientError> {
    tokio::time::timeout(REQUEST_TIMEOUT, fetch_now(addr, since))
        .await
        .map_err(|_| ClientError::Timeout {
            addr,
            timeout: REQUEST_TIMEOUT,
        })?
}

async fn fetch_now(addr: SocketAddr, since: u64) -> Result<Snapshot, ClientError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect { addr, source })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ClientError::Http { addr, source })?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("/flows?since={since}"))
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|source| ClientError::Request { addr, source })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|source| ClientError::Http { addr, source })?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| ClientError::Http { addr, source })?
        .to_bytes();
    connection.abort();
    if !status.is_success() {
        return Err(ClientError::Status {
            addr,
            status,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode { addr, source })
}

/// Which records a reader wants; every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Either end's namespace.
    pub namespace: Option<String>,
    /// Either end's pod, as `name` or `namespace/name`.
    pub pod: Option<String>,
    pub verdict: Option<Verdict>,
    /// A substring of the deciding rule (`tier`, `namespace/policy`, `ingress[2]`, ...).
    pub policy: Option<String>,
}

impl Filter {
    pub fn matches(&self, record: &Record) -> bool {
        let ends = [&record.key.src, &record.key.dst];
        self.namespace
            .as_deref()
            .is_none_or(|ns| ends.iter().any(|w| w.namespace() == Some(ns)))
            && self
                .pod
                .as_deref()
                .is_none_or(|pod| ends.iter().any(|w| is_pod(w, pod)))
            && self.verdict.is_none_or(|v| record.key.verdict == v)
            && self
                .policy
                .as_deref()
                .is_none_or(|p| record.key.decided_by.contains(p))
    }
}

fn is_pod(workload: &Workload, wanted: &str) -> bool {
    let Workload::Pod { namespace, name } = workload else {
        return false;
    };
    match wanted.split_once('/') {
        Some((ns, pod)) => ns == namespace && pod == name,
        None => wanted == name,
    }
}

/// A record as a line of text.
pub fn render_text(window: &Window, record: &Record) -> String {
    let verdict = match (record.key.verdict, &record.key.reason) {
        (Verdict::Allow, _) => "allow".to_owned(),
        (Verdict::Deny, Some(reason)) => format!("deny ({reason})"),
        (Verdict::Deny, None) => "deny".to_owned(),
    };
    let reporter = match record.key.reporter {
        super::aggregate::Reporter::Egress => "egress",
        super::aggregate::Reporter::Ingress => "ingress",
    };
    let pending = record
        .key
        .pending
        .as_ref()
        .map_or(String::new(), |pending| {
            let verdict = match pending.verdict {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            };
            format!("; staged: {verdict} by {}", pending.decided_by)
        });
    let service = record
        .key
        .service
        .as_ref()
        .map_or(String::new(), |service| format!(" via {service}"));
    let traffic = &record.traffic;
    format!(
        "{:>10.1}s {} -> {}{service} proto {} port {} {verdict} at {reporter}: {}{pending} \
         ({} flows; {} pkts {} B sent, {} pkts {} B replied)",
        window.start_ns as f64 / 1e9,
        record.key.src,
        record.key.dst,
        record.key.protocol,
        record.key.port,
        record.key.decided_by,
        record.flows,
        traffic.src_packets,
        traffic.src_bytes,
        traffic.dst_packets,
        traffic.dst_bytes,
    )
}

/// A closed window as the JSON lines `policy-agent flows --agent --json` prints and
/// `GET /flows/stream` sends: one per record, then one for what the window lost, if anything
/// (losses are never silent).
pub fn json_lines<'a>(
    window: &'a Window,
    filter: &'a Filter,
) -> impl Iterator<Item = serde_json::Value> + 'a {
    let records = window
        .records
        .iter()
        .filter(|r| filter.matches(r))
        .map(|record| {
            serde_json::json!({
                "window_start_ns": window.start_ns,
                "window_end_ns": window.end_ns,
                "record": record,
            })
        });
    let losses = (window.lost_allowed + window.lost_denied > 0).then(|| {
        serde_json::json!({
            "window_start_ns": window.start_ns,
            "lost_allowed": window.lost_allowed,
            "lost_denied": window.lost_denied,
        })
    });
    records.chain(losses)
}

/// What a full window lost, as a line (none when nothing was lost).
pub fn render_losses(window: &Window) -> Option<String> {
    (window.lost_allowed + window.lost_denied > 0).then(|| {
        format!(
            "{:>10.1}s window full: {} allowed and {} denied flows not recorded",
            window.start_ns as f64 / 1e9,
            window.lost_allowed,
            window.lost_denied
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_records::aggregate::{RecordKey, Reporter};

    fn record(src: Workload, verdict: Verdict, decided_by: &str) -> Record {
        Record {
            key: RecordKey {
                src,
                dst: Workload::Address {
                    address: "192.0.2.1".parse().expect("an address"),
                },
                protocol: 6,
                port: 443,
                reporter: Reporter::Egress,
                verdict,
                decided_by: decided_by.to_owned(),
                reason: None,
                pending: None,
                service: None,
            },
            flows: 3,
            traffic: Default::default(),
            first_ns: 0,
            last_ns: 0,
        }
    }

    #[test]
    fn filters_match_either_end_and_every_field_set() {
        let web = Workload::Pod {
            namespace: "shop".to_owned(),
            name: "web".to_owned(),
        };
        let denied = record(web, Verdict::Deny, "security: shop/np.lockdown egress[0]");
        assert!(Filter::default().matches(&denied));
        let only = |f: Filter| f.matches(&denied);
        assert!(only(Filter {
            namespace: Some("shop".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            namespace: Some("kube-system".into()),
            ..Filter::default()
        }));
        assert!(only(Filter {
            pod: Some("web".into()),
            ..Filter::default()
        }));
        assert!(only(Filter {
            pod: Some("shop/web".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            pod: Some("other/web".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            verdict: Some(Verdict::Allow),
            policy: Some("lockdown".into()),
            ..Filter::default()
        }));
        assert!(only(Filter {
            verdict: Some(Verdict::Deny),
            policy: Some("lockdown".into()),
            ..Filter::default()
        }));
    }
}
