//! The admin protocol between `gwctl` and the daemon: one JSON request per
//! connection on a Unix socket, one JSON response back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::view::{GroupInfo, IkeSaInfo};
use crate::ike::engine::Stats;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    ListSas,
    /// MOBIKE: move a connection's IKE SAs to our address `local`; with
    /// `check`, MOBIKE-X only asks the peer whether it would (5.3).
    Move {
        conn: String,
        local: std::net::IpAddr,
        #[serde(default)]
        check: bool,
    },
    /// Clone IKE SA (RFC 7791): clone a connection's IKE SAs, moving each
    /// clone to our address `local` (MOBIKE) if given.
    Clone {
        conn: String,
        #[serde(default)]
        local: Option<std::net::IpAddr>,
    },
    /// IKE SA synchronization (draft-xu-ike-sa-sync): rebuild a
    /// connection's IKE SAs on its first standby gateway by IKE_SA_SYN.
    Failover {
        conn: String,
    },
    /// RFC 5685: send a connection's clients (those with identity `peer`,
    /// or all) to gateway `to`.
    Redirect {
        conn: String,
        to: std::net::IpAddr,
        #[serde(default)]
        peer: Option<String>,
    },
    /// MOBIKE-X multihoming: add our address `addr` to (or remove it from)
    /// the child SAs named (none: every one) of a connection's IKE SAs.
    Address {
        conn: String,
        remove: bool,
        addr: std::net::IpAddr,
        #[serde(default)]
        children: Vec<String>,
        #[serde(default)]
        check: bool,
    },
    /// MPSA gateway: expel `member` from `group`; the group rekeys
    /// without it.
    GroupRemove {
        group: String,
        member: String,
    },
    Initiate {
        conn: String,
        /// One child SA of the connection, opened on its IKE SA.
        #[serde(default)]
        child: Option<String>,
    },
    Terminate {
        conn: String,
    },
    Rekey {
        conn: String,
        ike: bool,
    },
    Config,
    Stats,
    /// Re-read the config file: changed connections and groups take
    /// effect, the rest keeps its SAs (`engine/reload.rs`); a file with
    /// errors, or with changes only a restart applies, changes nothing.
    Reload,
    /// What the dataplane holds: SAs, policies, routes, neighbours, group
    /// SAs, run-time addresses, and its ports' counters.
    Dataplane,
    /// The certificates, CAs and CRLs the connections loaded.
    Certs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Sas {
        sas: Vec<IkeSaInfo>,
        groups: Vec<GroupInfo>,
    },
    Done {
        message: String,
    },
    Config {
        text: String,
    },
    Dataplane {
        tables: Box<super::view::DataplaneTables>,
    },
    Stats {
        ike: Box<Stats>,
        half_open: usize,
        dataplane_generation: Option<u64>,
        dataplane_drops: Vec<(String, u64)>,
        /// Commands the cp->dp ring had no room for (the dataplane stuck
        /// or gone; its restart resyncs everything).
        #[serde(default)]
        dataplane_commands_dropped: u64,
        /// Stubs of other gateways' IKE SAs held (draft-xu-ike-sa-sync).
        #[serde(default)]
        stubs_held: usize,
        /// The stub bank, when one is configured: reachability, latency,
        /// lookups.
        #[serde(default)]
        stub_bank: Option<super::stubconn::BankHealth>,
    },
    Certs {
        certs: Vec<super::view::CertInfo>,
    },
    Error {
        message: String,
    },
}

/// Accepts gwctl connections on `path` (mode 0600) and hands each request
/// to the daemon through `to_daemon` with a channel for the answer.
pub fn serve(path: &Path, to_daemon: Sender<super::Input>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(|e| format!("admin socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("admin socket {}: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for s in l.incoming().flatten() {
                let tx = to_daemon.clone();
                let _ = std::thread::Builder::new().name("admin-conn".into()).spawn(move || handle(s, tx));
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn handle(s: UnixStream, tx: Sender<super::Input>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let mut r = BufReader::new(&s);
    if r.read_line(&mut line).is_err() {
        return;
    }
    let resp = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Error { message: format!("bad request: {e}") },
        Ok(req) => {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(super::Input::Admin(req, rtx)).is_err() {
                return;
            }
            rrx.recv_timeout(Duration::from_secs(10))
                .unwrap_or(Response::Error { message: "the daemon did not answer".into() })
        }
    };
    let mut w = &s;
    let _ = serde_json::to_writer(&mut w, &resp);
    let _ = w.write_all(b"\n");
}

/// Client side: one request, one response.
pub fn call(path: &Path, req: &Request) -> Result<Response, String> {
    let mut s =
        UnixStream::connect(path).map_err(|e| format!("{}: {e} (is gw-controlplane running?)", path.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let mut b = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    b.push(b'\n');
    s.write_all(&b).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad response from the daemon: {e}"))
}
