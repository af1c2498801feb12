//! Redirect (RFC 5685), for an established IKE SA, both roles: a gateway
//! moves a client to another gateway of its cluster (load balancing,
//! draft-xu-ike-sa-sync 2.2), and the client arrives there by IKE_SA_SYN
//! from its view of the SA's stub.
//!
//! ```text
//! Client                                      Gateway
//! HDR, SAi1, KEi, Ni, N(REDIRECT_SUPPORTED)  -->          (IKE_SA_INIT, 3)
//!                 <--  HDR, SK { N(REDIRECT, new gateway) }  (INFORMATIONAL, 6)
//! HDR, SK {}  -->
//! (to the new gateway) HDR, SAi1, KEi, Ni, SYN, N(REDIRECTED_FROM, old)  -->
//! ...rebuilt (or the full exchange); then the old IKE SA is deleted
//! ```
//!
//! REDIRECT's data: GW Ident Type (1 IPv4, 2 IPv6, 3 FQDN), GW Ident Len,
//! the identity, then a nonce only in IKE_SA_INIT (RFC 5685 8, 10). A
//! gateway redirects only clients that sent REDIRECT_SUPPORTED, and
//! deletes the IKE SA itself if the client has not done so within
//! `half_open_timeout` (as strongSwan does). A client follows only if its
//! connection says `redirect = true` (the default).

use std::net::IpAddr;
use std::time::Instant;

use super::sa::{Connecting, Core, Established, Task};
use super::{Engine, Error};
use crate::codepoints::{ExchangeType, NotifyType};
use crate::wire::{Notify, Payload};

const GW_IPV4: u8 = 1;
const GW_IPV6: u8 = 2;
const GW_FQDN: u8 = 3;

/// REDIRECT / REDIRECTED_FROM data for gateway `gw` (no nonce).
pub(super) fn gateway_identity(gw: IpAddr) -> Vec<u8> {
    match gw {
        IpAddr::V4(a) => [&[GW_IPV4, 4][..], &a.octets()].concat(),
        IpAddr::V6(a) => [&[GW_IPV6, 16][..], &a.octets()].concat(),
    }
}

/// The gateway a REDIRECT names. An FQDN is refused (we resolve nothing
/// in the engine); octets after the identity (IKE_SA_INIT's nonce) are
/// ignored.
pub(super) fn parse_gateway_identity(d: &[u8]) -> Result<IpAddr, Error> {
    let bad = |why| Error::BadAnswer(why);
    let (&ty, rest) = d.split_first().ok_or(bad("REDIRECT without a gateway identity"))?;
    let (&len, rest) = rest.split_first().ok_or(bad("REDIRECT without a gateway identity length"))?;
    let id = rest.get(..usize::from(len)).ok_or(bad("REDIRECT's gateway identity is cut short"))?;
    match (ty, id.len()) {
        (GW_IPV4, 4) => Ok(IpAddr::from(<[u8; 4]>::try_from(id).expect("4 octets"))),
        (GW_IPV6, 16) => Ok(IpAddr::from(<[u8; 16]>::try_from(id).expect("16 octets"))),
        (GW_FQDN, _) => Err(bad("REDIRECT to a name (FQDN): not resolved here")),
        _ => Err(bad("REDIRECT's gateway identity has a bad type or length")),
    }
}

impl Engine {
    /// Client, IKE_SA_INIT: N(REDIRECT_SUPPORTED) where the connection
    /// follows redirects, and N(REDIRECTED_FROM) when a redirect sent us.
    pub(super) fn redirect_init_payloads(&self, c: &Connecting) -> Vec<Payload> {
        let mut p = Vec::new();
        if self.conns[c.conn].redirect {
            p.push(Payload::Notify(Notify::new(NotifyType::RedirectSupported, vec![])));
        }
        if let Some((from, _)) = c.redirected {
            p.push(Payload::Notify(Notify::new(NotifyType::RedirectedFrom, gateway_identity(from))));
        }
        p
    }

    /// Gateway: redirects the clients of connection `name` (those with
    /// identity `peer`, or all) to gateway `to`. Only clients that sent
    /// REDIRECT_SUPPORTED; returns how many.
    pub fn redirect(&mut self, now: Instant, name: &str, to: IpAddr, peer: Option<&str>) -> Result<usize, Error> {
        let ci = self.conn_index(name)?;
        let spis: Vec<u64> = self
            .established_of(ci)
            .into_iter()
            .filter(|s| {
                self.sa(s).is_some_and(|x| {
                    x.core.peer_redirect
                        && !x.core.mobike_initiator
                        && x.established().is_some_and(|e| peer.is_none_or(|p| e.peer_id.to_text() == p))
                })
            })
            .collect();
        if spis.is_empty() {
            return Err(Error::Policy("no client of that connection announced REDIRECT_SUPPORTED"));
        }
        let until = now + self.settings.half_open_timeout;
        for s in &spis {
            let n = Payload::Notify(Notify::new(NotifyType::Redirect, gateway_identity(to)));
            if let Some(super::sa::IkeSa { phase: super::sa::Phase::Established(e), .. }) = self.sa_mut(s) {
                e.redirected_until = Some(until);
            }
            self.stats.redirects_sent += 1;
            self.queue(now, *s, Task::Informational(vec![n]));
        }
        self.reschedule();
        Ok(spis.len())
    }

    /// Client: an INFORMATIONAL with N(REDIRECT, `data`). Answered; where
    /// we follow redirects, the IKE SA goes to the named gateway by
    /// IKE_SA_SYN (the full exchange if it holds no stub), and this one is
    /// deleted once that one is up.
    pub(super) fn redirect_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        data: &[u8],
        id: u32,
    ) {
        self.respond(sa, ExchangeType::Informational, id, vec![]);
        if !self.conns[sa.conn].redirect || !sa.mobike_initiator {
            self.stats.redirects_ignored += 1;
            return;
        }
        let to = match parse_gateway_identity(data) {
            Ok(to) => to,
            Err(e) => {
                self.stats.redirects_ignored += 1;
                self.failed(sa.conn, e);
                return;
            }
        };
        self.stats.redirects_followed += 1;
        let stub = self.client_stub(sa, est);
        let old = (sa.remote.ip(), sa.our_spi());
        if let Err(e) = self.syn_to_from(now, sa.conn, stub, to, Some(old)) {
            self.failed(sa.conn, e);
        }
    }
}
