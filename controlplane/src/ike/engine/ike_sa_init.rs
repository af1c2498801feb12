//! IKE_SA_INIT (RFC 7296 1.2, 2.6, 2.23), both roles:
//!
//! ```text
//! Initiator                         Responder
//! HDR, SAi1, KEi, Ni,
//!   N(NAT_DETECTION_*), N(FRAG_SUP)  -->
//!                                <--  HDR, SAr1, KEr, Nr, N(NAT_DETECTION_*), N(FRAG_SUP)
//!
//! Under load (2.6):               <--  HDR, N(COOKIE)
//! HDR, N(COOKIE), SAi1, KEi, Ni  -->
//! Another group wanted (1.2):     <--  HDR, N(INVALID_KE_PAYLOAD, group)
//! HDR, SAi1, KEi', Ni            -->
//! ```
//!
//! The initiator's IKE SA is a [`Connecting`] until the answer; then both
//! sides derive SKEYSEED and the seven keys (2.14) and hold an
//! [`IkeSa`] in its Authenticating phase. Cookies are
//! `<version> | HMAC-SHA-256(secret, Ni | IPi | SPIi)`; the secret is
//! replaced every `cookie_secret_lifetime`, and cookies of the previous one
//! are taken for `cookie_grace` after.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::payloads::{self, has_notify, has_vendor_id, notify};
use super::sa::{Authenticating, Connecting, Core, IkeSa, Phase};
use super::{Engine, Error};
use crate::codepoints::{
    DhGroup, ExchangeType, NotifyType, PayloadType, CLONE_REDUCED_VENDOR_ID, IKE_PORT, MPSA_VENDOR_ID, NATT_PORT,
};
use crate::crypto::keys::{self, IkeKeys};
use crate::crypto::{dh, Random};
use crate::ike::proposal;
use crate::mpsa::MpsaRole;
use crate::wire::{Flags, Header, KeyExchange, Message, Notify, Payload};

/// The responder's cookie secrets (RFC 7296 2.6): the current one and the
/// one it replaced, each with its version octet.
pub(super) struct CookieSecrets {
    current: (u8, [u8; 32]),
    /// The previous secret and when it was replaced.
    previous: Option<((u8, [u8; 32]), Instant)>,
    /// When the current one is replaced (set on first use).
    rotate_at: Option<Instant>,
}

impl CookieSecrets {
    pub(super) fn new(rng: &mut dyn Random) -> CookieSecrets {
        let mut s = [0u8; 32];
        rng.fill(&mut s);
        CookieSecrets { current: (0, s), previous: None, rotate_at: None }
    }

    /// Replaces the secret when its time is up.
    fn rotate(&mut self, now: Instant, lifetime: std::time::Duration, rng: &mut dyn Random) {
        match self.rotate_at {
            None => self.rotate_at = Some(now + lifetime),
            Some(t) if t <= now => {
                let mut s = [0u8; 32];
                rng.fill(&mut s);
                let version = self.current.0.wrapping_add(1);
                let old = std::mem::replace(&mut self.current, (version, s));
                self.previous = Some((old, now));
                self.rotate_at = Some(now + lifetime);
            }
            Some(_) => {}
        }
    }

    fn make((version, secret): &(u8, [u8; 32]), ni: &[u8], remote: IpAddr, spi_i: u64) -> Vec<u8> {
        let ip = match remote {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let h = crate::crypto::Prf::HmacSha256.prf(secret, &[ni, &ip, &spi_i.to_be_bytes()]);
        let mut c = vec![*version];
        c.extend_from_slice(&h.as_slice()[..16]);
        c
    }

    /// Whether `cookie` is one we made for this initiator, with the current
    /// secret or, within `grace` of its replacement, the previous one.
    fn accepts(
        &self,
        cookie: &[u8],
        ni: &[u8],
        remote: IpAddr,
        spi_i: u64,
        now: Instant,
        grace: std::time::Duration,
    ) -> bool {
        use subtle::ConstantTimeEq;
        let ok = |s: &(u8, [u8; 32])| {
            cookie.first() == Some(&s.0) && bool::from(Self::make(s, ni, remote, spi_i).ct_eq(cookie))
        };
        ok(&self.current) || self.previous.as_ref().is_some_and(|(s, at)| now < *at + grace && ok(s))
    }
}

impl Engine {
    /// Starts an IKE SA for connection `ci` (initiator).
    /// The gateway is the connection's `remote`, then each of its
    /// `standby` gateways in turn, one per attempt, until an IKE SA is up
    /// (draft-xu-ike-sa-sync 2.1: any gateway of the cluster serves).
    pub(super) fn send_first_init(&mut self, now: Instant, ci: usize) -> Result<(), Error> {
        let c = &self.conns[ci];
        let remote = c.remote.ok_or_else(|| Error::NoAddress(c.name.clone(), "remote"))?;
        let local = c.local.ok_or_else(|| Error::NoAddress(c.name.clone(), "local"))?;
        let n = self.init_attempts.entry(ci).or_insert(0);
        let k = *n % (1 + c.standby.len());
        *n += 1;
        let to = if k == 0 { remote } else { c.standby[k - 1] };
        self.send_first_init_to(now, ci, (local, to), None, None)
    }

    /// Starts an IKE SA for connection `ci` from `local` to `remote`; with
    /// `syn`, a rebuild from that stub (draft-xu-ike-sa-sync).
    pub(super) fn send_first_init_to(
        &mut self,
        now: Instant,
        ci: usize,
        (local, remote): (IpAddr, IpAddr),
        syn: Option<Box<crate::stub::IkeSaStub>>,
        redirected: Option<(IpAddr, u64)>,
    ) -> Result<(), Error> {
        let c = &self.conns[ci];
        let group = c.ike[0].dh;
        let spi_i = self.new_spi();
        let ni = self.nonce();
        let mut c = Connecting {
            conn: ci,
            spi_i,
            local: SocketAddr::new(local, IKE_PORT),
            remote: SocketAddr::new(remote, IKE_PORT),
            created: now,
            group,
            dh: None,
            ke: Vec::new(),
            cookie: None,
            retries: 0,
            ni,
            request: Vec::new(),
            next: now,
            tries: 0,
            scheduled: None,
            failed: false,
            syn,
            redirected,
        };
        self.send_init(now, &mut c, true)?;
        self.connecting.insert(spi_i, c);
        self.touched.push(spi_i);
        Ok(())
    }

    /// (Re)sends IKE_SA_INIT; `new_key`: make a new DH key pair first.
    fn send_init(&mut self, now: Instant, c: &mut Connecting, new_key: bool) -> Result<(), Error> {
        if new_key {
            let (d, ke) = self.dh_pool.generate(c.group, self.rng.as_mut())?;
            c.dh = Some(d);
            c.ke = ke;
        }
        // Our proposals, those with the group we send a KE for first.
        let mut suites = self.conns[c.conn].ike.clone();
        suites.sort_by_key(|s| s.dh != c.group);
        let mut p = Vec::new();
        if let Some(cookie) = &c.cookie {
            p.push(Payload::Notify(Notify::new(NotifyType::Cookie, cookie.clone())));
        }
        p.push(Payload::Sa(proposal::ike_proposals(&suites, None)));
        p.push(Payload::Ke(KeyExchange { group: c.group.value(), data: c.ke.clone() }));
        p.push(Payload::Nonce(c.ni.clone()));
        // draft-xu-ike-sa-sync 3.1: the stub to rebuild from, after Ni.
        if let Some(stub) = &c.syn {
            p.push(super::ike_sa_syn::syn_payload(stub));
        }
        p.push(Payload::Notify(Notify::new(NotifyType::NatDetectionSourceIp, keys::natd_hash(c.spi_i, 0, c.local))));
        p.push(Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            keys::natd_hash(c.spi_i, 0, c.remote),
        )));
        p.push(Payload::Notify(Notify::new(NotifyType::IkeFragmentationSupported, vec![])));
        p.extend(super::signature_auth::hash_notify(super::signature_auth::uses_certs(&self.conns[c.conn])));
        p.extend(self.redirect_init_payloads(c));
        if self.mpsa_role != MpsaRole::Off {
            p.push(Payload::VendorId(MPSA_VENDOR_ID.to_vec()));
        }
        if self.conns[c.conn].clone_reduced {
            p.push(Payload::VendorId(CLONE_REDUCED_VENDOR_ID.to_vec()));
        }
        let h = Header {
            spi_i: c.spi_i,
            spi_r: 0,
            next_payload: PayloadType::NoNextPayload,
            exchange: ExchangeType::IkeSaInit,
            flags: Flags { initiator: true, ..Default::default() },
            message_id: 0,
            length: 0,
        };
        let msg = Message::emit_clear(h, &p);
        c.request = msg.clone();
        c.next = now + self.settings.retransmit_base;
        c.tries = 0;
        self.send(c.local, c.remote, msg);
        Ok(())
    }

    /// Responder: an IKE_SA_INIT request.
    pub(super) fn init_request(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, ike: &[u8], h: Header) {
        // A retransmission: answer with the same response.
        if let Some(spi) = self.init_index.get(&(h.spi_i, remote)).copied() {
            if let Some(IkeSa { core, phase: Phase::Authenticating(a) }) = self.sas.get(&spi).map(|b| &**b) {
                if a.init_request == ike {
                    self.stats.retransmits_answered += 1;
                    let (l, r, m) = (core.local, core.remote, a.init_response.clone());
                    self.send(l, r, m);
                }
            } else {
                // An IKE SA rebuilt from a stub answers its SYN again.
                self.syn_retransmitted(spi);
            }
            return;
        }
        let unprotected = |e: &mut Engine, why: Error| {
            let (ty, data) = why.notify();
            e.answer_init(local, remote, h.spi_i, Notify::new(ty, data));
        };
        let m = match Message::parse(ike) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                unprotected(self, Error::Parse(e));
                return;
            }
        };
        let p = &m.payloads;
        let (Some(sa_offer), Some(ke), Some(ni)) = (payloads::sa(p), payloads::ke(p), payloads::nonce(p)) else {
            self.stats.malformed += 1;
            unprotected(self, Error::Missing("SA, KE or Nonce payload"));
            return;
        };
        // RFC 7296 2.6: under load, demand a cookie before keeping state.
        if self.half_open >= self.settings.cookie_threshold {
            self.cookies.rotate(now, self.settings.cookie_secret_lifetime, self.rng.as_mut());
            let given = notify(p, NotifyType::Cookie).map(|n| n.data.as_slice());
            let ok = given
                .is_some_and(|c| self.cookies.accepts(c, ni, remote.ip(), h.spi_i, now, self.settings.cookie_grace));
            if !ok {
                self.stats.cookies_sent += 1;
                let want = CookieSecrets::make(&self.cookies.current, ni, remote.ip(), h.spi_i);
                self.answer_init(local, remote, h.spi_i, Notify::new(NotifyType::Cookie, want));
                return;
            }
        }
        // draft-xu-ike-sa-sync: a rebuild from a stub we hold.
        if let Some(syn) = p.iter().find_map(|x| if let Payload::Syn(s) = x { Some(*s) } else { None }) {
            let redirect = has_notify(p, NotifyType::RedirectSupported);
            if self.syn_request(now, (local, remote), &h, sa_offer, (ni, redirect), (syn, ike)) {
                return;
            }
        }
        // The connection: the first whose addresses fit. Its IKE proposals
        // decide; IKE_AUTH may move to another with the same ones.
        let fits = |c: &crate::ike::Connection| {
            !c.retired && c.local.is_none_or(|a| a == local.ip()) && c.remote.is_none_or(|a| a == remote.ip())
        };
        let chosen = self
            .conns
            .iter()
            .position(fits)
            .and_then(|ci| proposal::select_ike(&self.conns[ci].ike, sa_offer).map(|s| (ci, s)));
        let Some((ci, (suite, chosen))) = chosen else {
            self.stats.no_proposal += 1;
            unprotected(self, Error::NoProposal);
            return;
        };
        // RFC 7296 1.2: a KE for another group than the chosen one gets
        // INVALID_KE_PAYLOAD naming the group we want.
        if ke.group != suite.dh.value() {
            unprotected(self, Error::WrongKeGroup { want: suite.dh, got: ke.group });
            return;
        }
        let Ok((ours, ke_r)) = self.dh_pool.generate(suite.dh, self.rng.as_mut()) else { return };
        let g_ir = match dh::agree(ours, &ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.stats.malformed += 1;
                unprotected(self, Error::Dh(e));
                return;
            }
        };
        let spi_r = self.new_spi();
        let nr = self.nonce();
        let seed = keys::skeyseed(suite.prf, ni, &nr, &g_ir);
        let k = IkeKeys::derive(&suite, &seed, ni, &nr, h.spi_i, spi_r);
        // NAT detection (RFC 7296 2.23).
        let src = notify(p, NotifyType::NatDetectionSourceIp);
        let dst = notify(p, NotifyType::NatDetectionDestinationIp);
        let (peer_nat, we_nat) = match (src, dst) {
            (Some(s), Some(d)) => {
                (s.data != keys::natd_hash(h.spi_i, 0, remote), d.data != keys::natd_hash(h.spi_i, 0, local))
            }
            _ => (false, false),
        };
        let mut out = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke(KeyExchange { group: suite.dh.value(), data: ke_r }),
            Payload::Nonce(nr.clone()),
        ];
        if src.is_some() {
            out.push(Payload::Notify(Notify::new(
                NotifyType::NatDetectionSourceIp,
                keys::natd_hash(h.spi_i, spi_r, local),
            )));
            out.push(Payload::Notify(Notify::new(
                NotifyType::NatDetectionDestinationIp,
                keys::natd_hash(h.spi_i, spi_r, remote),
            )));
        }
        let peer_frag = has_notify(p, NotifyType::IkeFragmentationSupported);
        if peer_frag {
            out.push(Payload::Notify(Notify::new(NotifyType::IkeFragmentationSupported, vec![])));
        }
        // RFC 7427 4 and RFC 7296 3.7: our hashes to an initiator that
        // announced its own, and a CERTREQ for the CAs we check with (the
        // connection is known only in IKE_AUTH: every one that checks).
        let peer_hashes = super::signature_auth::peer_hashes(p);
        let with_certs = self.conns.iter().any(super::signature_auth::uses_certs);
        out.extend(super::signature_auth::hash_notify(with_certs && !peer_hashes.is_empty()));
        if with_certs {
            let mut cas = Vec::new();
            for c in &self.conns {
                if let Some(Payload::CertReq(r)) = super::signature_auth::certreq(c) {
                    if !cas.windows(r.data.len()).any(|w| w == r.data.as_slice()) {
                        cas.extend(r.data);
                    }
                }
            }
            if !cas.is_empty() {
                out.push(Payload::CertReq(crate::wire::Certificate {
                    encoding: super::signature_auth::X509_SIGNATURE,
                    data: cas,
                }));
            }
        }
        if self.mpsa_role != MpsaRole::Off {
            out.push(Payload::VendorId(MPSA_VENDOR_ID.to_vec()));
        }
        // Answered only to a peer that offers it, when some connection
        // clones (the one to use is known in IKE_AUTH).
        let clone_reduced =
            has_vendor_id(p, CLONE_REDUCED_VENDOR_ID) && self.conns.iter().any(|c| c.clone_reduced && !c.retired);
        if clone_reduced {
            out.push(Payload::VendorId(CLONE_REDUCED_VENDOR_ID.to_vec()));
        }
        let resp = Message::emit_clear(init_response_header(h.spi_i, spi_r), &out);
        let mut core = Core::new(ci, false, (h.spi_i, spi_r), (local, remote), suite, k, (0, 1), now);
        core.g_ir = g_ir;
        core.nat = peer_nat || we_nat;
        core.we_behind_nat = we_nat;
        core.peer_mpsa = has_vendor_id(p, MPSA_VENDOR_ID);
        core.peer_redirect = has_notify(p, NotifyType::RedirectSupported);
        core.clone_reduced = clone_reduced;
        core.peer_frag = peer_frag;
        core.half_open_until = Some(now + self.settings.half_open_timeout);
        let phase = Phase::Authenticating(Authenticating {
            ni: ni.clone(),
            nr,
            init_request: ike.to_vec(),
            init_response: resp.clone(),
            replaces: None,
            peer_hashes,
            cert_asked: false,
        });
        self.half_open += 1;
        self.init_index.insert((h.spi_i, remote), spi_r);
        self.insert_sa(spi_r, IkeSa { core, phase });
        self.send(local, remote, resp);
    }

    /// An IKE_SA_INIT response with one notify and no state kept (an
    /// error, or a cookie request): HDR(SPIi, 0), N.
    fn answer_init(&mut self, local: SocketAddr, remote: SocketAddr, spi_i: u64, n: Notify) {
        let hdr = Header {
            spi_i,
            spi_r: 0,
            next_payload: PayloadType::NoNextPayload,
            exchange: ExchangeType::IkeSaInit,
            flags: Flags { response: true, ..Default::default() },
            message_id: 0,
            length: 0,
        };
        let m = Message::emit_clear(hdr, &[Payload::Notify(n)]);
        self.send(local, remote, m);
    }

    /// Initiator: the IKE_SA_INIT response.
    pub(super) fn init_response(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, ike: &[u8], h: Header) {
        let Some(mut c) = self.connecting.remove(&h.spi_i) else {
            // A late copy of an answer we acted on already, or none of ours.
            if self.sas.contains_key(&h.spi_i) {
                self.stats.bad_message_id += 1;
            } else {
                self.stats.unknown_spi += 1;
            }
            return;
        };
        let rebuilt = |e: &mut Engine, c: &mut Connecting| {
            let m = Message::parse(ike);
            c.syn.is_some() && m.is_ok_and(|m| e.syn_answered(now, c, &h, &m.payloads))
        };
        if h.message_id != 0 {
            self.stats.bad_message_id += 1;
        } else if rebuilt(self, &mut c) {
            return;
        } else if let Some(sa) = self.init_answer(now, &mut c, local, remote, ike, h) {
            let spi = sa.core.spi_i;
            self.insert_sa(spi, sa);
            return;
        }
        if c.failed {
            return;
        }
        self.touched.push(c.spi_i);
        self.connecting.insert(c.spi_i, c);
    }

    /// The answer to IKE_SA_INIT: the keyed IKE SA, or None (retried,
    /// ignored, or `c.failed`).
    fn init_answer(
        &mut self,
        now: Instant,
        c: &mut Connecting,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        h: Header,
    ) -> Option<IkeSa> {
        let Ok(m) = Message::parse(ike) else {
            self.stats.malformed += 1;
            return None;
        };
        let p = &m.payloads;
        let retries_left = c.retries < self.settings.init_retries;
        // RFC 7296 2.6: a cookie request: send again with the cookie first.
        if let Some(n) = notify(p, NotifyType::Cookie) {
            if retries_left && !n.data.is_empty() && n.data.len() <= self.settings.max_cookie_len {
                c.retries += 1;
                c.cookie = Some(n.data.clone());
                let _ = self.send_init(now, c, false);
            }
            return None;
        }
        // RFC 7296 1.2: the responder wants another group.
        if let Some(n) = notify(p, NotifyType::InvalidKePayload) {
            let want = n.data.get(..2).map(|b| DhGroup::from_value(u16::from_be_bytes([b[0], b[1]])));
            match want.filter(|g| self.conns[c.conn].ike.iter().any(|s| s.dh == *g)) {
                Some(g) if retries_left => {
                    c.retries += 1;
                    c.group = g;
                    if let Err(e) = self.send_init(now, c, true) {
                        self.init_failed(c, e);
                    }
                }
                _ => self.init_failed(c, Error::Refused(NotifyType::InvalidKePayload)),
            }
            return None;
        }
        if let Some(e) = Error::refusal(p) {
            if e == Error::Refused(NotifyType::NoProposalChosen) {
                self.stats.no_proposal += 1;
            }
            self.init_failed(c, e);
            return None;
        }
        let (Some(offer), Some(ke), Some(nr)) = (payloads::sa(p), payloads::ke(p), payloads::nonce(p)) else {
            self.stats.malformed += 1;
            return None;
        };
        let Some(suite) = proposal::chosen_ike(&self.conns[c.conn].ike, offer) else {
            self.init_failed(c, Error::BadAnswer("the responder chose a proposal we did not offer"));
            return None;
        };
        if ke.group != suite.dh.value() || suite.dh != c.group {
            self.init_failed(c, Error::BadAnswer("the responder's KE group is not the one chosen"));
            return None;
        }
        let d = c.dh.take()?;
        let Ok(g_ir) = dh::agree(d, &ke.data) else {
            self.init_failed(c, Error::BadAnswer("the responder's public value is invalid"));
            return None;
        };
        let seed = keys::skeyseed(suite.prf, &c.ni, nr, &g_ir);
        let k = IkeKeys::derive(&suite, &seed, &c.ni, nr, c.spi_i, h.spi_r);
        let mut core = Core::new(c.conn, true, (c.spi_i, h.spi_r), (c.local, c.remote), suite, k, (1, 0), c.created);
        core.g_ir = g_ir;
        core.last_heard = now;
        core.peer_mpsa = has_vendor_id(p, MPSA_VENDOR_ID);
        core.clone_reduced = self.conns[c.conn].clone_reduced && has_vendor_id(p, CLONE_REDUCED_VENDOR_ID);
        core.peer_frag = has_notify(p, NotifyType::IkeFragmentationSupported);
        if let (Some(s), Some(d)) =
            (notify(p, NotifyType::NatDetectionSourceIp), notify(p, NotifyType::NatDetectionDestinationIp))
        {
            let peer_nat = s.data != keys::natd_hash(c.spi_i, h.spi_r, remote);
            let we_nat = d.data != keys::natd_hash(c.spi_i, h.spi_r, local);
            core.nat = peer_nat || we_nat;
            core.we_behind_nat = we_nat;
        }
        // RFC 7296 2.23: with a NAT, move to port 4500 now.
        if core.nat {
            core.local.set_port(NATT_PORT);
            core.remote.set_port(NATT_PORT);
        }
        let auth = Authenticating {
            ni: std::mem::take(&mut c.ni),
            nr: nr.clone(),
            init_request: std::mem::take(&mut c.request),
            init_response: ike.to_vec(),
            replaces: c.redirected.map(|(_, old)| old),
            peer_hashes: super::signature_auth::peer_hashes(p),
            cert_asked: super::signature_auth::cert_asked(p),
        };
        if let Err(e) = self.send_auth(now, &mut core, &auth) {
            self.init_failed(c, e);
            return None;
        }
        Some(IkeSa { core, phase: Phase::Authenticating(auth) })
    }

    fn init_failed(&mut self, c: &mut Connecting, why: Error) {
        c.failed = true;
        self.failed(c.conn, why);
    }

    /// IKE_SA_INIT unanswered: sent again, doubling the wait (RFC 7296
    /// 2.4); given up after `retransmit_tries`.
    pub(super) fn timeout_connecting(&mut self, now: Instant, spi: u64) {
        let Some(mut c) = self.connecting.remove(&spi) else { return };
        if c.next <= now {
            if c.tries >= self.settings.retransmit_tries {
                self.failed(c.conn, Error::Unanswered(c.remote));
                // A SYN goes on to the next standby gateway.
                self.syn_unanswered(now, c);
                return;
            }
            c.tries += 1;
            c.next = now + self.settings.retransmit_base * 2u32.pow(c.tries.min(10));
            self.stats.retransmitted += 1;
            let (l, r, m) = (c.local, c.remote, c.request.clone());
            self.send(l, r, m);
        }
        self.connecting.insert(spi, c);
    }
}

/// The header of our IKE_SA_INIT answer (RFC 7296 3.1: a response, message
/// ID 0, the I flag clear).
pub(super) fn init_response_header(spi_i: u64, spi_r: u64) -> Header {
    Header {
        spi_i,
        spi_r,
        next_payload: PayloadType::NoNextPayload,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags { response: true, ..Default::default() },
        message_id: 0,
        length: 0,
    }
}
