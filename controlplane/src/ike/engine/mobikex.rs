//! MOBIKE-X (draft-mglt-ipsec-mm-mobikex; NOTES.md "MOBIKE-X") on an IKE
//! SA whose IKE_AUTH agreed on version 2 (`mobike::mobike_auth_answer`).
//!
//! ```text
//! Initiator                                         Responder
//! INFORMATIONAL  HDR, SK { [N(SELECTOR)+], N(action), [N(END_OF_SELECTOR)] }  -->
//!                  <--  HDR, SK { [N(error, ID)], [N(CLOSING_SA, ID)] }
//! action: UPDATE_SA_ADDRESSES (7.4: OLD and NEW IP parameters, CHECK),
//!         ADD_SA_ADDRESS / REMOVE_SA_ADDRESS (7.6: one address more or
//!         less on the selected child SAs), ADDITIONAL_IP_ADDRESS (7.2:
//!         alternate addresses with preference and lifetime)
//! ```
//!
//! The responder reads the request with the section 8 procedure
//! (`crate::mobikex::selector`); each action is checked whole before
//! anything changes, and a refused one changes nothing: its error notify
//! carries the action's ID parameter (section 10). Only the IKE SA's
//! initiator adds, removes or updates (5.7); ADDITIONAL_IP_ADDRESS may
//! come from either side, as in RFC 4555 3.4. ADD and REMOVE concern the
//! child SAs only (7.6); an SA whose last address is removed is closed
//! (6.8: CLOSING_SA, then deleted). Inner (I) addresses are checked
//! against the child SA's traffic selectors (DOES_NOT_FIT_SPD) and change
//! nothing else: the selectors already name them.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::dataplane::child_paths;
use super::sa::{Alternate, Child, ChildState, Core, Established, MobikexOp, Pending, Task};
use super::{Engine, Error, Event};
use crate::codepoints::{ExchangeType, NotifyType};
use crate::ike::ts::covers;
use crate::mobikex::param::{self, AddressClass};
use crate::mobikex::{selector, Action, ActionKind, Candidate, IpParam, Param, Step};
use crate::wire::{Notify, Payload};

/// An operator's MOBIKE-X request (`Engine::change_addresses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressChange {
    pub kind: ActionKind,
    /// Our address added, removed, or (UPDATE) the new one.
    pub addr: IpAddr,
    /// UPDATE: our address replaced.
    pub old: Option<IpAddr>,
    /// The child SAs by config name; none: the default selection.
    pub children: Vec<String>,
    /// Only ask whether the peer would accept it (5.3).
    pub check: bool,
}

impl AddressChange {
    pub fn new(kind: ActionKind, addr: IpAddr) -> Self {
        AddressChange { kind, addr, old: None, children: Vec::new(), check: false }
    }
}

/// The IKE SA as a SELECTOR sees it.
struct IkeView<'a>(&'a Core);

impl Candidate for IkeView<'_> {
    fn is_ike_sa(&self) -> bool {
        true
    }
    fn has_spi(&self, s: &[u8]) -> bool {
        s == self.0.spi_i.to_be_bytes() || s == self.0.spi_r.to_be_bytes()
    }
    fn has_outer(&self, a: IpAddr) -> bool {
        a == self.0.local.ip() || a == self.0.remote.ip()
    }
    fn has_inner(&self, _: IpAddr) -> bool {
        false
    }
    fn mode(&self) -> (bool, bool) {
        (false, self.0.nat)
    }
}

/// A child SA as a SELECTOR sees it.
struct ChildView<'a>(&'a Core, &'a Child);

impl Candidate for ChildView<'_> {
    fn is_ike_sa(&self) -> bool {
        false
    }
    fn has_spi(&self, s: &[u8]) -> bool {
        s == self.1.spi_in.to_be_bytes() || s == self.1.spi_out.to_be_bytes()
    }
    fn has_outer(&self, a: IpAddr) -> bool {
        child_paths(self.0, self.1).iter().any(|&(l, r)| l == a || r == a)
    }
    fn has_inner(&self, a: IpAddr) -> bool {
        // A transport-mode SA has no inner addresses (its selectors are
        // its outer ones).
        !self.1.transport && (covers(&self.1.ts_local, a) || covers(&self.1.ts_remote, a))
    }
    fn mode(&self) -> (bool, bool) {
        (self.1.transport, self.0.nat)
    }
}

/// A refused action: the notify it is answered with, and why (for the log).
#[derive(Debug)]
struct Refusal(NotifyType, String);

fn refuse<T>(n: NotifyType, why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(n, why.into()))
}

/// A notify of type `ty` carrying `id` as its ID parameter (section 10).
fn with_id(ty: NotifyType, id: Option<u16>) -> Payload {
    Payload::Notify(Notify::new(ty, id.map(|i| param::emit(&[Param::Id(i)])).unwrap_or_default()))
}

/// Where an IP parameter points (11.4.3): the routed header (H) or an
/// inner address (I), exactly one.
fn inner(p: &IpParam) -> Result<bool, Refusal> {
    match (p.header, p.inner) {
        (true, false) => Ok(false),
        (false, true) => Ok(true),
        _ => refuse(NotifyType::UnacceptableParameter, "an IP parameter needs one of H and I (11.4.3)"),
    }
}

/// Whether a peer may use `a` at all.
fn usable(a: IpAddr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_loopback() || a == IpAddr::from([255, 255, 255, 255]))
}

impl Engine {
    /// Responder (or either side, for ADDITIONAL_IP_ADDRESS): the MOBIKE-X
    /// actions of request `p`, came in on `(local, remote)`. Returns what
    /// the response carries for them.
    pub(super) fn mobikex_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        (local, remote): (SocketAddr, SocketAddr),
        nat: Option<(bool, bool)>,
    ) -> Vec<Payload> {
        let mut out = Vec::new();
        let mut alternates_cleared = false;
        for step in selector::read(p) {
            let (ty, id, why) = match step {
                Step::Refuse(ty, id) => (ty, id, "malformed SELECTOR set (section 8)".to_string()),
                Step::Act(a) => {
                    let id = a.id();
                    match self.mobikex_action(now, sa, est, &a, (local, remote), nat, p, &mut alternates_cleared) {
                        Ok(extra) => {
                            out.extend(extra);
                            continue;
                        }
                        Err(Refusal(ty, why)) => (ty, id, why),
                    }
                }
            };
            self.stats.mobike_refused += 1;
            let conn = self.conns[sa.conn].name.clone();
            self.event(Event::MobikeRefused { conn, notify: ty, id, why });
            out.push(with_id(ty, id));
        }
        if let Some(m) = est.mobike.as_mut() {
            m.alternates.sort_by_key(|a| std::cmp::Reverse(a.preference));
            if alternates_cleared {
                m.peer_addresses = m.alternates.iter().map(|a| a.addr).collect();
            }
        }
        out
    }

    /// One action, checked whole, then done (unless it only CHECKs).
    #[allow(clippy::too_many_arguments)]
    fn mobikex_action(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        a: &Action,
        (local, remote): (SocketAddr, SocketAddr),
        nat: Option<(bool, bool)>,
        p: &[Payload],
        alternates_cleared: &mut bool,
    ) -> Result<Vec<Payload>, Refusal> {
        let un = NotifyType::UnacceptableParameter;
        if a.error {
            return refuse(un, "its SELECTOR set could not be read (section 9)");
        }
        let params = a.params.clone().map_err(|e| Refusal(un, e.to_string()))?;
        let id = param::id_of(&params).map_err(|e| Refusal(un, e.to_string()))?;
        if params.iter().any(|x| !matches!(x, Param::Ip(_) | Param::Id(_))) {
            return refuse(un, "an action takes IP and ID parameters only (6.5-6.8)");
        }
        let ips: Vec<IpParam> =
            params.iter().filter_map(|x| if let Param::Ip(i) = x { Some(*i) } else { None }).collect();
        if a.kind != ActionKind::Additional && sa.mobike_initiator {
            return refuse(
                NotifyType::UnacceptableAddresses,
                "only the IKE SA's initiator changes its addresses (MOBIKE-X 5.7, RFC 4555 3.5)",
            );
        }
        let selected: Vec<usize> = (0..est.children.len())
            .filter(|&i| est.children[i].state != ChildState::Deleting)
            .filter(|&i| a.selection.selects(a.kind, &ChildView(sa, &est.children[i])))
            .collect();
        let ike = a.selection.selects(a.kind, &IkeView(sa));
        match a.kind {
            ActionKind::Additional => {
                let [ip] = ips.as_slice() else {
                    return refuse(un, "ADDITIONAL_IP_ADDRESS carries one IP parameter (6.5)");
                };
                if !usable(ip.addr) {
                    return refuse(NotifyType::UnacceptableAddresses, format!("{} is not a unicast address", ip.addr));
                }
                if !ike && selected.is_empty() {
                    return refuse(NotifyType::UnmatchedSelectorSet, "no SA matches");
                }
                if ip.check {
                    return Ok(Vec::new());
                }
                if !*alternates_cleared {
                    // 7.2: each message carries the whole list.
                    *alternates_cleared = true;
                    if ike {
                        if let Some(m) = est.mobike.as_mut() {
                            m.alternates.clear();
                        }
                    }
                    selected.iter().for_each(|&i| est.children[i].alternates.clear());
                }
                if let (true, Some(m)) = (ike, est.mobike.as_mut()) {
                    let mh = ip.multihoming.unwrap_or(crate::mobikex::Multihoming {
                        preference: 0,
                        class: AddressClass::None,
                        reachability: crate::mobikex::param::Reachability::NoInfo,
                        start_time: 0,
                        lifetime: 0,
                    });
                    m.alternates.push(Alternate {
                        addr: ip.addr,
                        preference: mh.preference,
                        class: format!("{:?}", mh.class),
                        lifetime_secs: mh.lifetime,
                        start_secs: mh.start_time,
                        announced: Some(now),
                    });
                }
                selected.iter().for_each(|&i| est.children[i].alternates.push(ip.addr));
                Ok(Vec::new())
            }
            ActionKind::Update => {
                let (old, new, check, is_inner) = match ips.as_slice() {
                    [] => (None, remote.ip(), false, false),
                    [x] if x.old && !x.new => (Some(x.addr), remote.ip(), x.check, inner(x)?),
                    [x] if x.new && !x.old => (None, x.addr, x.check, inner(x)?),
                    [x, y] if x.old != y.old && x.new != y.new && x.old != x.new => {
                        let (o, n) = if x.old { (x, y) } else { (y, x) };
                        if (o.header, o.inner, o.check) != (n.header, n.inner, n.check) {
                            return refuse(un, "OLD and NEW differ in H, I or CHECK (7.4)");
                        }
                        (Some(o.addr), n.addr, o.check, inner(o)?)
                    }
                    _ => return refuse(un, "UPDATE takes no IP parameter, one OLD, one NEW or one of each (7.4)"),
                };
                if is_inner {
                    return self.inner_fits(est, &selected, new);
                }
                self.check_new_peer_address(sa, est, new, p, remote, local)?;
                self.update_plan_apply(now, sa, est, (ike, &selected), old, new, check, (local, remote), nat)
            }
            ActionKind::Add | ActionKind::Remove => {
                let (addr, check, is_inner) = match ips.as_slice() {
                    [] => (remote.ip(), false, false),
                    [x] => (x.addr, x.check, inner(x)?),
                    _ => return refuse(un, "ADD_SA_ADDRESS and REMOVE_SA_ADDRESS carry one IP parameter (7.6)"),
                };
                if is_inner {
                    return self.inner_fits(est, &selected, addr);
                }
                if a.kind == ActionKind::Add {
                    self.check_new_peer_address(sa, est, addr, p, remote, local)?;
                    self.add_address(sa, est, &selected, addr, check)
                } else {
                    self.remove_address(sa, est, &selected, addr, check, id)
                }
            }
        }
    }

    /// An inner address: it must fall within the selected child SAs'
    /// selectors (7.4: else DOES_NOT_FIT_SPD); nothing changes.
    fn inner_fits(&self, est: &Established, selected: &[usize], a: IpAddr) -> Result<Vec<Payload>, Refusal> {
        if selected.is_empty() {
            return refuse(NotifyType::UnmatchedSelectorSet, "no child SA matches");
        }
        match selected.iter().find(|&&i| !covers(&est.children[i].ts_remote, a)) {
            Some(&i) => refuse(
                NotifyType::DoesNotFitSpd,
                format!("{a} is outside child SA {:08x}'s selectors", est.children[i].spi_in),
            ),
            None => Ok(Vec::new()),
        }
    }

    /// A new peer address: our policy (UNACCEPTABLE_ADDRESSES) and the
    /// peer's NO_NATS_ALLOWED (RFC 4555 3.9: UNEXPECTED_NAT_DETECTED).
    fn check_new_peer_address(
        &self,
        sa: &Core,
        est: &Established,
        a: IpAddr,
        p: &[Payload],
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Result<(), Refusal> {
        let bad = |why: String| Refusal(NotifyType::UnacceptableAddresses, why);
        if !usable(a) {
            return Err(bad(format!("{a} is not a unicast address")));
        }
        if a.is_ipv4() != sa.remote.is_ipv4() {
            return Err(bad(format!("{a} is not of the IKE SA's address family")));
        }
        self.check_peer_address(sa, est, a).map_err(|e| bad(e.to_string()))?;
        if let Some(n) = super::payloads::notify(p, NotifyType::NoNatsAllowed) {
            if n.data != super::mobike::no_nats_data(remote, local) {
                return Err(Refusal(NotifyType::UnexpectedNatDetected, "a NAT where the peer allows none".into()));
            }
        }
        Ok(())
    }

    /// UPDATE (7.4): OLD (None: every address of the peer) becomes NEW on
    /// the selected SAs.
    #[allow(clippy::too_many_arguments)]
    fn update_plan_apply(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        (ike, selected): (bool, &[usize]),
        old: Option<IpAddr>,
        new: IpAddr,
        check: bool,
        (local, remote): (SocketAddr, SocketAddr),
        nat: Option<(bool, bool)>,
    ) -> Result<Vec<Payload>, Refusal> {
        let ike_moves = ike && old.is_none_or(|o| o == sa.remote.ip());
        let mut plan: Vec<(usize, Vec<(IpAddr, IpAddr)>)> = Vec::new();
        for &i in selected {
            let paths = child_paths(sa, &est.children[i]);
            if old.is_some_and(|o| !paths.iter().any(|p| p.1 == o)) {
                continue;
            }
            let mut next: Vec<(IpAddr, IpAddr)> = Vec::new();
            for (l, r) in paths {
                let r = if old.is_none_or(|o| o == r) { new } else { r };
                if !next.contains(&(l, r)) {
                    next.push((l, r));
                }
            }
            plan.push((i, next));
        }
        if !ike_moves && plan.is_empty() {
            return refuse(NotifyType::UnmatchedSelectorSet, "no selected SA has that address");
        }
        // Transport mode: the new address becomes the SA's selector, which
        // our policy for it must allow (MOBIKE-X 7.3: else DOES_NOT_FIT_SPD,
        // nothing changed).
        for (i, _) in &plan {
            let c = &est.children[*i];
            let cfg = self.conns[sa.conn].children.get(c.cfg);
            if c.transport && cfg.is_some_and(|k| !covers(&k.remote_ts, new)) {
                return refuse(
                    NotifyType::DoesNotFitSpd,
                    format!("transport-mode child SA {:08x}: {new} is outside its remote_ts", c.spi_in),
                );
            }
        }
        if check {
            return Ok(Vec::new());
        }
        let from = (sa.local, sa.remote);
        if ike_moves {
            // Children that stay where they are stop following the IKE SA.
            for (i, c) in est.children.iter_mut().enumerate() {
                if c.paths.is_empty() && !plan.iter().any(|(j, _)| *j == i) {
                    c.paths = vec![(from.0.ip(), from.1.ip())];
                }
            }
            sa.local = local;
            sa.remote = if new == remote.ip() { remote } else { SocketAddr::new(new, sa.remote.port()) };
            if let Some((peer_nat, we_nat)) = nat {
                sa.nat = peer_nat || we_nat;
                sa.we_behind_nat = we_nat;
            }
            if sa.we_behind_nat && sa.keepalive_at.is_none() {
                sa.keepalive_at = Some(now + self.settings.keepalive);
            }
        }
        for (i, paths) in plan {
            let follows = ike_moves && paths == [(sa.local.ip(), sa.remote.ip())];
            est.children[i].paths = if follows { Vec::new() } else { paths };
        }
        if ike_moves {
            self.announce_move(sa, est, from, super::MoveReason::PeerUpdate);
        } else {
            self.paths_changed(sa, est, selected);
        }
        Ok(Vec::new())
    }

    /// ADD_SA_ADDRESS (6.7, 7.6): the peer's `addr` is one more path of
    /// each selected child SA, after those it has.
    fn add_address(
        &mut self,
        sa: &Core,
        est: &mut Established,
        selected: &[usize],
        addr: IpAddr,
        check: bool,
    ) -> Result<Vec<Payload>, Refusal> {
        if selected.is_empty() {
            return refuse(NotifyType::UnmatchedSelectorSet, "no child SA matches (ADD concerns child SAs, 7.6)");
        }
        // A transport-mode SA's addresses are its selectors: one pair, the
        // packets' own; a second would not fit its SPD entry.
        if let Some(&i) = selected.iter().find(|&&i| est.children[i].transport) {
            return refuse(
                NotifyType::DoesNotFitSpd,
                format!(
                    "child SA {:08x} is in transport mode: its addresses are its selectors",
                    est.children[i].spi_in
                ),
            );
        }
        if check {
            return Ok(Vec::new());
        }
        for &i in selected {
            let mut paths = child_paths(sa, &est.children[i]);
            let ours = paths[0].0;
            if !paths.iter().any(|p| p.1 == addr) {
                paths.push((ours, addr));
            }
            est.children[i].paths = paths;
        }
        self.paths_changed(sa, est, selected);
        Ok(Vec::new())
    }

    /// REMOVE_SA_ADDRESS (6.8, 7.6): the peer's `addr` is no longer a path
    /// of the selected child SAs; one left without any is closed
    /// (CLOSING_SA, then an INFORMATIONAL delete).
    fn remove_address(
        &mut self,
        sa: &mut Core,
        est: &mut Established,
        selected: &[usize],
        addr: IpAddr,
        check: bool,
        id: Option<u16>,
    ) -> Result<Vec<Payload>, Refusal> {
        let having: Vec<usize> = selected
            .iter()
            .copied()
            .filter(|&i| child_paths(sa, &est.children[i]).iter().any(|p| p.1 == addr))
            .collect();
        if having.is_empty() {
            return refuse(NotifyType::UnmatchedSelectorSet, format!("no selected child SA has {addr}"));
        }
        let mut out = Vec::new();
        let mut kept = Vec::new();
        for &i in &having {
            let paths: Vec<_> = child_paths(sa, &est.children[i]).into_iter().filter(|p| p.1 != addr).collect();
            if paths.is_empty() {
                out.push(with_id(NotifyType::ClosingSa, id));
                if !check {
                    let spi = est.children[i].spi_in;
                    sa.w.tasks.push_back(Task::DeleteChild(spi));
                    self.touched.push(sa.our_spi());
                }
            } else if !check {
                est.children[i].paths = paths;
                kept.push(i);
            }
        }
        self.paths_changed(sa, est, &kept);
        Ok(out)
    }

    /// The dataplane and the log learn the new paths of these child SAs.
    fn paths_changed(&mut self, sa: &Core, est: &mut Established, which: &[usize]) {
        for &i in which {
            let c = &est.children[i];
            self.send_paths(sa, c);
            let conn = self.conns[sa.conn].name.clone();
            self.event(Event::PathsChanged { conn, spi_in: c.spi_in, paths: child_paths(sa, c) });
        }
        self.move_transport_children(sa, est);
    }

    /// Initiator: a MOBIKE-X request of ours (`Task::Mobikex`): SELECTORs
    /// naming the child SAs by SPI (none: the default), the action with
    /// its IP parameter and an ID, END_OF_SELECTOR (section 8).
    pub(super) fn start_mobikex(&mut self, now: Instant, sa: &mut Core, op: MobikexOp) -> bool {
        let selectors: Vec<Vec<Param>> =
            op.children.iter().map(|s| vec![Param::Spi(s.to_be_bytes().to_vec())]).collect();
        let mut ip = IpParam::header(op.addr);
        ip.check = op.check;
        let mut params = Vec::new();
        if let Some(o) = op.old {
            let mut old = ip;
            old.addr = o;
            old.old = true;
            ip.new = true;
            params.push(Param::Ip(old));
        }
        params.push(Param::Ip(ip));
        params.push(Param::Id((sa.w.next_request & 0xffff) as u16));
        let p = selector::emit(&selectors, &[(op.kind, params)]);
        self.request(now, sa, ExchangeType::Informational, p, Pending::Mobikex(op));
        true
    }

    /// Initiator: the answer to our MOBIKE-X request. Refused: nothing
    /// changes. Accepted: ADD and REMOVE change our own paths of the
    /// selected child SAs the same way.
    pub(super) fn mobikex_response(&mut self, sa: &Core, est: &mut Established, p: &[Payload], op: MobikexOp) {
        let conn = self.conns[sa.conn].name.clone();
        if let Some(e) = Error::refusal(p) {
            self.failed(sa.conn, e);
            return;
        }
        if op.check {
            self.event(Event::Checked { conn, action: op.kind, addr: op.addr });
            return;
        }
        let which: Vec<usize> = (0..est.children.len())
            .filter(|&i| op.children.is_empty() || op.children.contains(&est.children[i].spi_in))
            .filter(|&i| est.children[i].state != ChildState::Deleting)
            .collect();
        let mut changed = Vec::new();
        for i in which {
            let mut paths = child_paths(sa, &est.children[i]);
            match op.kind {
                ActionKind::Add if !paths.iter().any(|x| x.0 == op.addr) => paths.push((op.addr, paths[0].1)),
                ActionKind::Remove => paths.retain(|x| x.0 != op.addr),
                _ => continue,
            }
            // None left: the peer closes the SA (CLOSING_SA, 6.8).
            if !paths.is_empty() {
                est.children[i].paths = paths;
                changed.push(i);
            }
        }
        self.paths_changed(sa, est, &changed);
    }

    /// The operator's MOBIKE-X request on connection `name`'s IKE SAs (ours
    /// as initiator, with MOBIKE-X): add or remove our address `addr` on
    /// the child SAs named (none: all), or, with `check`, only ask whether
    /// the peer would accept it. UPDATE (`old` -> `addr`) is `move_to`
    /// unless checked.
    pub fn change_addresses(&mut self, now: Instant, name: &str, req: &AddressChange) -> Result<usize, Error> {
        let AddressChange { kind, addr, old, children, check } = req.clone();
        let ci = self.conn_index(name)?;
        for c in &children {
            if !self.conns[ci].children.iter().any(|k| &k.name == c) {
                return Err(Error::NoChild { conn: name.into(), child: c.clone() });
            }
        }
        let spis: Vec<u64> = self
            .established_of(ci)
            .into_iter()
            .filter(|s| {
                self.sa(s).is_some_and(|sa| {
                    sa.core.mobike_initiator
                        && sa
                            .established()
                            .and_then(|e| e.mobike.as_ref())
                            .is_some_and(|m| m.version == crate::mobikex::Version::MobikeX)
                })
            })
            .collect();
        if spis.is_empty() {
            return Err(Error::CannotMove(name.into()));
        }
        let mut ops = Vec::new();
        for s in spis {
            let kids: Vec<u32> = self.sas[&s]
                .children()
                .iter()
                .filter(|c| c.state == ChildState::Installed)
                .filter(|c| self.conns[ci].children.get(c.cfg).is_some_and(|k| children.contains(&k.name)))
                .map(|c| c.spi_in)
                .collect();
            // Named children none of which is up: nothing to select.
            if children.is_empty() || !kids.is_empty() {
                ops.push((s, MobikexOp { kind, addr, old, children: kids, check }));
            }
        }
        if ops.is_empty() {
            return Err(Error::NoChild { conn: name.into(), child: children.join(",") });
        }
        let n = ops.len();
        for (s, op) in ops {
            self.queue(now, s, Task::Mobikex(op));
        }
        self.reschedule();
        Ok(n)
    }
}
