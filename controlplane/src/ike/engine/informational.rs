//! INFORMATIONAL (RFC 7296 1.4, 1.4.1, 2.4): deletes and liveness, both
//! roles; MPSA_PUT rides on it too (`mpsa`).
//!
//! ```text
//! Initiator                          Responder
//! HDR, SK { D(ESP, spi...) }  -->
//!                        <--  HDR, SK { D(ESP, our half) }     (1.4.1)
//! HDR, SK { D(IKE) }  -->
//!                        <--  HDR, SK { }                      (the IKE SA and its children go)
//! HDR, SK { }  -->                                             (liveness, 2.4)
//!                        <--  HDR, SK { }
//! ```

use std::time::Instant;

use super::payloads::notify;
use super::sa::{ChildState, Core, Established, Pending};
use super::{ChildGone, Engine};
use crate::codepoints::{ExchangeType, NotifyType, ProtocolId};
use crate::wire::{Delete, Payload};

impl Engine {
    /// A liveness check: an empty INFORMATIONAL request (RFC 7296 2.4).
    pub(super) fn start_liveness(&mut self, now: Instant, sa: &mut Core) -> bool {
        self.request(now, sa, ExchangeType::Informational, vec![], Pending::Liveness);
        true
    }

    /// Deletes the IKE SA (with its child SAs, 1.4.1).
    pub(super) fn start_delete_ike(&mut self, now: Instant, sa: &mut Core) -> bool {
        sa.deleting = true;
        let d = Payload::Delete(Delete { protocol: ProtocolId::Ike, spis: vec![] });
        self.request(now, sa, ExchangeType::Informational, vec![d], Pending::DeleteIke);
        true
    }

    /// Deletes one child SA (ours: its inbound SPI).
    pub(super) fn start_delete_child(&mut self, now: Instant, sa: &mut Core, est: &mut Established, spi: u32) -> bool {
        let Some(c) = est.child_mut(spi) else { return false };
        c.state = ChildState::Deleting;
        let d = Payload::Delete(Delete { protocol: ProtocolId::Esp, spis: vec![spi] });
        self.request(now, sa, ExchangeType::Informational, vec![d], Pending::DeleteChildren(vec![spi]));
        true
    }

    /// The answer to our child SA delete: they are gone.
    pub(super) fn delete_children_response(&mut self, sa: &Core, est: &mut Established, spis: Vec<u32>) {
        for s in spis {
            if let Some(i) = est.children.iter().position(|c| c.spi_in == s) {
                let c = est.children.remove(i);
                self.uninstall_child(sa, &c, ChildGone::DeletedByUs);
            }
        }
    }

    /// Responder: INFORMATIONAL (delete, liveness, notifies).
    pub(super) fn informational_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        id: u32,
    ) {
        let ex = ExchangeType::Informational;
        if let Some(n) = notify(p, NotifyType::Redirect) {
            let data = n.data.clone();
            return self.redirect_request(now, sa, est, &data, id);
        }
        if let Some(n) = notify(p, NotifyType::MpsaPut) {
            let n = n.clone();
            self.mpsa_put_request(now, sa, est, &n, id);
            return;
        }
        let clone = match self.clone_informational(sa.conn, est, p) {
            Ok(v) => v,
            Err(e) => {
                self.stats.clone_refused += 1;
                return self.refuse(sa, ex, id, &e);
            }
        };
        let mut out = match self.mobike_request(now, sa, est, p) {
            Ok(v) => v,
            Err(e) => return self.refuse(sa, ex, id, &e),
        };
        out.extend(clone);
        let mut delete_ike = false;
        let mut ours = Vec::new();
        for d in p.iter().filter_map(|x| if let Payload::Delete(d) = x { Some(d) } else { None }) {
            match d.protocol {
                ProtocolId::Ike => delete_ike = true,
                ProtocolId::Esp => {
                    for s in &d.spis {
                        // The SPI is the peer's inbound one: our outbound.
                        if let Some(i) = est.children.iter().position(|c| c.spi_out == *s) {
                            let c = est.children.remove(i);
                            // RFC 7296 1.4.1: answer with our half unless we
                            // are deleting it ourselves.
                            if c.state != ChildState::Deleting {
                                ours.push(c.spi_in);
                            }
                            self.uninstall_child(sa, &c, ChildGone::DeletedByPeer);
                        }
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            self.respond(sa, ex, id, vec![]);
            sa.deleting = true;
            sa.w.in_flight = None;
            sa.w.tasks.clear();
            return;
        }
        if !ours.is_empty() {
            out.push(Payload::Delete(Delete { protocol: ProtocolId::Esp, spis: ours }));
        }
        self.respond(sa, ex, id, out);
    }
}
