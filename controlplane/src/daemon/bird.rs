//! The edge to BIRD's control socket (MPSA peer discovery, `crate::bgp`):
//! a thread that asks an endpoint's speaker for the routes it learned
//! from the hub every `poll_ms`, and has a hub's speaker read its member
//! filter again when the daemon rewrote it. What it reads goes to the
//! main loop; it changes nothing itself.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::bgp::bird::HUB_SESSION;
use crate::bgp::birdc::{learned, routes, Reply};
use crate::bgp::{BgpConfig, LearnedRoute, Side};

/// What the thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BirdInput {
    /// Endpoint: every route learned from the hub now (sent when it
    /// changed, and after the speaker was unreachable).
    Routes(Vec<LearnedRoute>),
    /// The speaker cannot be asked (why); sent once per cause.
    Unreachable(String),
    /// Hub: the speaker read the member filter again (or why not).
    Reconfigured(Result<(), String>),
}

/// The daemon's handle: asks a hub's speaker to reconfigure.
#[derive(Debug)]
pub struct BirdLink {
    configure: mpsc::Sender<()>,
}

impl BirdLink {
    pub fn reconfigure(&self) {
        let _ = self.configure.send(());
    }
}

/// One command, one reply: connects, reads the greeting, sends `cmd`.
pub fn ask(socket: &Path, cmd: &str) -> Result<Reply, String> {
    let s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let read_reply = |r: &mut BufReader<UnixStream>| -> Result<Reply, String> {
        let mut reply = Reply::default();
        let mut line = String::new();
        while !reply.is_done() {
            line.clear();
            if r.read_line(&mut line).map_err(|e| format!("{}: {e}", socket.display()))? == 0 {
                return Err(format!("{}: closed in the middle of a reply", socket.display()));
            }
            reply.feed(line.trim_end_matches('\n')).map_err(|e| e.to_string())?;
        }
        Ok(reply)
    };
    read_reply(&mut r)?;
    w.write_all(format!("{cmd}\n").as_bytes()).map_err(|e| format!("{}: {e}", socket.display()))?;
    read_reply(&mut r)
}

/// The routes an endpoint's speaker learned from the hub, both families.
pub fn learned_routes(socket: &Path) -> Result<Vec<LearnedRoute>, String> {
    let mut out = Vec::new();
    for table in ["master4", "master6"] {
        let reply = ask(socket, &format!("show route all table {table} protocol {HUB_SESSION}"))?;
        let rs = routes(&reply).map_err(|e| e.to_string())?;
        out.extend(learned(&rs, HUB_SESSION));
    }
    out.sort();
    Ok(out)
}

/// Starts the thread.
pub fn spawn(cfg: &BgpConfig, deliver: impl Fn(BirdInput) + Send + 'static) -> Result<BirdLink, String> {
    let (tx, rx) = mpsc::channel::<()>();
    let socket: PathBuf = cfg.socket.clone();
    let poll = cfg.poll;
    let endpoint = matches!(cfg.side, Side::Endpoint { .. });
    std::thread::Builder::new()
        .name("bird".into())
        .spawn(move || {
            let mut last: Option<Result<Vec<LearnedRoute>, String>> = None;
            loop {
                match rx.recv_timeout(poll) {
                    Ok(()) => {
                        while rx.try_recv().is_ok() {}
                        let r = ask(&socket, "configure").map(|_| ());
                        deliver(BirdInput::Reconfigured(r));
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                if !endpoint {
                    continue;
                }
                let now = learned_routes(&socket);
                if last.as_ref() != Some(&now) {
                    match &now {
                        Ok(r) => deliver(BirdInput::Routes(r.clone())),
                        Err(e) => deliver(BirdInput::Unreachable(e.clone())),
                    }
                    last = Some(now);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(BirdLink { configure: tx })
}

/// Writes the hub's member filter where BIRD reads it: a new file renamed
/// over the old, so BIRD never reads half of one.
pub fn write_filter(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A socket that answers like BIRD: the greeting, then `reply`.
    fn fake_bird(dir: &Path, reply: &'static str) -> PathBuf {
        let path = dir.join("bird.ctl");
        let l = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                s.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
                let mut line = String::new();
                BufReader::new(s.try_clone().unwrap()).read_line(&mut line).unwrap();
                s.write_all(reply.as_bytes()).unwrap();
            }
        });
        path
    }

    #[test]
    fn routes_are_read_over_the_socket() {
        let dir = tempdir();
        let reply = "1007-Table master4:\n 10.1.2.0/24 unreachable [gw_hub 12:00:00.000 from 10.0.0.10] * (100/-) [i]\n1012-\tBGP.next_hop: 192.0.2.12\n0000 \n";
        let path = fake_bird(&dir, reply);
        let r = learned_routes(&path).unwrap();
        // Both tables asked; the fake answers the same to each.
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].to_string(), "10.1.2.0/24 via 192.0.2.12");
        let gone = learned_routes(&dir.join("nothing.ctl")).unwrap_err();
        assert!(gone.contains("nothing.ctl"), "{gone}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refusal_is_an_error_that_says_so() {
        let dir = tempdir();
        let path = fake_bird(&dir, "8001 Protocol is down\n");
        assert!(ask(&path, "configure").unwrap_err().contains("8001"));
        write_filter(&dir.join("members.conf"), "function f() { return false; }\n").unwrap();
        assert!(std::fs::read_to_string(dir.join("members.conf")).unwrap().starts_with("function"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("gw-bird-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
