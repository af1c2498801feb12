//! gw-stubbank: the stub bank of draft-xu-ike-sa-sync, centralized mode
//! (section 3.4 item 1). Gateways send it their IKE SA stubs, sealed, in
//! the signaling of section 3.6 (`controlplane::stub::signal`) over TCP
//! with mutual TLS; it files them in etcd (`store`) and hands each out
//! once to the standby gateway a client's SYN reaches. It never holds the
//! cluster key: stubs stay sealed, filed under the index they carry in
//! clear. It keeps no state etcd does not have, so several banks in
//! front of one etcd cluster serve at once.
//!
//! ```text
//! Update, sealed stubs        -> put, each under a lease (expiry)
//! Update, indices alone       -> delete (withdrawn, or used)
//! Get, indices                -> take: Download with each sealed stub,
//!                                or its index alone when not held
//! Get, empty                  -> Download of every stub (a standby's bulk
//!                                load), left in place
//! every Get                   -> ends with an empty Download
//! ```
//!
//! Anything malformed is logged with the gateway's address and dropped;
//! a message that does not frame ends that connection only.

mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use controlplane::stub::seal::sealed_index;
use controlplane::stub::signal::{frame_len, Item, Signal, SignalType};
use controlplane::stub::tls::TlsFiles;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use store::Store;

/// gw-stubbank: IKE SA stubs on etcd, for gateways over mutual TLS.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
}

/// The config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where gateways connect (TCP).
    listen: SocketAddr,
    /// etcd's client endpoints ("http://127.0.0.1:2379", ...).
    etcd: Vec<String>,
    /// The key prefix stubs are filed under.
    #[serde(default = "default_prefix")]
    prefix: String,
    /// A stub not withdrawn expires after this long.
    #[serde(default = "default_lease_secs")]
    lease_secs: i64,
    /// Operations per etcd transaction (etcd's --max-txn-ops).
    #[serde(default = "default_max_txn_ops")]
    max_txn_ops: usize,
    /// Our certificate and key, and the cluster's CA: gateways must
    /// present certificates it signed.
    tls: TlsFiles,
}

fn default_prefix() -> String {
    "gw/stubs/".into()
}
fn default_lease_secs() -> i64 {
    // A day: past any IKE SA lifetime; a rekey exports a new stub.
    86_400
}
fn default_max_txn_ops() -> usize {
    128
}

impl Config {
    fn load(p: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let c: Config = toml::from_str(&text).map_err(|e| format!("{}: {}", p.display(), e.message()))?;
        if c.etcd.is_empty() {
            return Err(format!("{}: etcd: name at least one endpoint", p.display()));
        }
        if c.lease_secs < 10 {
            return Err(format!("{}: lease_secs: {} is under 10", p.display(), c.lease_secs));
        }
        if c.max_txn_ops == 0 {
            return Err(format!("{}: max_txn_ops: 0", p.display()));
        }
        Ok(c)
    }
}

/// What the bank has done, logged on exit.
#[derive(Debug, Default)]
struct Counters {
    filed: AtomicU64,
    deleted: AtomicU64,
    taken: AtomicU64,
    missed: AtomicU64,
    refused: AtomicU64,
    store_errors: AtomicU64,
}

fn log(started: Instant, m: &str) {
    println!("[{:>9.3}] {m}", started.elapsed().as_secs_f64());
}

fn main() {
    let cli = Cli::parse();
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gw-stubbank: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    if let Err(e) = rt.block_on(run(cfg)) {
        eprintln!("gw-stubbank: {e}");
        std::process::exit(1);
    }
}

async fn run(cfg: Config) -> Result<(), String> {
    let started = Instant::now();
    let tls = tokio_rustls::TlsAcceptor::from(cfg.tls.server()?);
    let store = Arc::new(Store::new(cfg.etcd.clone(), cfg.prefix.clone(), cfg.lease_secs, cfg.max_txn_ops));
    let counters = Arc::new(Counters::default());
    let l = TcpListener::bind(cfg.listen).await.map_err(|e| format!("listen {}: {e}", cfg.listen))?;
    log(started, &format!("listening on {} (mutual TLS), etcd {}", cfg.listen, cfg.etcd.join(", ")));
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            a = l.accept() => {
                let Ok((s, from)) = a else { continue };
                let _ = s.set_nodelay(true);
                let (tls, store, counters) = (tls.clone(), store.clone(), counters.clone());
                tokio::spawn(async move {
                    match tls.accept(s).await {
                        Ok(s) => serve(s, from, &store, &counters, started).await,
                        Err(e) => {
                            counters.refused.fetch_add(1, Ordering::Relaxed);
                            log(started, &format!("{from}: TLS refused: {e}"));
                        }
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    let c = &counters;
    log(
        started,
        &format!(
            "stopping: filed {} deleted {} taken {} missed {} refused {} store errors {}",
            c.filed.load(Ordering::Relaxed),
            c.deleted.load(Ordering::Relaxed),
            c.taken.load(Ordering::Relaxed),
            c.missed.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            c.store_errors.load(Ordering::Relaxed)
        ),
    );
    Ok(())
}

/// Reads one message; None at the end of the stream or when the length
/// does not frame one (the stream cannot be followed after that).
async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 4];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let Some(n) = frame_len(&head).filter(|n| *n >= 4) else { return Ok(None) };
    let mut m = head.to_vec();
    m.resize(n, 0);
    s.read_exact(&mut m[4..]).await?;
    Ok(Some(m))
}

/// One gateway's connection.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    from: SocketAddr,
    store: &Store,
    c: &Counters,
    started: Instant,
) {
    loop {
        let m = match read_message(&mut s).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => return log(started, &format!("{from}: {e}")),
        };
        let sig = match Signal::parse(&m) {
            Ok(sig) => sig,
            Err(e) => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                log(started, &format!("{from}: {e}"));
                continue;
            }
        };
        let r = match sig.ty {
            SignalType::Update => update(sig.items, from, store, c, started).await,
            SignalType::Get => match get(&sig.items, store, c).await {
                Ok(out) => {
                    let mut w = Vec::new();
                    for m in out {
                        w.extend(m);
                    }
                    if s.write_all(&w).await.and(s.flush().await).is_err() {
                        return;
                    }
                    Ok(())
                }
                Err(e) => {
                    // Not answered: the gateway's lookup times out and
                    // its client gets the full exchange.
                    c.store_errors.fetch_add(1, Ordering::Relaxed);
                    log(started, &format!("{from}: Get not answered: {e}"));
                    return;
                }
            },
            SignalType::Download => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                Err("a Download sent to the bank".into())
            }
        };
        if let Err(e) = r {
            c.store_errors.fetch_add(1, Ordering::Relaxed);
            log(started, &format!("{from}: {e} (etcd endpoint in use: {})", store.endpoint()));
        }
    }
}

/// Files the sealed stubs, deletes the indices.
async fn update(
    items: Vec<Item>,
    from: SocketAddr,
    store: &Store,
    c: &Counters,
    started: Instant,
) -> Result<(), String> {
    let (mut put, mut del) = (Vec::new(), Vec::new());
    for it in items {
        match it {
            // The index in the sealed header must be the one it is filed
            // under (it is authenticated: a standby opening it checks).
            Item::Sealed { index, sealed } if sealed_index(&sealed).is_ok_and(|i| i == index) => {
                put.push((index, sealed))
            }
            Item::Sealed { index, .. } => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                log(started, &format!("{from}: a sealed stub filed under {index} carries another index: dropped"));
            }
            Item::Index(i) => del.push(i),
        }
    }
    store.put(&put).await?;
    c.filed.fetch_add(put.len() as u64, Ordering::Relaxed);
    store.delete(&del).await?;
    c.deleted.fetch_add(del.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// The Downloads that answer a Get, the empty one last.
async fn get(want: &[Item], store: &Store, c: &Counters) -> Result<Vec<Vec<u8>>, String> {
    let items: Vec<Item> = if want.is_empty() {
        store
            .all()
            .await?
            .into_iter()
            .filter_map(|sealed| sealed_index(&sealed).ok().map(|index| Item::Sealed { index, sealed }))
            .collect()
    } else {
        let idx: Vec<_> = want.iter().map(Item::index).collect();
        let got = store.take(&idx).await?;
        idx.into_iter()
            .zip(got)
            .map(|(index, g)| match g {
                Some(sealed) => {
                    c.taken.fetch_add(1, Ordering::Relaxed);
                    Item::Sealed { index, sealed }
                }
                None => {
                    c.missed.fetch_add(1, Ordering::Relaxed);
                    Item::Index(index)
                }
            })
            .collect()
    };
    Ok(Signal::answer(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example (the package's /usr/share/doc/ipsec-gw/examples)
    /// is a config the bank takes, and unknown fields are refused.
    #[test]
    fn the_example_config_loads_and_unknown_fields_are_errors() {
        let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/stubbank.example.toml"));
        let c: Config = toml::from_str(text).expect("the example loads");
        assert_eq!((c.etcd.len(), c.max_txn_ops, c.prefix.as_str()), (3, 1024, "gw/stubs/"));
        let bad = format!("{text}\nbogus = 1\n");
        assert!(toml::from_str::<Config>(&bad).unwrap_err().to_string().contains("bogus"));
    }
}
