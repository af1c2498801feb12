//! gw-stubbank against a real etcd (Debian etcd-server, three members on
//! loopback, started here), spoken to as a gateway speaks to it
//! (`controlplane::daemon::stubconn`, mutual TLS): draft-xu-ike-sa-sync
//! 3.4 item 1 and 3.6. #[ignore]: needs etcd; test.sh runs them.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlplane::crypto::{Secret, SeededRandom};
use controlplane::daemon::stubconn::{self, Conn, Tls};
use controlplane::ike::proposal;
use controlplane::stub::seal::{self, ClusterKey};
use controlplane::stub::signal::{Item, Signal, SignalType};
use controlplane::stub::tls::TlsFiles;
use controlplane::stub::{IkeSaStub, StubIndex};
use controlplane::wire::Identification;
use rustls::pki_types::pem::PemObject;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Children killed (by PID) when dropped.
struct Procs(Vec<Option<Child>>);

impl Procs {
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.0[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for i in 0..self.0.len() {
            self.kill(i);
        }
    }
}

/// A three-member etcd cluster on loopback; its client URLs.
fn etcd(dir: &Path) -> (Procs, Vec<String>) {
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster: Vec<String> = peers.iter().enumerate().map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}")).collect();
    let token = format!("t{}", std::process::id());
    let procs = (0..3)
        .map(|i| {
            let log = std::fs::File::create(dir.join(format!("etcd{i}.log"))).expect("log");
            let c = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.join(format!("m{i}")))
                .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", clients[i])])
                .args(["--advertise-client-urls", &format!("http://127.0.0.1:{}", clients[i])])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", peers[i])])
                .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", peers[i])])
                .args(["--initial-cluster", &cluster.join(",")])
                .args(["--initial-cluster-state", "new", "--initial-cluster-token", &token])
                .args(["--max-txn-ops", "1024", "--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("etcd (Debian etcd-server; setup.sh installs it)");
            Some(c)
        })
        .collect();
    (Procs(procs), clients.iter().map(|p| format!("http://127.0.0.1:{p}")).collect())
}

/// A CA, a certificate for the bank (127.0.0.1) and one per gateway.
fn certs(dir: &Path, tag: &str, names: &[&str]) -> Vec<TlsFiles> {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca = ca.self_signed(&ca_key).expect("ca");
    let ca_path = dir.join(format!("{tag}-ca.pem"));
    std::fs::write(&ca_path, ca.pem()).expect("write");
    names
        .iter()
        .map(|n| {
            let k = rcgen::KeyPair::generate().expect("key");
            let c = rcgen::CertificateParams::new(vec![n.to_string()]).expect("params").signed_by(&k, &ca, &ca_key);
            let (cert, key) = (dir.join(format!("{tag}-{n}.pem")), dir.join(format!("{tag}-{n}.key")));
            std::fs::write(&cert, c.expect("cert").pem()).expect("write");
            std::fs::write(&key, k.serialize_pem()).expect("write");
            TlsFiles { cert, key, ca: ca_path.clone() }
        })
        .collect()
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gw-stubbank"))
}

/// gw-stubbank on a free port in front of `etcd`.
fn bank(dir: &Path, name: &str, etcd: &[String], tls: &TlsFiles, lease_secs: u32) -> (Procs, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let cfg = dir.join(format!("{name}.toml"));
    let quoted: Vec<String> = etcd.iter().map(|e| format!("{e:?}")).collect();
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{addr}\"\netcd = [{}]\nlease_secs = {lease_secs}\nmax_txn_ops = 1024\n[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
            quoted.join(", "),
            tls.cert,
            tls.key,
            tls.ca
        ),
    )
    .expect("write");
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    let c = Command::new(bin()).arg("--config").arg(&cfg).stdout(log).stderr(Stdio::inherit()).spawn().expect("bank");
    (Procs(vec![Some(c)]), addr)
}

fn tls(f: &TlsFiles) -> Tls {
    Tls { client: f.client().expect("client"), server: f.server().expect("server") }
}

fn dial(addr: SocketAddr, t: &Tls) -> std::io::Result<Box<dyn Conn>> {
    stubconn::dial(addr, Some(t), None, Some(Duration::from_secs(5)))
}

/// A connection once the bank and etcd answer a Get (the cluster may
/// still be electing a leader).
fn ready(addr: SocketAddr, t: &Tls) -> Box<dyn Conn> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = dial(addr, t) {
            if stubconn::get(&mut c, &[index(0)]).is_ok() {
                return c;
            }
        }
        assert!(Instant::now() < until, "the bank at {addr} never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn index(n: u64) -> StubIndex {
    let gateway: IpAddr = if n % 2 == 0 { "10.70.0.1".parse().unwrap() } else { "fd70::1".parse().unwrap() };
    StubIndex { gateway, spi: 0x5000 + n }
}

fn stub(n: u64) -> IkeSaStub {
    let i = index(n);
    let suite = proposal::parse_ike("aes128gcm16-prfsha256-x25519").expect("suite");
    IkeSaStub {
        index: i,
        gateway_port: 4500,
        spi_i: 0x9000 + n,
        spi_r: i.spi,
        id_i: Identification::from_text(&format!("cpe{n}.lab")),
        id_r: Identification::from_text("hub.lab"),
        proposal: proposal::ike_proposals(&[suite], None).remove(0),
        sk_d: Secret::new(vec![n as u8; 32]),
        g_ir: Secret::new(vec![0x42; 32]),
        peer: SocketAddr::new(
            if i.gateway.is_ipv4() { "10.71.0.2".parse().unwrap() } else { "fd71::2".parse().unwrap() },
            4500,
        ),
        nat: false,
        peer_behind_nat: false,
        expires_unix: 0,
        mpsa: true,
        mobike: None,
    }
}

fn update(c: &mut Box<dyn Conn>, items: Vec<Item>) {
    stubconn::write_all(c, &Signal::batches(SignalType::Update, items)).expect("update");
}

fn sealed(key: &ClusterKey, rng: &mut SeededRandom, n: u64) -> Item {
    Item::Sealed { index: index(n), sealed: seal::seal(key, &stub(n), rng) }
}

/// What a Get for `want` brings back: the stubs opened, by index.
fn take(c: &mut Box<dyn Conn>, key: &ClusterKey, want: &[StubIndex]) -> Vec<Option<IkeSaStub>> {
    let got = stubconn::get(c, want).expect("get");
    assert_eq!(got.len(), want.len(), "one answer per index asked for");
    got.into_iter()
        .zip(want)
        .map(|(it, w)| {
            assert_eq!(it.index(), *w, "answers in the order asked");
            match it {
                Item::Sealed { sealed, .. } => Some(seal::open(key, &sealed).expect("opens")),
                Item::Index(_) => None,
            }
        })
        .collect()
}

/// Updates are filed and a Get hands each stub out once (single use,
/// draft section 5 item 2), through another bank in front of the same
/// etcd too; a withdrawal removes one; an empty Get brings every stub and
/// leaves them; IPv4 and IPv6 gateway addresses. One etcd member killed:
/// nothing filed is lost and the banks go on.
#[test]
#[ignore = "needs etcd (Debian etcd-server); test.sh runs it"]
fn xu_3_4_bank_files_hands_out_once_and_survives_a_member() {
    let d = tempfile::tempdir().expect("tmp");
    let (mut members, urls) = etcd(d.path());
    let f = certs(d.path(), "a", &["127.0.0.1", "gw-a", "gw-b"]);
    let (_b1, a1) = bank(d.path(), "bank1", &urls, &f[0], 3600);
    let (_b2, a2) = bank(d.path(), "bank2", &[urls[1].clone(), urls[2].clone(), urls[0].clone()], &f[0], 3600);
    let (ta, tb) = (tls(&f[1]), tls(&f[2]));
    let key = ClusterKey::new([7; 32]);
    let mut rng = SeededRandom::new(1);
    let mut a = ready(a1, &ta);
    let mut b = ready(a2, &tb);

    update(&mut a, (0..300).map(|n| sealed(&key, &mut rng, n)).collect());
    update(&mut a, vec![Item::Index(index(5))]);
    // Updates are not answered; a Get on the same connection comes after
    // them (the bank takes one message of a connection at a time).
    let all = stubconn::get(&mut a, &[]).expect("get all");
    assert_eq!(all.len(), 299, "every stub but the withdrawn one");
    let again = stubconn::get(&mut b, &[]).expect("get all");
    assert_eq!(again.len(), 299, "an empty Get leaves them in place");

    let got = take(&mut b, &key, &[index(4), index(5), index(7)]);
    assert_eq!(got[0].as_ref().map(|s| s.spi_i), Some(0x9004), "IPv4 gateway's stub, through the other bank");
    assert!(got[1].is_none(), "withdrawn");
    assert_eq!(got[2].as_ref().map(|s| s.index), Some(index(7)), "IPv6 gateway's stub");
    let twice = take(&mut a, &key, &[index(4), index(7)]);
    assert!(twice.iter().all(Option::is_none), "a stub is handed out once");

    // One member goes: what was filed stays, both banks go on.
    members.kill(0);
    let got = take(&mut a, &key, &[index(10), index(11)]);
    assert!(got.iter().all(Option::is_some), "filed before the member died: {got:?}");
    update(&mut b, (300..400).map(|n| sealed(&key, &mut rng, n)).collect());
    // Updates are not answered: a Get on b's connection comes after them.
    assert!(take(&mut b, &key, &[index(10_000)])[0].is_none());
    let got = take(&mut a, &key, &(300..400).map(index).collect::<Vec<_>>());
    assert!(got.iter().all(Option::is_some), "filed after it died, through the other bank");
    let left = stubconn::get(&mut b, &[]).expect("get all");
    assert_eq!(left.len(), 299 - 4, "nothing else lost");
}

/// Mutual TLS: a gateway without a certificate from the cluster's CA is
/// refused; the bank goes on serving the others. A stub filed under an
/// index other than the one it seals is dropped; malformed messages end
/// only their connection.
#[test]
#[ignore = "needs etcd (Debian etcd-server); test.sh runs it"]
fn bank_refuses_strangers_and_misfiled_stubs() {
    let d = tempfile::tempdir().expect("tmp");
    let (_members, urls) = etcd(d.path());
    let f = certs(d.path(), "a", &["127.0.0.1", "gw-a"]);
    let stranger = certs(d.path(), "x", &["127.0.0.1", "gw-x"]);
    let (_b, addr) = bank(d.path(), "bank", &urls, &f[0], 3600);
    let good = tls(&f[1]);
    let key = ClusterKey::new([9; 32]);
    let mut rng = SeededRandom::new(2);
    let mut a = ready(addr, &good);

    // Another CA's certificate: no handshake (or no answer after it).
    let refused = dial(addr, &tls(&stranger[1])).and_then(|mut c| {
        stubconn::get(&mut c, &[index(1)]).map_err(std::io::Error::other)?;
        Ok(())
    });
    assert!(refused.is_err(), "a gateway of another CA was served");
    // No client certificate at all.
    let anon = rustls::ClientConfig::builder()
        .with_root_certificates({
            let mut r = rustls::RootCertStore::empty();
            for c in rustls::pki_types::CertificateDer::pem_file_iter(&f[0].ca).expect("ca") {
                r.add(c.expect("pem")).expect("add");
            }
            r
        })
        .with_no_client_auth();
    let anon = Tls { client: Arc::new(anon), server: good.server.clone() };
    let refused = dial(addr, &anon).and_then(|mut c| {
        stubconn::get(&mut c, &[index(1)]).map_err(std::io::Error::other)?;
        Ok(())
    });
    assert!(refused.is_err(), "a gateway without a certificate was served");

    // A sealed stub of index 2 filed under index 3.
    let Item::Sealed { sealed: s2, .. } = sealed(&key, &mut rng, 2) else { unreachable!() };
    update(&mut a, vec![Item::Sealed { index: index(3), sealed: s2 }, sealed(&key, &mut rng, 4)]);
    let got = take(&mut a, &key, &[index(3), index(4)]);
    assert!(got[0].is_none(), "misfiled stub kept");
    assert!(got[1].is_some(), "the good one beside it lost");

    // Garbage: that connection ends; a new one is served.
    let mut g = dial(addr, &good).expect("dial");
    stubconn::write_all(&mut g, &[vec![0, 9, 0, 2, 0xff, 0xff]]).expect("write");
    assert!(stubconn::get(&mut g, &[index(4)]).is_err(), "a connection that sent garbage went on");
    let mut a = ready(addr, &good);
    assert!(take(&mut a, &key, &[index(4)])[0].is_none(), "taken above already");
}

/// A stub its gateway never withdraws (the gateway died) expires with
/// its etcd lease.
#[test]
#[ignore = "needs etcd (Debian etcd-server); test.sh runs it"]
fn bank_stubs_expire_with_their_lease() {
    let d = tempfile::tempdir().expect("tmp");
    let (_members, urls) = etcd(d.path());
    let f = certs(d.path(), "a", &["127.0.0.1", "gw-a"]);
    let (_b, addr) = bank(d.path(), "bank", &urls, &f[0], 10);
    let t = tls(&f[1]);
    let key = ClusterKey::new([3; 32]);
    let mut rng = SeededRandom::new(3);
    let mut a = ready(addr, &t);
    update(&mut a, vec![sealed(&key, &mut rng, 1)]);
    assert_eq!(stubconn::get(&mut a, &[]).expect("get").len(), 1, "filed");
    std::thread::sleep(Duration::from_secs(13));
    assert!(take(&mut a, &key, &[index(1)])[0].is_none(), "still there after its lease");
}
