//! In-memory initiator <-> responder tests of every exchange, with virtual
//! time: two engines, a wire between them that can lose, duplicate, delay
//! or NAT packets. Each step is written in RFC 7296 notation.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use controlplane::codepoints::{ExchangeType, NotifyType, PayloadType};
use controlplane::crypto::SeededRandom;
use controlplane::daemon::view;
use controlplane::ike::config::ConnectionToml;
use controlplane::ike::engine::{ChildState, Error, IkeState};
use controlplane::ike::{Engine, Event, Output, Settings};
use controlplane::wire::{Header, Message, Payload};
use cpdp::msg::{Command, Direction, PolicyAction};

const A: &str = "10.77.0.1";
const B: &str = "10.77.0.2";
/// The NAT in front of A, when there is one: A's private address.
const A_PRIVATE: &str = "192.168.0.2";

struct Node {
    e: Engine,
    addr: IpAddr,
    dp: Vec<Command>,
    events: Vec<Event>,
}

#[derive(Debug, Clone)]
struct Packet {
    to_b: bool,
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
}

struct Pair {
    a: Node,
    b: Node,
    now: Instant,
    wire: VecDeque<Packet>,
    /// A is behind a NAT: its packets leave from A with ports + 40000.
    nat: bool,
}

#[allow(clippy::too_many_arguments)]
fn conn(
    extra: &str,
    role: &str,
    local: &str,
    remote: &str,
    lid: &str,
    rid: &str,
    lts: &str,
    rts: &str,
) -> ConnectionToml {
    let text = format!(
        "name = \"lab\"\nrole = \"{role}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\nlocal_id = \"{lid}\"\n\
         remote_id = \"{rid}\"\npsk = \"s3cret-lab-key\"\nlocal_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n{extra}"
    );
    toml::from_str(&text).unwrap()
}

/// An engine with a seeded generator: the same seed, the same messages.
fn engine(c: ConnectionToml, settings: Settings) -> Engine {
    seeded(c, settings, 0)
}

/// Seed `round` varies the run (SPIs, nonces and so who wins a rekey
/// collision); the seed also depends on the side, so A and B differ.
fn seeded(c: ConnectionToml, settings: Settings, round: u64) -> Engine {
    let side = if c.role == controlplane::ike::Role::Initiator { 1 } else { 2 };
    Engine::new(vec![c.build().unwrap()], settings, Box::new(SeededRandom::new(round * 16 + side)))
}

impl Pair {
    /// A initiates to B; `ea`/`eb` are extra TOML lines for each side.
    fn new(ea: &str, eb: &str) -> Pair {
        Pair::with(ea, eb, Settings::default(), Settings::default(), false)
    }

    fn with(ea: &str, eb: &str, sa: Settings, sb: Settings, nat: bool) -> Pair {
        let a_local = if nat { A_PRIVATE } else { A };
        let ca = conn(ea, "initiator", a_local, B, "left.lab", "right.lab", "10.77.1.0/24", "10.77.2.0/24");
        let cb = conn(eb, "responder", B, "%any", "right.lab", "left.lab", "10.77.2.0/24", "10.77.1.0/24");
        Pair {
            a: Node { e: engine(ca, sa), addr: a_local.parse().unwrap(), dp: vec![], events: vec![] },
            b: Node { e: engine(cb, sb), addr: B.parse().unwrap(), dp: vec![], events: vec![] },
            now: Instant::now(),
            wire: VecDeque::new(),
            nat,
        }
    }

    /// Fresh engines with the seeds of round `round` (nothing sent yet).
    fn reseed(&mut self, round: u64) {
        let ca = conn("", "initiator", A, B, "left.lab", "right.lab", "10.77.1.0/24", "10.77.2.0/24");
        let cb = conn("", "responder", B, "%any", "right.lab", "left.lab", "10.77.2.0/24", "10.77.1.0/24");
        self.a.e = seeded(ca, Settings::default(), round);
        self.b.e = seeded(cb, Settings::default(), round);
    }

    fn collect(&mut self) {
        for (to_b, n) in [(true, &mut self.a), (false, &mut self.b)] {
            while let Some(o) = n.e.poll_output() {
                match o {
                    Output::Send { local, remote, data } => self.wire.push_back(Packet { to_b, local, remote, data }),
                    Output::Dataplane(c) => n.dp.push(c),
                    Output::Event(e) => n.events.push(e),
                    Output::Stub(_) => {}
                }
            }
        }
    }

    fn deliver(&mut self, p: Packet) {
        if p.to_b {
            let mut src = p.local;
            if self.nat {
                src = SocketAddr::new(A.parse().unwrap(), p.local.port() + 40000);
            }
            assert_eq!(p.remote.ip(), self.b.addr);
            self.b.e.handle_datagram(self.now, p.remote, src, &p.data);
        } else {
            let mut dst = p.remote;
            if self.nat {
                assert_eq!(dst.ip(), A.parse::<IpAddr>().unwrap(), "B answers the NAT's public address");
                dst = SocketAddr::new(self.a.addr, dst.port() - 40000);
            }
            assert_eq!(dst.ip(), self.a.addr);
            self.a.e.handle_datagram(self.now, dst, p.local, &p.data);
        }
        self.collect();
    }

    /// Takes what is on the wire now (to drop, duplicate or reorder it).
    fn take(&mut self) -> Vec<Packet> {
        self.collect();
        self.wire.drain(..).collect()
    }

    /// Delivers until the wire is empty.
    fn run(&mut self) {
        self.collect();
        let mut n = 0;
        while let Some(p) = self.wire.pop_front() {
            self.deliver(p);
            n += 1;
            assert!(n < 1000, "message storm");
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.a.e.handle_timeout(self.now);
        self.b.e.handle_timeout(self.now);
        self.collect();
    }

    /// Advances in steps of `step` for `total`, delivering everything.
    fn idle(&mut self, total: Duration, step: Duration) {
        let end = self.now + total;
        while self.now < end {
            self.advance(step);
            self.run();
        }
    }

    fn establish(&mut self) {
        // IKE_SA_INIT { SA, KE, Ni, N(NAT_DETECTION_*), N(FRAG_SUP) } -->
        //           <-- { SA, KE, Nr, N(NAT_DETECTION_*), N(FRAG_SUP) }
        // IKE_AUTH { SK { IDi, N(INITIAL_CONTACT), IDr, AUTH, SAi2, TSi, TSr } } -->
        //       <-- { SK { IDr, AUTH, SAr2, TSi, TSr } }
        self.a.e.initiate(self.now, "lab").unwrap();
        self.run();
        assert_eq!(established(&self.a.e), 1, "initiator: {:?}", self.a.events);
        assert_eq!(established(&self.b.e), 1, "responder: {:?}", self.b.events);
    }
}

/// What an engine holds, to compare before and after: every IKE SA with
/// its children (as gwctl sees them) and the half-open count.
fn state(e: &Engine, now: Instant) -> String {
    format!("{} {}", serde_json::to_string(&view::ike_sas(e, now)).unwrap(), e.half_open())
}

fn established(e: &Engine) -> usize {
    e.ike_sas().filter(|s| s.state() == IkeState::Established).count()
}

/// (spi_in, spi_out) of each installed child SA.
fn children(e: &Engine) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = e
        .ike_sas()
        .flat_map(|s| s.children().iter().filter(|c| c.state == ChildState::Installed).map(|c| (c.spi_in, c.spi_out)))
        .collect();
    v.sort();
    v
}

fn all_children(e: &Engine) -> usize {
    e.ike_sas().map(|s| s.children().len()).sum()
}

/// The SaSpecs installed (and not deleted since) in the dataplane.
fn installed(cmds: &[Command]) -> Vec<cpdp::msg::SaSpec> {
    let mut v: Vec<cpdp::msg::SaSpec> = Vec::new();
    for c in cmds {
        match c {
            // SAs are named by handle (the inbound SPI of the child SA).
            Command::InstallSa(s) => {
                v.retain(|x| !(x.handle == s.handle && x.direction == s.direction));
                v.push(s.clone());
            }
            Command::DeleteSa { spi, direction } => v.retain(|x| !(x.handle == *spi && x.direction == *direction)),
            _ => {}
        }
    }
    v
}

fn policy(cmds: &[Command]) -> Option<u32> {
    cmds.iter().rev().find_map(|c| match c {
        Command::SetPolicy { action: PolicyAction::Protect(s), .. } => Some(Some(*s)),
        Command::DeletePolicy { .. } => Some(None),
        _ => None,
    })?
}

/// Checks both dataplanes hold matching SA pairs: A's outbound is B's
/// inbound with the same keys, and the other way round.
fn check_dataplanes(p: &Pair) {
    let (ia, ib) = (installed(&p.a.dp), installed(&p.b.dp));
    assert!(!ia.is_empty());
    for s in &ia {
        let other = ib
            .iter()
            .find(|o| o.spi == s.spi && o.direction != s.direction)
            .unwrap_or_else(|| panic!("A's SA {:#x} {:?} has no partner at B", s.spi, s.direction));
        assert_eq!(s.enc_key, other.enc_key, "keys of SPI {:#x}", s.spi);
        assert_eq!(s.auth_key, other.auth_key);
        assert_eq!(s.alg, other.alg);
    }
    assert_eq!(ia.len(), ib.len());
}

#[test]
fn establishes_with_each_interop_proposal() {
    for (ike, esp, alg) in [
        ("aes128gcm16-prfsha256-x25519", "aes128gcm16", "aes128gcm"),
        ("aes256gcm16-prfsha384-ecp256", "aes256gcm16", "aes256gcm"),
        ("aes256-sha256-modp2048", "aes256-sha256", "aes256cbc-sha256"),
    ] {
        let extra = format!("ike_proposals = [\"{ike}\"]\nesp_proposals = [\"{esp}\"]\n");
        let mut p = Pair::new(&extra, &extra);
        p.establish();
        let (ca, cb) = (children(&p.a.e), children(&p.b.e));
        assert_eq!(ca.len(), 1);
        assert_eq!(ca[0], (cb[0].1, cb[0].0), "A's inbound SPI is B's outbound");
        check_dataplanes(&p);
        assert_eq!(installed(&p.a.dp)[0].alg, alg);
        // The policy for the remote subnet protects with the outbound SA.
        assert_eq!(policy(&p.a.dp), Some(ca[0].0));
        assert_eq!(policy(&p.b.dp), Some(cb[0].0));
        assert!(installed(&p.a.dp).iter().all(|s| s.natt.is_none()), "no NAT here");
        let info = &view::ike_sas(&p.b.e, p.now)[0];
        assert_eq!(info.peer_id, "left.lab");
        assert_eq!(info.children[0].ts_remote, vec!["10.77.1.0/24".to_string()]);
    }
}

#[test]
fn invalid_ke_payload_makes_the_initiator_retry_with_the_wanted_group() {
    // A offers x25519 first (and sends a KE for it), B only takes ecp256:
    // IKE_SA_INIT { SA, KE(31), Ni } -->  <-- { N(INVALID_KE_PAYLOAD, 19) }
    // IKE_SA_INIT { SA, KE(19), Ni } -->  <-- { SA, KE(19), Nr }
    let mut p = Pair::new(
        "ike_proposals = [\"aes128gcm16-prfsha256-x25519\", \"aes128gcm16-prfsha256-ecp256\"]",
        "ike_proposals = [\"aes128gcm16-prfsha256-ecp256\"]",
    );
    p.a.e.initiate(p.now, "lab").unwrap();
    let first = p.take();
    let h = Header::parse(&first[0].data).unwrap();
    assert_eq!(h.exchange, ExchangeType::IkeSaInit);
    for pk in first {
        p.deliver(pk);
    }
    let refusal = p.take();
    let m = Message::parse(&refusal[0].data).unwrap();
    assert!(
        matches!(&m.payloads[..], [Payload::Notify(n)] if n.ty == NotifyType::InvalidKePayload && n.data == [0, 19])
    );
    assert_eq!(p.b.e.half_open(), 0, "no state kept for a refused request");
    for pk in refusal {
        p.deliver(pk);
    }
    p.run();
    assert_eq!(established(&p.a.e), 1);
    assert!(view::ike_sas(&p.a.e, p.now)[0].suite.contains("Ecp256"));
}

#[test]
fn cookies_are_demanded_under_load_and_the_initiator_complies() {
    // With the cookie threshold reached:
    // IKE_SA_INIT { SA, KE, Ni } -->  <-- { N(COOKIE) }
    // IKE_SA_INIT { N(COOKIE), SA, KE, Ni } -->  <-- { SA, KE, Nr }
    let sb = Settings { cookie_threshold: 0, ..Settings::default() };
    let mut p = Pair::with("", "", Settings::default(), sb, false);
    p.a.e.initiate(p.now, "lab").unwrap();
    for pk in p.take() {
        p.deliver(pk);
    }
    let cookie = p.take();
    let m = Message::parse(&cookie[0].data).unwrap();
    assert!(matches!(&m.payloads[..], [Payload::Notify(n)] if n.ty == NotifyType::Cookie));
    assert_eq!(p.b.e.stats.cookies_sent, 1);
    for pk in cookie {
        p.deliver(pk);
    }
    let retry = p.take();
    let m = Message::parse(&retry[0].data).unwrap();
    assert!(matches!(&m.payloads[0], Payload::Notify(n) if n.ty == NotifyType::Cookie), "cookie first");
    for pk in retry {
        p.deliver(pk);
    }
    p.run();
    assert_eq!(established(&p.b.e), 1);
    assert_eq!(p.b.e.stats.cookies_sent, 1, "the right cookie is accepted");
}

#[test]
fn lost_and_duplicated_messages_are_retransmitted_and_answered_once() {
    let mut p = Pair::new("", "");
    p.a.e.initiate(p.now, "lab").unwrap();
    // IKE_SA_INIT request lost; retransmitted after 1 s.
    assert_eq!(p.take().len(), 1);
    p.advance(Duration::from_millis(1000));
    let again = p.take();
    assert_eq!(again.len(), 1);
    assert_eq!(p.a.e.stats.retransmitted, 1);
    // Delivered twice: B answers the duplicate with the same response.
    p.deliver(again[0].clone());
    p.deliver(again[0].clone());
    let resp = p.take();
    assert_eq!(resp.len(), 2);
    assert_eq!(resp[0].data, resp[1].data);
    assert_eq!(p.b.e.half_open(), 1, "one half-open SA, not two");
    p.deliver(resp[0].clone());
    // IKE_AUTH request duplicated: one child SA at B, the response repeated.
    let auth = p.take();
    assert_eq!(auth.len(), 1);
    p.deliver(auth[0].clone());
    p.deliver(auth[0].clone());
    assert_eq!(p.b.e.stats.retransmits_answered, 2);
    let resp = p.take();
    assert_eq!(resp.len(), 2);
    // The first response is lost; the second arrives.
    p.deliver(resp[1].clone());
    assert_eq!(established(&p.a.e), 1);
    assert_eq!(children(&p.b.e).len(), 1);
    // A late duplicate of the response changes nothing.
    p.deliver(resp[0].clone());
    assert_eq!(p.a.e.stats.bad_message_id, 1);
    check_dataplanes(&p);
}

#[test]
fn an_unanswered_initiator_gives_up_after_its_retransmissions() {
    let mut p = Pair::new("", "");
    p.a.e.initiate(p.now, "lab").unwrap();
    // 1 + 2 + 4 + 8 + 16 + 32 s: five retransmissions, then it gives up.
    for _ in 0..70 {
        p.take();
        p.advance(Duration::from_secs(1));
    }
    assert_eq!(p.a.e.ike_sas().count(), 0);
    assert_eq!(p.a.e.stats.retransmitted, 5);
    assert!(p.a.events.iter().any(|e| matches!(e, Event::Failed { why: Error::Unanswered(_), .. })));
}

#[test]
fn nat_is_detected_and_both_move_to_port_4500() {
    let mut p = Pair::with("", "", Settings::default(), Settings::default(), true);
    p.establish();
    let ia = installed(&p.a.dp);
    let ib = installed(&p.b.dp);
    assert!(ia.iter().all(|s| s.natt == Some((4500, 4500))), "{ia:?}");
    assert!(ib.iter().all(|s| s.natt == Some((4500, 44500))), "B sends to the NAT's port: {ib:?}");
    // A is behind the NAT: it sends keepalives (RFC 3948 4).
    p.take();
    p.advance(Duration::from_secs(21));
    let ka = p.take();
    assert!(ka.iter().any(|k| k.to_b && k.data == [0xff] && k.local.port() == 4500));
    for k in ka {
        p.deliver(k);
    }
    assert_eq!(p.b.e.stats.keepalives, 1);
}

#[test]
fn child_sa_rekey_with_pfs_replaces_the_old_one() {
    // CREATE_CHILD_SA { SK { N(REKEY_SA), SA, Ni, KEi, TSi, TSr } } -->
    //              <-- { SK { SA, Nr, KEr, TSi, TSr } }
    // INFORMATIONAL { SK { D(old) } } -->  <-- { SK { D(old') } }
    let esp = "esp_proposals = [\"aes128gcm16-x25519\"]";
    let mut p = Pair::new(esp, esp);
    p.establish();
    let old = children(&p.a.e)[0];
    p.a.e.rekey(p.now, "lab", false).unwrap();
    p.run();
    let new = children(&p.a.e);
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    assert_eq!(all_children(&p.a.e), 1, "old deleted");
    assert_eq!(all_children(&p.b.e), 1);
    assert_eq!(policy(&p.a.dp), Some(new[0].0));
    assert_eq!(policy(&p.b.dp), Some(children(&p.b.e)[0].0));
    check_dataplanes(&p);
    let info = &view::ike_sas(&p.a.e, p.now)[0];
    assert_eq!(info.children[0].pfs, Some(31));
    assert!(p.a.events.iter().any(|e| matches!(e, Event::ChildUp { rekey_of: Some(o), .. } if *o == old.0)));
}

#[test]
fn the_rekey_responder_sends_on_the_old_sa_until_the_initiator_deletes_it() {
    // CREATE_CHILD_SA { SK { N(REKEY_SA), SA, Ni, TSi, TSr } } -->
    //              <-- { SK { SA, Nr, TSi, TSr } }
    // B has answered but A has not yet installed its new inbound SA: B's
    // traffic stays on the old SA until D(old) arrives (or a grace period
    // passes, for initiators that never delete it).
    for delete_lost in [false, true] {
        let mut p = Pair::new("", "");
        p.establish();
        let b_old = children(&p.b.e)[0];
        p.a.e.rekey(p.now, "lab", false).unwrap();
        let req = p.take();
        for m in req {
            p.deliver(m);
        }
        let resp = p.take();
        assert_eq!(all_children(&p.b.e), 2);
        assert_eq!(policy(&p.b.dp), Some(b_old.0), "B still sends on the old SA after answering");
        for m in resp {
            p.deliver(m);
        }
        let b_new = p.b.e.ike_sas().flat_map(|s| s.children()).find(|c| c.spi_in != b_old.0).unwrap().spi_in;
        // INFORMATIONAL { SK { D(old) } } -->
        let delete = p.take();
        if delete_lost {
            p.now += Duration::from_millis(1900);
            p.b.e.handle_timeout(p.now);
            p.collect();
            assert_eq!(policy(&p.b.dp), Some(b_old.0), "within the grace period");
            p.now += Duration::from_millis(200);
            p.b.e.handle_timeout(p.now);
            p.collect();
            assert_eq!(policy(&p.b.dp), Some(b_new), "after the grace period");
            p.advance(Duration::from_secs(3)); // A retransmits the delete
        } else {
            for m in delete {
                p.deliver(m);
            }
            assert_eq!(policy(&p.b.dp), Some(b_new), "D(old) moves B's traffic to the new SA");
        }
        p.run();
        assert_eq!(all_children(&p.b.e), 1);
        assert_eq!(policy(&p.b.dp), Some(b_new));
        check_dataplanes(&p);
    }
}

#[test]
fn child_sas_rekey_on_their_own_timer() {
    let extra = "child_rekey_secs = 10\nchild_life_secs = 15\njitter_percent = 0\ndpd_secs = 0";
    let mut p = Pair::new(extra, "child_rekey_secs = 100\ndpd_secs = 0");
    p.establish();
    let first = children(&p.a.e)[0];
    p.idle(Duration::from_secs(11), Duration::from_millis(500));
    let now = children(&p.a.e);
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], first);
    // Past the old one's hard lifetime nothing else changes.
    p.idle(Duration::from_secs(5), Duration::from_millis(500));
    assert_eq!(children(&p.a.e), now);
    check_dataplanes(&p);
}

#[test]
fn simultaneous_child_rekeys_leave_one_pair() {
    // Both ends rekey the same child SA at once (RFC 7296 2.8.1):
    // CREATE_CHILD_SA { N(REKEY_SA), SA, Ni1 } -->  <-- CREATE_CHILD_SA { N(REKEY_SA), SA, Ni2 }
    //             <-- { SA, Nr1 }                   { SA, Nr2 } -->
    // The SA made with the lowest of the four nonces is deleted by its
    // creator; the other creator deletes the old one.
    for round in 0..8 {
        let mut p = Pair::new("", "");
        p.reseed(round);
        p.establish();
        p.a.e.rekey(p.now, "lab", false).unwrap();
        p.b.e.rekey(p.now, "lab", false).unwrap();
        let reqs = p.take();
        assert_eq!(reqs.len(), 2);
        for r in reqs {
            p.deliver(r);
        }
        p.run();
        let (ca, cb) = (children(&p.a.e), children(&p.b.e));
        assert_eq!(ca.len(), 1, "round {round}: A {ca:?}");
        assert_eq!(all_children(&p.a.e), 1, "round {round}");
        assert_eq!(all_children(&p.b.e), 1, "round {round}");
        assert_eq!(ca[0], (cb[0].1, cb[0].0), "round {round}: the same pair survives at both ends");
        assert_eq!(policy(&p.a.dp), Some(ca[0].0));
        assert_eq!(policy(&p.b.dp), Some(cb[0].0));
        check_dataplanes(&p);
    }
}

#[test]
fn ike_sa_rekey_moves_the_children_and_deletes_the_old_sa() {
    // CREATE_CHILD_SA { SK { SA(new SPIi), Ni, KEi } } -->  <-- { SK { SA(new SPIr), Nr, KEr } }
    // INFORMATIONAL (old SA) { SK { D(IKE) } } -->  <-- { SK {} }
    let mut p = Pair::new("", "");
    p.establish();
    let kids = children(&p.a.e);
    let old = view::ike_sas(&p.a.e, p.now)[0].spi_i.clone();
    p.a.e.rekey(p.now, "lab", true).unwrap();
    p.run();
    assert_eq!(p.a.e.ike_sas().count(), 1);
    assert_eq!(p.b.e.ike_sas().count(), 1);
    let info = &view::ike_sas(&p.a.e, p.now)[0];
    assert_ne!(info.spi_i, old);
    assert_eq!(children(&p.a.e), kids, "children moved, not rekeyed");
    // The new SA works: a child rekey and a liveness check over it.
    p.b.e.rekey(p.now, "lab", false).unwrap();
    p.run();
    assert_eq!(all_children(&p.a.e), 1);
    check_dataplanes(&p);
}

#[test]
fn simultaneous_ike_sa_rekeys_leave_one_ike_sa() {
    for round in 0..6 {
        let mut p = Pair::new("", "");
        p.reseed(round);
        p.establish();
        p.a.e.rekey(p.now, "lab", true).unwrap();
        p.b.e.rekey(p.now, "lab", true).unwrap();
        let reqs = p.take();
        for r in reqs {
            p.deliver(r);
        }
        p.run();
        let a: Vec<_> = view::ike_sas(&p.a.e, p.now).into_iter().map(|s| (s.spi_i, s.spi_r)).collect();
        let b: Vec<_> = view::ike_sas(&p.b.e, p.now).into_iter().map(|s| (s.spi_i, s.spi_r)).collect();
        assert_eq!(a.len(), 1, "round {round}: {a:?}");
        assert_eq!(a, b, "round {round}");
        assert_eq!(all_children(&p.a.e), 1);
        assert_eq!(all_children(&p.b.e), 1);
        check_dataplanes(&p);
    }
}

#[test]
fn delete_from_either_side_removes_everything() {
    // INFORMATIONAL { SK { D(IKE) } } -->  <-- { SK {} }
    let mut p = Pair::new("", "");
    p.establish();
    p.b.e.terminate(p.now, "lab").unwrap();
    p.run();
    assert_eq!(p.a.e.ike_sas().count(), 0);
    assert_eq!(p.b.e.ike_sas().count(), 0);
    assert!(installed(&p.a.dp).is_empty());
    assert!(installed(&p.b.dp).is_empty());
    assert_eq!(policy(&p.a.dp), None);
    assert!(p.a.events.iter().any(|e| matches!(e, Event::IkeDown { .. })));
}

#[test]
fn liveness_checks_keep_a_live_peer_and_drop_a_dead_one() {
    // INFORMATIONAL { SK {} } -->  <-- { SK {} }
    let mut p = Pair::new("dpd_secs = 5", "dpd_secs = 0");
    p.establish();
    p.idle(Duration::from_secs(12), Duration::from_secs(1));
    assert_eq!(established(&p.a.e), 1);
    assert!(p.b.e.stats.received >= 4, "liveness requests were answered");
    // The peer dies: nothing is delivered any more.
    for _ in 0..100 {
        p.advance(Duration::from_secs(1));
        p.take();
    }
    assert_eq!(p.a.e.ike_sas().count(), 0);
    assert!(installed(&p.a.dp).is_empty());
}

#[test]
fn wrong_psk_is_authentication_failed_and_nothing_stays() {
    let mut p = Pair::new("", "");
    // Same connection but B's PSK differs.
    let mut cb = conn("", "responder", B, "%any", "right.lab", "left.lab", "10.77.2.0/24", "10.77.1.0/24");
    cb.psk = "a-different-psk".into();
    p.b.e = engine(cb, Settings::default());
    p.a.e.initiate(p.now, "lab").unwrap();
    p.run();
    // IKE_AUTH { SK { IDi, AUTH, ... } } -->  <-- { SK { N(AUTHENTICATION_FAILED) } }
    assert_eq!(p.b.e.stats.auth_failed, 1);
    assert_eq!(p.a.e.stats.auth_failed, 1);
    assert_eq!(p.a.e.ike_sas().count(), 0);
    assert_eq!(p.b.e.ike_sas().count(), 0);
    assert!(installed(&p.a.dp).is_empty() && installed(&p.b.dp).is_empty());
}

#[test]
fn unacceptable_proposals_and_selectors_are_refused() {
    // IKE: IKE_SA_INIT { SA(aes256-sha256-modp2048) } -->  <-- { N(NO_PROPOSAL_CHOSEN) }
    let mut p = Pair::new("ike_proposals = [\"aes256-sha256-modp2048\"]", "");
    p.a.e.initiate(p.now, "lab").unwrap();
    p.run();
    assert_eq!(p.b.e.stats.no_proposal, 1);
    assert_eq!(p.a.e.ike_sas().count(), 0);
    // ESP: the IKE SA stands, the child is refused with NO_PROPOSAL_CHOSEN.
    let mut p = Pair::new("esp_proposals = [\"aes256-sha256\"]", "");
    p.establish();
    assert_eq!(all_children(&p.a.e), 0);
    assert!(p
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::Failed { why: Error::Refused(NotifyType::NoProposalChosen), .. })));
    // Selectors outside B's policy: TS_UNACCEPTABLE.
    let mut p = Pair::new("", "");
    let ca = conn("", "initiator", A, B, "left.lab", "right.lab", "10.99.1.0/24", "10.77.2.0/24");
    p.a.e = engine(ca, Settings::default());
    p.establish();
    assert!(p
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::Failed { why: Error::Refused(NotifyType::TsUnacceptable), .. })));
}

#[test]
fn selectors_are_narrowed_to_the_responders_policy() {
    // A asks for 10.0.0.0/8 <-> 10.77.0.0/16; B allows 10.77.1.0/24 <-> 10.77.2.0/24.
    let mut p = Pair::new("", "");
    let ca = conn("", "initiator", A, B, "left.lab", "right.lab", "10.0.0.0/8", "10.77.0.0/16");
    p.a.e = engine(ca, Settings::default());
    p.establish();
    let info = &view::ike_sas(&p.a.e, p.now)[0];
    assert_eq!(info.children[0].ts_local, vec!["10.77.1.0/24".to_string()]);
    assert_eq!(info.children[0].ts_remote, vec!["10.77.2.0/24".to_string()]);
    assert_eq!(policy(&p.a.dp), Some(children(&p.a.e)[0].0));
}

#[test]
fn a_remote_client_gets_a_virtual_address_from_the_pool() {
    // IKE_AUTH { SK { IDi, AUTH, CP(CFG_REQUEST), SAi2, TSi(0.0.0.0/0), TSr } } -->
    //       <-- { SK { IDr, AUTH, CP(CFG_REPLY(10.3.0.1)), SAr2, TSi(10.3.0.1/32), TSr } }
    let mut p = Pair::new("request_vip = true", "pool = \"10.3.0.0/24\"");
    let cb =
        conn("pool = \"10.3.0.0/24\"", "responder", B, "%any", "right.lab", "left.lab", "10.77.2.0/24", "10.3.0.0/24");
    p.b.e = engine(cb, Settings::default());
    p.establish();
    let a = &view::ike_sas(&p.a.e, p.now)[0];
    assert_eq!(a.virtual_ip, Some("10.3.0.1".parse().unwrap()));
    assert_eq!(a.children[0].ts_local, vec!["10.3.0.1/32".to_string()]);
    let b = &view::ike_sas(&p.b.e, p.now)[0];
    assert_eq!(b.children[0].ts_remote, vec!["10.3.0.1/32".to_string()]);
}

#[test]
fn fragmented_messages_are_reassembled() {
    // With a tiny fragment size, IKE_AUTH goes as SKF fragments (RFC 7383).
    let sa = Settings { fragment_size: 200, ..Settings::default() };
    let mut p = Pair::with("", "", sa, Settings::default(), false);
    p.a.e.initiate(p.now, "lab").unwrap();
    let init = p.take();
    p.deliver(init[0].clone());
    let resp = p.take();
    p.deliver(resp[0].clone());
    let frags = p.take();
    assert!(frags.len() > 1, "IKE_AUTH was fragmented");
    assert!(frags.iter().all(|f| Message::parse(&f.data).unwrap().sk.unwrap().fragment.is_some()));
    // Delivered out of order, with one duplicate.
    let mut order: Vec<Packet> = frags.iter().rev().cloned().collect();
    order.insert(1, frags[0].clone());
    for f in order {
        p.deliver(f);
    }
    p.run();
    assert_eq!(established(&p.b.e), 1);
    assert_eq!(established(&p.a.e), 1);
}

#[test]
fn hostile_input_never_crashes_and_changes_nothing() {
    let mut p = Pair::new("", "");
    p.a.e.initiate(p.now, "lab").unwrap();
    let init = p.take();
    let m = init[0].data.clone();
    let local: SocketAddr = format!("{B}:500").parse().unwrap();
    let remote: SocketAddr = format!("{A}:500").parse().unwrap();
    // Every truncation of IKE_SA_INIT: nothing changes at B, and nothing
    // reaches its dataplane.
    let before = state(&p.b.e, p.now);
    for cut in 0..m.len() {
        p.b.e.handle_datagram(p.now, local, remote, &m[..cut]);
    }
    p.collect();
    assert_eq!(state(&p.b.e, p.now), before, "truncations leave no state");
    // Every single-octet corruption: at most a half-open IKE SA (a flipped
    // nonce or KE octet is still a valid request), never anything more.
    for i in 0..m.len() {
        let mut bad = m.clone();
        bad[i] ^= 0x5a;
        p.b.e.handle_datagram(p.now, local, remote, &bad);
    }
    p.collect();
    assert!(p.b.e.ike_sas().all(|s| s.state() == IkeState::Authenticating), "only half-open SAs");
    assert_eq!(p.b.e.half_open(), p.b.e.ike_sas().count());
    assert!(p.b.dp.is_empty(), "nothing installed: {:?}", p.b.dp);
    p.wire.clear();
    // An unknown payload with the critical bit: UNSUPPORTED_CRITICAL_PAYLOAD.
    let mut crit = m.clone();
    crit[0] ^= 0xff; // another SPIi: not a retransmission of anything seen
    let first = crit[16];
    crit[16] = 99; // next payload: an unknown type...
    let body = [first, 0x80, 0, 4]; // ...critical, empty, followed by the old chain
    crit.splice(28..28, body);
    let len = crit.len() as u32;
    crit[24..28].copy_from_slice(&len.to_be_bytes());
    p.b.e.handle_datagram(p.now, local, remote, &crit);
    let out = p.b.e.poll_output().unwrap();
    let Output::Send { data, .. } = out else { panic!() };
    let r = Message::parse(&data).unwrap();
    assert!(
        matches!(&r.payloads[..], [Payload::Notify(n)] if n.ty == NotifyType::UnsupportedCriticalPayload && n.data == [99])
    );
    // The same payload without the critical bit is skipped.
    crit[29] = 0;
    crit[1] ^= 0xff;
    p.b.e.handle_datagram(p.now, local, remote, &crit);
    let Some(Output::Send { data, .. }) = p.b.e.poll_output() else { panic!() };
    assert!(Message::parse(&data).unwrap().payloads.iter().any(|x| x.ty() == PayloadType::KeyExchange));
    while p.b.e.poll_output().is_some() {}
    // Now the real exchange still works.
    let mut p = Pair::new("", "");
    p.establish();
    // Protected messages with wrong message IDs, bad ICVs, garbage: dropped,
    // and B's state (SAs, message IDs, children, dataplane) unchanged.
    p.a.e.rekey(p.now, "lab", false).unwrap();
    let req = p.take().remove(0);
    let (before, commands) = (state(&p.b.e, p.now), p.b.dp.len());
    let mut forged = req.clone();
    let n = forged.data.len();
    forged.data[n - 1] ^= 1;
    p.deliver(forged);
    assert_eq!(p.b.e.stats.bad_icv, 1);
    let mut wrong_id = req.clone();
    wrong_id.data[20..24].copy_from_slice(&77u32.to_be_bytes());
    p.deliver(wrong_id);
    assert_eq!(p.b.e.stats.bad_message_id, 1);
    for cut in [0, 4, 20, 31, 40, n - 1] {
        let mut t = req.clone();
        t.data.truncate(cut);
        p.deliver(t);
    }
    assert_eq!(state(&p.b.e, p.now), before, "the flood changed nothing at B");
    assert_eq!(p.b.dp.len(), commands);
    assert!(p.take().is_empty(), "and B answered none of it");
    p.deliver(req);
    p.run();
    assert_eq!(children(&p.a.e).len(), 1);
    assert_eq!(all_children(&p.b.e), 1);
    check_dataplanes(&p);
}

#[test]
fn a_restarted_dataplane_gets_every_sa_again() {
    let mut p = Pair::new("", "");
    p.establish();
    p.a.dp.clear();
    p.a.e.dataplane_event(p.now, &cpdp::msg::Event::Hello { generation: 2, ports: vec![] });
    p.collect();
    let sas = installed(&p.a.dp);
    assert_eq!(sas.len(), 2);
    assert!(sas.iter().any(|s| s.direction == Direction::In));
    assert_eq!(p.a.dp.last(), Some(&Command::SyncDone));
    assert!(policy(&p.a.dp).is_some());
}

#[test]
fn a_soft_lifetime_event_from_the_dataplane_rekeys_the_child() {
    let mut p = Pair::new("", "");
    p.establish();
    let (spi_in, _) = children(&p.a.e)[0];
    p.a.e.dataplane_event(
        p.now,
        &cpdp::msg::Event::Lifetime {
            spi: spi_in,
            direction: Direction::In,
            kind: cpdp::msg::LifetimeKind::Soft,
            packets: 1,
            bytes: 1 << 30,
        },
    );
    p.run();
    assert_ne!(children(&p.a.e)[0].0, spi_in);
    assert_eq!(all_children(&p.a.e), 1);
}
