//! DNS in the lab: a responder a pod runs on its UDP container ports named `dns` (the kube-dns
//! pattern), answering A and AAAA queries for `<service>.<namespace>.svc.cluster.local` from
//! the Services that exist at the time, and the query a probe with `dnsQuery` sends. Both are
//! real DNS messages (RFC 1035, encoded and parsed by `simple-dns`).

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use simple_dns::{
    CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, ResourceRecord, TYPE,
    rdata::{A, AAAA, RData},
};

/// Names the lab's DNS responders answer: `<service>.<namespace>.svc.cluster.local` → its
/// ClusterIPs, for the Services that exist now.
pub type DnsTable = Arc<RwLock<BTreeMap<String, Vec<IpAddr>>>>;

const TTL: u32 = 5;
const MAX_QUERIES: usize = 100_000;

/// A query for `name` of type A (`v6` false) or AAAA, with identifier `id`.
pub fn query(id: u16, name: &str, v6: bool) -> anyhow::Result<Vec<u8>> {
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    let qtype = if v6 { TYPE::AAAA } else { TYPE::A };
    packet.questions.push(Question::new(
        Name::new(name)?,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    Ok(packet.build_bytes_vec()?)
}

/// The addresses an answer to `query(id, name, v6)` carries, or why it is not one.
pub fn parse_answer(bytes: &[u8], id: u16, name: &str, v6: bool) -> Result<Vec<IpAddr>, String> {
    let packet = Packet::parse(bytes).map_err(|e| format!("not a DNS message: {e}"))?;
    if packet.id() != id || !packet.has_flags(PacketFlag::RESPONSE) {
        return Err("not the answer to this query".to_owned());
    }
    if packet.rcode() != RCODE::NoError {
        return Err(format!("DNS error {:?}", packet.rcode()));
    }
    let wanted = name.trim_end_matches('.');
    let addresses: Vec<IpAddr> = packet
        .answers
        .iter()
        .filter(|rr| {
            rr.name
                .to_string()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(wanted)
        })
        .filter_map(|rr| match (&rr.rdata, v6) {
            (RData::A(a), false) => Some(IpAddr::V4(a.address.into())),
            (RData::AAAA(a), true) => Some(IpAddr::V6(a.address.into())),
            _ => None,
        })
        .collect();
    if addresses.is_empty() {
        return Err("answer without addresses".to_owned());
    }
    Ok(addresses)
}

/// The reply to one query: the names' addresses of the asked family, NXDOMAIN for names the
/// table lacks, FORMERR for what is not a one-question query.
pub fn answer(request: &[u8], table: &DnsTable) -> Option<Vec<u8>> {
    let query = Packet::parse(request).ok()?;
    if query.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    let [question] = query.questions.as_slice() else {
        *reply.rcode_mut() = RCODE::FormatError;
        return reply.build_bytes_vec().ok();
    };
    reply.questions.push(question.clone());
    let asked = question.qname.to_string();
    let asked = asked.trim_end_matches('.').to_ascii_lowercase();
    let known = table.read().ok().and_then(|t| t.get(&asked).cloned());
    match known {
        None => *reply.rcode_mut() = RCODE::NameError,
        Some(addresses) => {
            for ip in addresses {
                let rdata = match (ip, question.qtype) {
                    (IpAddr::V4(v4), QTYPE::TYPE(TYPE::A)) => RData::A(A { address: v4.into() }),
                    (IpAddr::V6(v6), QTYPE::TYPE(TYPE::AAAA)) => {
                        RData::AAAA(AAAA { address: v6.into() })
                    }
                    _ => continue,
                };
                reply.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    TTL,
                    rdata,
                ));
            }
        }
    }
    reply.build_bytes_vec().ok()
}

/// Serves DNS on `socket` until aborted.
pub async fn serve(socket: tokio::net::UdpSocket, table: DnsTable) {
    let mut buf = [0u8; 1500];
    for _ in 0..MAX_QUERIES {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if let Some(reply) = answer(&buf[..n], &table)
                    && let Err(e) = socket.send_to(&reply, peer).await
                {
                    tracing::debug!(%peer, error = %e, "DNS reply");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "DNS receive");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    tracing::warn!("DNS responder reached {MAX_QUERIES} queries; stopping");
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::{Arc, RwLock},
    };

    use super::*;

    #[test]
    fn round_trip() -> anyhow::Result<()> {
        let table: DnsTable = Arc::new(RwLock::new(BTreeMap::from([(
            "backend.default.svc.cluster.local".to_owned(),
            vec!["10.96.0.20".parse()?, "fd00:96::14".parse()?],
        )])));
        let q = query(7, "backend.default.svc.cluster.local", false)?;
        let reply = answer(&q, &table).ok_or_else(|| anyhow::anyhow!("no reply"))?;
        assert_eq!(
            parse_answer(&reply, 7, "backend.default.svc.cluster.local", false),
            Ok(vec!["10.96.0.20".parse()?])
        );
        let q6 = query(8, "backend.default.svc.cluster.local", true)?;
        let reply = answer(&q6, &table).ok_or_else(|| anyhow::anyhow!("no reply"))?;
        assert_eq!(
            parse_answer(&reply, 8, "backend.default.svc.cluster.local", true),
            Ok(vec!["fd00:96::14".parse()?])
        );
        let missing = query(9, "nope.default.svc.cluster.local", false)?;
        let reply = answer(&missing, &table).ok_or_else(|| anyhow::anyhow!("no reply"))?;
        assert!(parse_answer(&reply, 9, "nope.default.svc.cluster.local", false).is_err());
        // An echo of the query is no answer.
        assert!(parse_answer(&q, 7, "backend.default.svc.cluster.local", false).is_err());
        Ok(())
    }
}
