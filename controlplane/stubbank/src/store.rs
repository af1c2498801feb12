//! The bank's store: etcd (Debian etcd-server), one key per stub,
//!
//! ```text
//! <prefix><family 4|6>/<gateway address>/<gateway SPI, 16 hex digits>  ->  the sealed stub
//! ```
//!
//! put with a lease so a stub whose gateway never withdraws it (the
//! gateway died with the SA) expires on its own. Writes go in
//! transactions of at most `max_txn_ops` operations (etcd's
//! `--max-txn-ops`, 128 by default): 10,000 stubs in one raft commit per
//! transaction instead of one each. A lookup takes the stub (delete with
//! its previous value, one transaction), so a stub is handed out once,
//! whichever bank is asked (single use, draft-xu-ike-sa-sync 5 item 2).
//!
//! The client does not route around a dead member by itself: each
//! endpoint has a client of its own, and an operation that fails on one
//! is tried on the next. The bank keeps nothing etcd does not have.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use controlplane::stub::StubIndex;
use etcd_client::{
    Client, ConnectOptions, DeleteOptions, GetOptions, GetResponse, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use tokio::sync::Mutex;

/// One request to etcd, made again on the next endpoint when one fails.
#[derive(Debug, Clone)]
enum Op {
    LeaseGrant(i64),
    Txn(Txn),
    GetPrefix(String),
}

/// Its answer.
enum Answer {
    Lease(i64),
    Txn(TxnResponse),
    Get(GetResponse),
}

async fn call(c: &mut Client, op: Op) -> Result<Answer, etcd_client::Error> {
    Ok(match op {
        Op::LeaseGrant(ttl) => Answer::Lease(c.lease_grant(ttl, None).await?.id()),
        Op::Txn(t) => Answer::Txn(c.txn(t).await?),
        Op::GetPrefix(p) => Answer::Get(c.get(p, Some(GetOptions::new().with_prefix())).await?),
    })
}

/// etcd behind its endpoints.
pub struct Store {
    endpoints: Vec<String>,
    clients: Vec<Mutex<Option<Client>>>,
    /// The endpoint that answered last.
    at: AtomicUsize,
    prefix: String,
    lease_secs: i64,
    max_txn_ops: usize,
}

/// The key of `index` under `prefix`.
pub fn key(prefix: &str, index: &StubIndex) -> String {
    let family = if index.gateway.is_ipv4() { 4 } else { 6 };
    format!("{prefix}{family}/{}/{:016x}", index.gateway, index.spi)
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.endpoints.join(", "))
    }
}

impl Store {
    pub fn new(endpoints: Vec<String>, prefix: String, lease_secs: i64, max_txn_ops: usize) -> Store {
        let clients = endpoints.iter().map(|_| Mutex::new(None)).collect();
        Store { endpoints, clients, at: AtomicUsize::new(0), prefix, lease_secs, max_txn_ops: max_txn_ops.max(1) }
    }

    /// The endpoint last answered.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.at.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// Runs `op` on the endpoint that answered last, then on each other
    /// one in turn until one answers; every error when none does.
    async fn with_client(&self, what: &str, op: Op) -> Result<Answer, String> {
        let n = self.endpoints.len();
        let start = self.at.load(Ordering::Relaxed);
        let mut why = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            let mut slot = self.clients[i].lock().await;
            if slot.is_none() {
                let o = ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(1))
                    .with_timeout(Duration::from_secs(3));
                match Client::connect([self.endpoints[i].as_str()], Some(o)).await {
                    Ok(c) => *slot = Some(c),
                    Err(e) => {
                        why.push(format!("{}: {e}", self.endpoints[i]));
                        continue;
                    }
                }
            }
            let c = slot.as_mut().expect("just set");
            match call(c, op.clone()).await {
                Ok(t) => {
                    self.at.store(i, Ordering::Relaxed);
                    return Ok(t);
                }
                Err(e) => {
                    // Built again next time: a channel to a dead member
                    // keeps failing.
                    *slot = None;
                    why.push(format!("{}: {e}", self.endpoints[i]));
                }
            }
        }
        Err(format!("etcd {what}: no endpoint answered ({})", why.join("; ")))
    }

    /// Files `stubs` (index, sealed), each under a lease of `lease_secs`.
    pub async fn put(&self, stubs: &[(StubIndex, Vec<u8>)]) -> Result<(), String> {
        if stubs.is_empty() {
            return Ok(());
        }
        let Answer::Lease(lease) = self.with_client("lease grant", Op::LeaseGrant(self.lease_secs)).await? else {
            return Err("etcd lease grant: another answer".into());
        };
        for chunk in stubs.chunks(self.max_txn_ops) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|(i, v)| TxnOp::put(key(&self.prefix, i), v.clone(), Some(PutOptions::new().with_lease(lease))))
                .collect();
            self.with_client("put", Op::Txn(Txn::new().and_then(ops))).await?;
        }
        Ok(())
    }

    /// Forgets `indices` (withdrawn or used).
    pub async fn delete(&self, indices: &[StubIndex]) -> Result<(), String> {
        for chunk in indices.chunks(self.max_txn_ops) {
            let ops: Vec<TxnOp> = chunk.iter().map(|i| TxnOp::delete(key(&self.prefix, i), None)).collect();
            self.with_client("delete", Op::Txn(Txn::new().and_then(ops))).await?;
        }
        Ok(())
    }

    /// Takes the stubs of `indices` out: each its sealed stub, or None
    /// when not held.
    pub async fn take(&self, indices: &[StubIndex]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut out = Vec::with_capacity(indices.len());
        for chunk in indices.chunks(self.max_txn_ops) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|i| TxnOp::delete(key(&self.prefix, i), Some(DeleteOptions::new().with_prev_key())))
                .collect();
            let Answer::Txn(r) = self.with_client("take", Op::Txn(Txn::new().and_then(ops))).await? else {
                return Err("etcd take: another answer".into());
            };
            for resp in r.op_responses() {
                out.push(match resp {
                    TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|kv| kv.value().to_vec()),
                    _ => None,
                });
            }
        }
        out.resize(indices.len(), None);
        Ok(out)
    }

    /// Every stub held (a standby's bulk Download), left in place.
    pub async fn all(&self) -> Result<Vec<Vec<u8>>, String> {
        let Answer::Get(r) = self.with_client("get", Op::GetPrefix(self.prefix.clone())).await? else {
            return Err("etcd get: another answer".into());
        };
        Ok(r.kvs().iter().map(|kv| kv.value().to_vec()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_family_address_and_spi() {
        let i = StubIndex { gateway: "10.0.0.1".parse().unwrap(), spi: 0xab };
        assert_eq!(key("gw/stubs/", &i), "gw/stubs/4/10.0.0.1/00000000000000ab");
        let i = StubIndex { gateway: "fd00::1".parse().unwrap(), spi: u64::MAX };
        assert_eq!(key("p/", &i), "p/6/fd00::1/ffffffffffffffff");
    }
}
