//! MOBIKE (RFC 4555): the IKE SA and its child SAs follow an endpoint to
//! new addresses, and without MOBIKE, a NAT's new mapping (RFC 7296 2.23).
//!
//! ```text
//! Initiator                                  Responder
//! IKE_AUTH  HDR, SK { ..., N(MOBIKE_SUPPORTED),
//!                   N(ADDITIONAL_IP*_ADDRESS)* | N(NO_ADDITIONAL_ADDRESSES) }  -->
//!                        <--  HDR, SK { ..., N(MOBIKE_SUPPORTED), N(ADDITIONAL_*)... }
//! (moved to a new address: 3.5)
//! INFORMATIONAL  HDR, SK { N(UPDATE_SA_ADDRESSES), N(NAT_DETECTION_SOURCE_IP),
//!                          N(NAT_DETECTION_DESTINATION_IP), N(COOKIE2) }  -->
//!                        <--  HDR, SK { N(NAT_DETECTION_*), N(COOKIE2) }
//! (a path check, 3.9: the same without UPDATE_SA_ADDRESSES)
//! ```
//!
//! Only the original initiator moves the SAs (3.5). The responder takes
//! the addresses of the request's IP header, detects a NAT from the
//! NAT-D hashes (refusing one with UNEXPECTED_NAT_DETECTED when the peer
//! sent NO_NATS_ALLOWED, 3.9), refuses addresses its policy does not take
//! with UNACCEPTABLE_ADDRESSES, and moves every child SA's outer addresses
//! in the dataplane, keeping keys and sequence numbers (3.12).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use cpdp::msg::{Command, Direction};

use super::payloads::{has_notify, notify};
use super::sa::{Core, Established, Mobike, Pending, Task};
use super::{Engine, Error, Event, MoveReason};
use crate::codepoints::{ExchangeType, NotifyType};
use crate::crypto::keys;
use crate::mobikex::{IpParam, Param, Version};
use crate::wire::{Notify, Payload};

/// Octets of our COOKIE2 (RFC 4555 3.6: 8 to 64).
const COOKIE2_LEN: usize = 16;

/// The addresses of ADDITIONAL_IP4/6_ADDRESS notifies in `p` (3.4); None
/// when `p` says nothing about them.
fn additional(p: &[Payload]) -> Option<Vec<IpAddr>> {
    let mut seen = false;
    let mut v = Vec::new();
    for n in p.iter().filter_map(|x| if let Payload::Notify(n) = x { Some(n) } else { None }) {
        match n.ty {
            NotifyType::AdditionalIp4Address => {
                seen = true;
                if let Ok(b) = <[u8; 4]>::try_from(n.data.as_slice()) {
                    v.push(IpAddr::from(b));
                }
            }
            NotifyType::AdditionalIp6Address => {
                seen = true;
                if let Ok(b) = <[u8; 16]>::try_from(n.data.as_slice()) {
                    v.push(IpAddr::from(b));
                }
            }
            NotifyType::NoAdditionalAddresses => seen = true,
            _ => {}
        }
    }
    seen.then_some(v)
}

/// NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for a message from `from`
/// to `to` on an IKE SA with both SPIs (RFC 7296 2.23).
fn natd(sa: &Core, from: SocketAddr, to: SocketAddr) -> [Payload; 2] {
    [
        Payload::Notify(Notify::new(NotifyType::NatDetectionSourceIp, keys::natd_hash(sa.spi_i, sa.spi_r, from))),
        Payload::Notify(Notify::new(NotifyType::NatDetectionDestinationIp, keys::natd_hash(sa.spi_i, sa.spi_r, to))),
    ]
}

/// (the peer is behind a NAT, we are), from NAT-D hashes in `p` of a
/// message that came from `from` to `to`; None without them.
/// Initiator, moving `sa` to our address `ip` (3.5): where MOBIKE lets us
/// (on, ours to decide, same family), the IKE SA's path changes and the
/// one it left is returned.
pub(super) fn step_to(sa: &mut Core, est: &Established, ip: IpAddr) -> Option<(SocketAddr, SocketAddr)> {
    if est.mobike.is_none() || !sa.mobike_initiator || ip.is_ipv4() != sa.remote.is_ipv4() {
        return None;
    }
    let old = (sa.local, sa.remote);
    sa.local = SocketAddr::new(ip, sa.local.port());
    Some(old)
}

fn nat_of(sa: &Core, p: &[Payload], from: SocketAddr, to: SocketAddr) -> Option<(bool, bool)> {
    let s = notify(p, NotifyType::NatDetectionSourceIp)?;
    let d = notify(p, NotifyType::NatDetectionDestinationIp)?;
    Some((s.data != keys::natd_hash(sa.spi_i, sa.spi_r, from), d.data != keys::natd_hash(sa.spi_i, sa.spi_r, to)))
}

impl Engine {
    /// Our other addresses as IKE_AUTH announces them (3.4; in RFC 4555's
    /// form whichever version the exchange agrees on).
    fn additional_payloads(&self, conn: usize) -> Vec<Payload> {
        let c = &self.conns[conn];
        let mut v: Vec<Payload> = c
            .additional_addresses
            .iter()
            .map(|a| {
                Payload::Notify(match a {
                    IpAddr::V4(x) => Notify::new(NotifyType::AdditionalIp4Address, x.octets().to_vec()),
                    IpAddr::V6(x) => Notify::new(NotifyType::AdditionalIp6Address, x.octets().to_vec()),
                })
            })
            .collect();
        if c.additional_addresses.is_empty() {
            v.push(Payload::Notify(Notify::new(NotifyType::NoAdditionalAddresses, vec![])));
        }
        v
    }

    /// Initiator: what our IKE_AUTH request carries for MOBIKE: support,
    /// with the versions we take (RFC 4555 3.3; MOBIKE-X 6.1), and our
    /// other addresses (3.4).
    pub(super) fn mobike_auth_payloads(&self, conn: usize) -> Vec<Payload> {
        let Some(n) = self.conns[conn].mobike.supported() else { return Vec::new() };
        let mut v = vec![Payload::Notify(n)];
        v.extend(self.additional_payloads(conn));
        v
    }

    /// Responder: the answer to the MOBIKE part of the initiator's
    /// IKE_AUTH `p`, and MOBIKE's state when a version was agreed (RFC
    /// 4555 3.3; MOBIKE-X 7.1.1: MOBIKE_SUPPORTED with the version chosen,
    /// or MOBIKE_UNSUPPORTED_VERSION with ours).
    pub(super) fn mobike_auth_answer(&self, conn: usize, p: &[Payload]) -> (Vec<Payload>, Option<Mobike>) {
        let Some((answer, version)) =
            notify(p, NotifyType::MobikeSupported).and_then(|n| self.conns[conn].mobike.answer(n))
        else {
            return (Vec::new(), None);
        };
        let mut out = vec![Payload::Notify(answer)];
        let Some(version) = version else { return (out, None) };
        out.extend(self.additional_payloads(conn));
        (out, Some(Mobike::new(version, additional(p).unwrap_or_default())))
    }

    /// Initiator: MOBIKE on the IKE SA the responder's IKE_AUTH answer `p`
    /// completes, in the version it chose.
    pub(super) fn mobike_negotiated(&self, conn: usize, p: &[Payload]) -> Option<Mobike> {
        let version = self.conns[conn].mobike.outcome(notify(p, NotifyType::MobikeSupported))?;
        Some(Mobike::new(version, additional(p).unwrap_or_default()))
    }

    /// The MOBIKE part of an INFORMATIONAL request: address lists (3.4),
    /// UPDATE_SA_ADDRESSES (3.5), NAT-D path checks (3.9) and COOKIE2
    /// (3.6). Returns what the response carries for it, or the refusal.
    pub(super) fn mobike_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
    ) -> Result<Vec<Payload>, Error> {
        let Some(version) = est.mobike.as_ref().map(|m| m.version) else { return Ok(Vec::new()) };
        let (local, remote) = sa.w.reply_to.unwrap_or((sa.local, sa.remote));
        let nat = nat_of(sa, p, remote, local);
        if notify(p, NotifyType::MobikeUnsupportedVersion).is_some_and(crate::mobikex::version::is_cancel) {
            est.mobike = None;
            let conn = self.conns[sa.conn].name.clone();
            self.event(Event::MobikeOff { conn });
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if version == Version::MobikeX {
            out = self.mobikex_request(now, sa, est, p, (local, remote), nat);
        } else if has_notify(p, NotifyType::UpdateSaAddresses) && sa.mobike_initiator {
            // Only the original initiator moves the SAs (3.5).
            self.stats.mobike_refused += 1;
            return Err(Error::UnacceptableAddresses("only the IKE SA's initiator moves it (RFC 4555 3.5)".into()));
        } else if has_notify(p, NotifyType::UpdateSaAddresses) {
            let (peer_nat, we_nat) = nat.unwrap_or((false, false));
            if let Some(n) = notify(p, NotifyType::NoNatsAllowed) {
                if peer_nat || we_nat || n.data != no_nats_data(remote, local) {
                    self.stats.mobike_refused += 1;
                    return Err(Error::UnexpectedNat);
                }
            }
            if let Err(e) = self.check_peer_address(sa, est, remote.ip()) {
                self.stats.mobike_refused += 1;
                return Err(e);
            }
            let from = (sa.local, sa.remote);
            sa.local = local;
            sa.remote = remote;
            if nat.is_some() {
                sa.nat = peer_nat || we_nat;
                sa.we_behind_nat = we_nat;
            }
            if sa.we_behind_nat && sa.keepalive_at.is_none() {
                sa.keepalive_at = Some(now + self.settings.keepalive);
            }
            self.moved(sa, est, from, MoveReason::PeerUpdate);
        }
        // The peer's address set from now on: the one in use and these
        // (3.4); a move is judged by the set it was made from, above.
        if let (Some(list), Some(m)) = (additional(p), est.mobike.as_mut()) {
            if version == Version::Mobike || m.alternates.is_empty() {
                // The responder's address we send to is gone from its set
                // (3.4: the set is the source of this request and the list)
                // while it speaks from another: as the initiator we decide
                // the path (3.5) and move to the one it speaks from.
                let gone = remote.ip() != sa.remote.ip() && !list.contains(&sa.remote.ip());
                m.peer_addresses = list;
                if gone && sa.mobike_initiator && remote.is_ipv4() == sa.remote.is_ipv4() {
                    let old = (sa.local, sa.remote);
                    sa.remote = SocketAddr::new(remote.ip(), sa.remote.port());
                    sa.w.tasks.push_back(Task::MobikeAnnounce(old, MoveReason::PeerAddressGone));
                    self.touched.push(sa.our_spi());
                }
            }
        }
        if nat.is_some() {
            out.extend(natd(sa, local, remote));
        }
        if let Some(c) = notify(p, NotifyType::Cookie2) {
            out.push(Payload::Notify(Notify::new(NotifyType::Cookie2, c.data.clone())));
        }
        Ok(out)
    }

    /// RFC 4555 3.5: a peer with a fixed address in our config moves only
    /// to that address or to one it announced.
    pub(super) fn check_peer_address(&self, sa: &Core, est: &Established, to: IpAddr) -> Result<(), Error> {
        let fixed = self.conns[sa.conn].remote;
        let announced = est.mobike.as_ref().is_some_and(|m| m.peer_addresses.contains(&to));
        match fixed {
            Some(a) if a != to && !announced => {
                Err(Error::UnacceptableAddresses(format!("{to} is neither {a} nor an address the peer announced")))
            }
            _ => Ok(()),
        }
    }

    /// Initiator: move to our address `ip` (3.5): the IKE SA's path first,
    /// then INFORMATIONAL { N(UPDATE_SA_ADDRESSES), NAT-D, N(COOKIE2) }.
    pub(super) fn start_mobike_update(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &Established,
        ip: IpAddr,
        why: MoveReason,
    ) -> bool {
        let Some(old) = step_to(sa, est, ip) else { return false };
        self.send_mobike_update(now, sa, est, old, why)
    }

    /// Initiator, on its new path already: INFORMATIONAL { NAT-D,
    /// N(COOKIE2), N(UPDATE_SA_ADDRESSES) } there; `old` is where a refusal
    /// takes us back to.
    pub(super) fn send_mobike_update(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &Established,
        old: (SocketAddr, SocketAddr),
        why: MoveReason,
    ) -> bool {
        if est.mobike.is_none() || !sa.mobike_initiator {
            return false;
        }
        let (p, cookie2) = self.mobike_update_payloads(sa, est, old);
        self.request(now, sa, ExchangeType::Informational, p, Pending::MobikeUpdate { cookie2, old, why });
        true
    }

    /// What announces our move from `old` to the current path: NAT-D,
    /// N(COOKIE2), N(UPDATE_SA_ADDRESSES) (MOBIKE-X: with OLD and NEW);
    /// and the COOKIE2 to see echoed.
    pub(super) fn mobike_update_payloads(
        &mut self,
        sa: &Core,
        est: &Established,
        old: (SocketAddr, SocketAddr),
    ) -> (Vec<Payload>, Vec<u8>) {
        let ip = sa.local.ip();
        let cookie2 = self.rng.vec(COOKIE2_LEN);
        // NAT-D and COOKIE2 first: after a MOBIKE-X action only
        // END_OF_SELECTOR or another action may follow (section 8).
        let mut p: Vec<Payload> = natd(sa, sa.local, sa.remote).into();
        p.push(Payload::Notify(Notify::new(NotifyType::Cookie2, cookie2.clone())));
        let data = match est.mobike.as_ref().map(|m| m.version) {
            // MOBIKE-X 7.4: say which address of ours is replaced by which.
            Some(Version::MobikeX) => {
                let mut o = IpParam::header(old.0.ip());
                o.old = true;
                let mut n = IpParam::header(ip);
                n.new = true;
                let id = (sa.w.next_request & 0xffff) as u16;
                crate::mobikex::param::emit(&[Param::Ip(o), Param::Ip(n), Param::Id(id)])
            }
            _ => Vec::new(),
        };
        p.push(Payload::Notify(Notify::new(NotifyType::UpdateSaAddresses, data)));
        (p, cookie2)
    }

    /// Initiator: the answer `p` to our move from `old` (our
    /// UPDATE_SA_ADDRESSES). Refused, or without our COOKIE2 (3.6): back
    /// to the old path, false. Else the child SAs follow, true.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mobike_update_answered(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        cookie2: Vec<u8>,
        old: (SocketAddr, SocketAddr),
        why: MoveReason,
    ) -> bool {
        let echoed = notify(p, NotifyType::Cookie2).is_some_and(|c| c.data == cookie2);
        let refusal = Error::refusal(p).or((!echoed).then_some(Error::BadAnswer("COOKIE2 not echoed")));
        if let Some(e) = refusal {
            (sa.local, sa.remote) = old;
            self.failed(sa.conn, e);
            return false;
        }
        if let Some((peer_nat, we_nat)) = nat_of(sa, p, sa.remote, sa.local) {
            sa.nat = sa.nat || peer_nat || we_nat;
            sa.we_behind_nat = we_nat;
            if we_nat && sa.keepalive_at.is_none() {
                sa.keepalive_at = Some(now + self.settings.keepalive);
            }
        }
        self.moved(sa, est, old, why);
        true
    }

    /// Without MOBIKE, RFC 7296 2.23: behind a NAT the peer's address is
    /// that of its last authenticated message; the child SAs follow it.
    pub(super) fn nat_mapping_changed(&mut self, sa: &mut Core, est: &mut Established, remote: SocketAddr) {
        if !sa.nat || sa.remote == remote || est.mobike.is_some() {
            return;
        }
        let from = (sa.local, sa.remote);
        sa.remote = remote;
        self.moved(sa, est, from, MoveReason::NatMapping);
    }

    /// The IKE SA moved from `from` to its current path: every child SA's
    /// outer addresses follow in the dataplane (same SA: keys, sequence
    /// numbers and counters stay, RFC 4555 3.12).
    pub(super) fn moved(&mut self, sa: &Core, est: &mut Established, from: (SocketAddr, SocketAddr), why: MoveReason) {
        // Multihomed child SAs (MOBIKE-X): the addresses that moved move in
        // their paths too; the others stay.
        for c in est.children.iter_mut().filter(|c| !c.paths.is_empty()) {
            let mut next = Vec::new();
            for (l, r) in c.paths.drain(..) {
                let l = if l == from.0.ip() { sa.local.ip() } else { l };
                let r = if r == from.1.ip() { sa.remote.ip() } else { r };
                if !next.contains(&(l, r)) {
                    next.push((l, r));
                }
            }
            c.paths = next;
        }
        self.announce_move(sa, est, from, why);
    }

    /// The IKE SA moved from `from` and its child SAs' paths are set: the
    /// dataplane and the log learn it.
    pub(super) fn announce_move(
        &mut self,
        sa: &Core,
        est: &mut Established,
        from: (SocketAddr, SocketAddr),
        why: MoveReason,
    ) {
        if let Some(m) = est.mobike.as_mut() {
            m.moves += 1;
        }
        let natt = sa.nat.then_some((sa.local.port(), sa.remote.port()));
        for c in &est.children {
            if !c.paths.is_empty() {
                self.send_paths(sa, c);
                continue;
            }
            for direction in [Direction::In, Direction::Out] {
                // Both of a child's SAs are named by its inbound SPI.
                let cmd = Command::UpdateSaAddresses {
                    spi: c.spi_in,
                    direction,
                    local: sa.local.ip(),
                    remote: sa.remote.ip(),
                    natt,
                };
                self.dp(cmd);
            }
        }
        self.move_transport_children(sa, est);
        let conn = self.conns[sa.conn].name.clone();
        self.event(Event::Moved { conn, from, to: (sa.local, sa.remote), why });
    }
}

/// NO_NATS_ALLOWED's data (RFC 4555 4.4): the addresses and ports of the
/// message as its sender sent it: source, destination, source port,
/// destination port.
pub(super) fn no_nats_data(from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let ip = |a: IpAddr| match a {
        IpAddr::V4(x) => x.octets().to_vec(),
        IpAddr::V6(x) => x.octets().to_vec(),
    };
    [ip(from.ip()), ip(to.ip()), from.port().to_be_bytes().to_vec(), to.port().to_be_bytes().to_vec()].concat()
}
