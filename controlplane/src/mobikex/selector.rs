//! SELECTOR sets (draft-mglt-ipsec-mm-mobikex sections 8 and 9): which
//! SAs the actions of an INFORMATIONAL request concern.
//!
//! ```text
//! N(SELECTOR)+ N(action)+ N(END_OF_SELECTOR)   the actions apply to the
//!                                              SAs matching any SELECTOR
//! N(action)                                    the default: the IKE SA and
//!                                              its child SAs (UPDATE, ADD,
//!                                              REMOVE), the IKE SA
//!                                              (ADDITIONAL_IP_ADDRESS)
//! ```
//!
//! An SA matches a SELECTOR when it matches every parameter of it, and a
//! set when it matches one of its SELECTORs. The responder reads the
//! payloads in order with the section 8 procedure (normative, NOTES.md):
//! the set is NULL, START (being built) or ESTABLISHED (an action used
//! it), and an ERROR flag. Where the text and the section 9 diagram part,
//! we follow the diagram: a payload that is neither a SELECTOR, an action
//! nor END_OF_SELECTOR while the set is START (no action has followed it)
//! is UNEXPECTED_PAYLOAD_AFTER_SELECTOR; after an action (ESTABLISHED) it
//! quietly ends the set (section 8, "any other Notify Payload ... set it
//! to its default value"). A message that ends with the set in START is
//! UNEXPECTED_PAYLOAD_AFTER_SELECTOR too: its SELECTORs select nothing.
//! An action while ERROR is set is not performed: UNACCEPTABLE_PARAMETER.

use std::net::IpAddr;

use super::param::{self, Param, ParamError, SelectorValue};
use crate::codepoints::{NotifyType, ProtocolId};
use crate::wire::Payload;

/// The actions of section 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// UPDATE_SA_ADDRESSES (6.6).
    Update,
    /// ADD_SA_ADDRESS (6.7).
    Add,
    /// REMOVE_SA_ADDRESS (6.8).
    Remove,
    /// ADDITIONAL_IP_ADDRESS (6.5; ADDITIONAL_IP6_ADDRESS's number).
    Additional,
}

impl ActionKind {
    pub fn of(t: NotifyType) -> Option<Self> {
        Some(match t {
            NotifyType::UpdateSaAddresses => ActionKind::Update,
            NotifyType::AddSaAddress => ActionKind::Add,
            NotifyType::RemoveSaAddress => ActionKind::Remove,
            NotifyType::AdditionalIp6Address => ActionKind::Additional,
            _ => return None,
        })
    }

    pub fn notify(self) -> NotifyType {
        match self {
            ActionKind::Update => NotifyType::UpdateSaAddresses,
            ActionKind::Add => NotifyType::AddSaAddress,
            ActionKind::Remove => NotifyType::RemoveSaAddress,
            ActionKind::Additional => NotifyType::AdditionalIp6Address,
        }
    }
}

/// One SELECTOR: every parameter must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub params: Vec<Param>,
}

/// What an action applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// No SELECTOR set: the action's default (section 8).
    Default,
    /// The SAs matching one of these.
    Set(Vec<Selector>),
}

/// What a selector is matched against: the IKE SA or one of its child SAs.
pub trait Candidate {
    fn is_ike_sa(&self) -> bool;
    /// An IKE SPI (8 octets) or an ESP SPI of either direction (4).
    fn has_spi(&self, spi: &[u8]) -> bool;
    /// An outer (routed header) address of either end.
    fn has_outer(&self, a: IpAddr) -> bool;
    /// An inner address its traffic selectors cover (tunnel mode).
    fn has_inner(&self, a: IpAddr) -> bool;
    /// (transport mode, UDP-encapsulated).
    fn mode(&self) -> (bool, bool);
}

impl Selector {
    pub fn matches(&self, c: &dyn Candidate) -> bool {
        self.params.iter().all(|p| match p {
            Param::Spi(s) => c.has_spi(s),
            Param::Ip(ip) if ip.inner => !c.is_ike_sa() && !c.mode().0 && c.has_inner(ip.addr),
            Param::Ip(ip) => c.has_outer(ip.addr),
            Param::IpsecProto(ProtocolId::Ike) => c.is_ike_sa(),
            Param::IpsecProto(ProtocolId::Esp) => !c.is_ike_sa(),
            Param::IpsecProto(_) => false,
            Param::IpsecMode(m) => !c.is_ike_sa() && m.matches(c.mode().0, c.mode().1),
            Param::SelectorValue(SelectorValue::IkeSaAndChildSa) => true,
            Param::SelectorValue(SelectorValue::AllIkeSa) => c.is_ike_sa(),
            Param::Id(_) | Param::Version(_) => true,
        })
    }
}

impl Selection {
    /// Whether the SA `c` is selected for an action of kind `k`.
    pub fn selects(&self, k: ActionKind, c: &dyn Candidate) -> bool {
        match self {
            Selection::Default => k != ActionKind::Additional || c.is_ike_sa(),
            Selection::Set(v) => v.iter().any(|s| s.matches(c)),
        }
    }
}

/// One action as read, with its selection and the ERROR flag of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    pub params: Result<Vec<Param>, ParamError>,
    pub selection: Selection,
    /// Section 8's ERROR: the set it belongs to was malformed.
    pub error: bool,
}

impl Action {
    /// The action's ID parameter, for its answer (section 10).
    pub fn id(&self) -> Option<u16> {
        self.params.as_ref().ok().and_then(|p| param::id_of(p).ok().flatten())
    }
}

/// What reading a request gives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Act(Action),
    /// An error notify to answer with, and the ID of the payload at fault.
    Refuse(NotifyType, Option<u16>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Null,
    Start,
    Established,
}

/// Reads the MOBIKE-X part of a request's payloads (section 8).
pub fn read(payloads: &[Payload]) -> Vec<Step> {
    let mut out = Vec::new();
    let mut state = State::Null;
    let mut set: Vec<Selector> = Vec::new();
    let mut error = false;
    for p in payloads {
        let n = if let Payload::Notify(n) = p { Some(n) } else { None };
        match n.map(|n| n.ty) {
            Some(NotifyType::Selector) => {
                if state == State::Established {
                    set.clear();
                    error = false;
                }
                state = State::Start;
                match selector_params(&n.map(|n| n.data.clone()).unwrap_or_default()) {
                    Ok(params) => set.push(Selector { params }),
                    Err((_, id)) => {
                        error = true;
                        out.push(Step::Refuse(NotifyType::UnacceptableParameter, id));
                    }
                }
            }
            Some(t) if ActionKind::of(t).is_some() => {
                let kind = ActionKind::of(t).unwrap_or(ActionKind::Update);
                let selection = match state {
                    State::Null => Selection::Default,
                    State::Start | State::Established => {
                        state = State::Established;
                        Selection::Set(set.clone())
                    }
                };
                let params = param::parse(&n.map(|n| n.data.clone()).unwrap_or_default());
                out.push(Step::Act(Action { kind, params, selection, error }));
            }
            Some(NotifyType::EndOfSelector) => {
                if state == State::Start {
                    out.push(Step::Refuse(NotifyType::UnexpectedPayloadAfterSelector, None));
                }
                state = State::Null;
                set.clear();
                error = false;
            }
            _ => {
                if state == State::Start {
                    out.push(Step::Refuse(NotifyType::UnexpectedPayloadAfterSelector, None));
                }
                state = State::Null;
                set.clear();
                error = false;
            }
        }
    }
    if state == State::Start {
        out.push(Step::Refuse(NotifyType::UnexpectedPayloadAfterSelector, None));
    }
    out
}

/// A SELECTOR's parameters: only those that describe SAs (6.3), one ID
/// at most. On error, the ID if one could be read.
fn selector_params(data: &[u8]) -> Result<Vec<Param>, (ParamError, Option<u16>)> {
    let params = param::parse(data).map_err(|e| (e, None))?;
    let id = param::id_of(&params).map_err(|e| (e, None))?;
    if params.iter().any(|p| matches!(p, Param::Version(_))) {
        return Err((ParamError::Misplaced("VERSION in a SELECTOR"), id));
    }
    Ok(params)
}

/// The payloads of a selector set, its actions and END_OF_SELECTOR, as an
/// initiator sends them (section 8, steps 1 to 4); with no selectors, the
/// actions alone (the default applies).
pub fn emit(selectors: &[Vec<Param>], actions: &[(ActionKind, Vec<Param>)]) -> Vec<Payload> {
    use crate::wire::Notify;
    let mut v: Vec<Payload> =
        selectors.iter().map(|s| Payload::Notify(Notify::new(NotifyType::Selector, param::emit(s)))).collect();
    v.extend(actions.iter().map(|(k, p)| Payload::Notify(Notify::new(k.notify(), param::emit(p)))));
    if !selectors.is_empty() {
        v.push(Payload::Notify(Notify::new(NotifyType::EndOfSelector, vec![])));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobikex::param::{IpParam, IpsecMode};
    use crate::wire::Notify;

    fn n(t: NotifyType, p: &[Param]) -> Payload {
        Payload::Notify(Notify::new(t, param::emit(p)))
    }

    fn sel(p: &[Param]) -> Payload {
        n(NotifyType::Selector, p)
    }

    fn spi(v: u32) -> Param {
        Param::Spi(v.to_be_bytes().to_vec())
    }

    struct Sa {
        ike: bool,
        spi: u32,
        outer: IpAddr,
        transport: bool,
    }

    impl Candidate for Sa {
        fn is_ike_sa(&self) -> bool {
            self.ike
        }
        fn has_spi(&self, s: &[u8]) -> bool {
            s == self.spi.to_be_bytes()
        }
        fn has_outer(&self, a: IpAddr) -> bool {
            a == self.outer
        }
        fn has_inner(&self, a: IpAddr) -> bool {
            a.is_ipv4() && a.to_string().starts_with("10.")
        }
        fn mode(&self) -> (bool, bool) {
            (self.transport, false)
        }
    }

    fn acts(steps: &[Step]) -> Vec<&Action> {
        steps.iter().filter_map(|s| if let Step::Act(a) = s { Some(a) } else { None }).collect()
    }

    /// Section 8: without SELECTORs an action takes the default.
    #[test]
    fn default_selection() {
        let s = read(&[n(NotifyType::UpdateSaAddresses, &[]), n(NotifyType::Cookie2, &[])]);
        assert_eq!(s.len(), 1);
        let a = acts(&s)[0];
        assert_eq!(a.selection, Selection::Default);
        let child = Sa { ike: false, spi: 1, outer: "192.0.2.1".parse().unwrap(), transport: false };
        let ike = Sa { ike: true, spi: 0, outer: "192.0.2.1".parse().unwrap(), transport: false };
        assert!(a.selection.selects(ActionKind::Update, &child));
        assert!(a.selection.selects(ActionKind::Update, &ike));
        // ADDITIONAL_IP_ADDRESS: the IKE SA only.
        assert!(!Selection::Default.selects(ActionKind::Additional, &child));
        assert!(Selection::Default.selects(ActionKind::Additional, &ike));
    }

    /// Section 8: a set is the OR of its SELECTORs, a SELECTOR the AND of
    /// its parameters; every action before END_OF_SELECTOR uses it.
    #[test]
    fn set_or_of_and() {
        let s = read(&[
            sel(&[spi(7), Param::IpsecMode(IpsecMode::Tunnel)]),
            sel(&[spi(9)]),
            n(NotifyType::AddSaAddress, &[Param::Id(1)]),
            n(NotifyType::RemoveSaAddress, &[Param::Id(2)]),
            n(NotifyType::EndOfSelector, &[]),
            n(NotifyType::UpdateSaAddresses, &[]),
        ]);
        let a = acts(&s);
        assert_eq!(a.len(), 3);
        let sa = |spi, transport| Sa { ike: false, spi, outer: "192.0.2.1".parse().unwrap(), transport };
        for x in &a[..2] {
            assert!(x.selection.selects(x.kind, &sa(7, false)));
            assert!(!x.selection.selects(x.kind, &sa(7, true)), "AND: the mode too");
            assert!(x.selection.selects(x.kind, &sa(9, true)), "OR: the second SELECTOR");
            assert!(!x.selection.selects(x.kind, &sa(8, false)));
        }
        assert_eq!((a[0].id(), a[1].id()), (Some(1), Some(2)));
        assert_eq!(a[2].selection, Selection::Default, "after END_OF_SELECTOR");
    }

    /// Section 8 step 2: a SELECTOR after an action starts a new set.
    #[test]
    fn new_set_after_action() {
        let s = read(&[
            sel(&[spi(1)]),
            n(NotifyType::AddSaAddress, &[]),
            sel(&[spi(2)]),
            n(NotifyType::AddSaAddress, &[]),
            n(NotifyType::EndOfSelector, &[]),
        ]);
        let a = acts(&s);
        assert_eq!(a[0].selection, Selection::Set(vec![Selector { params: vec![spi(1)] }]));
        assert_eq!(a[1].selection, Selection::Set(vec![Selector { params: vec![spi(2)] }]));
    }

    /// Section 8 step 4 and the section 9 diagram: something else after
    /// SELECTORs that no action used.
    #[test]
    fn unexpected_payload_after_selector() {
        let s = read(&[sel(&[spi(1)]), n(NotifyType::Cookie2, &[]), n(NotifyType::AddSaAddress, &[])]);
        assert_eq!(s[0], Step::Refuse(NotifyType::UnexpectedPayloadAfterSelector, None));
        assert_eq!(acts(&s)[0].selection, Selection::Default, "the set was cleared");
        let s = read(&[sel(&[spi(1)]), n(NotifyType::EndOfSelector, &[])]);
        assert_eq!(s, vec![Step::Refuse(NotifyType::UnexpectedPayloadAfterSelector, None)]);
        let s = read(&[sel(&[spi(1)])]);
        assert_eq!(s, vec![Step::Refuse(NotifyType::UnexpectedPayloadAfterSelector, None)], "message ends");
        // After an action, another payload just ends the set.
        let s = read(&[sel(&[spi(1)]), n(NotifyType::AddSaAddress, &[]), n(NotifyType::Cookie2, &[])]);
        assert_eq!(s.len(), 1);
    }

    /// Section 8 step 7 and section 9: a SELECTOR we cannot read is
    /// UNACCEPTABLE_PARAMETER, and the set's actions are flagged.
    #[test]
    fn bad_selector_sets_error() {
        let s = read(&[
            Payload::Notify(Notify::new(NotifyType::Selector, vec![9, 0, 0, 0])),
            n(NotifyType::AddSaAddress, &[]),
            n(NotifyType::EndOfSelector, &[]),
            n(NotifyType::AddSaAddress, &[]),
        ]);
        assert_eq!(s[0], Step::Refuse(NotifyType::UnacceptableParameter, None));
        let a = acts(&s);
        assert!(a[0].error);
        assert!(!a[1].error, "END_OF_SELECTOR clears ERROR");
        let s = read(&[sel(&[Param::Version(vec![])]), n(NotifyType::AddSaAddress, &[])]);
        assert!(matches!(s[0], Step::Refuse(NotifyType::UnacceptableParameter, _)));
        let s = read(&[sel(&[Param::Id(4), Param::Version(vec![crate::codepoints::MobikeVersion::MobikeX])])]);
        assert_eq!(s[0], Step::Refuse(NotifyType::UnacceptableParameter, Some(4)), "the ID names the payload");
    }

    #[test]
    fn ip_selectors_inner_and_outer() {
        let mut inner = IpParam::header("10.1.2.3".parse().unwrap());
        inner.header = false;
        inner.inner = true;
        let tunnel = Sa { ike: false, spi: 1, outer: "192.0.2.1".parse().unwrap(), transport: false };
        let transport =
            Sa { transport: true, ..Sa { ike: false, spi: 1, outer: "192.0.2.1".parse().unwrap(), transport: false } };
        let s = Selector { params: vec![Param::Ip(inner)] };
        assert!(s.matches(&tunnel));
        assert!(!s.matches(&transport), "a transport SA has no inner addresses");
        let s = Selector { params: vec![Param::Ip(IpParam::header("192.0.2.1".parse().unwrap()))] };
        assert!(s.matches(&tunnel) && s.matches(&transport));
        let s = Selector { params: vec![Param::IpsecProto(ProtocolId::Ike)] };
        assert!(!s.matches(&tunnel));
        let s = Selector { params: vec![Param::SelectorValue(SelectorValue::AllIkeSa)] };
        assert!(!s.matches(&tunnel));
    }

    #[test]
    fn emit_reads_back() {
        let p = emit(&[vec![spi(5)]], &[(ActionKind::Add, vec![Param::Id(3)])]);
        assert_eq!(p.len(), 3);
        let s = read(&p);
        assert_eq!(acts(&s)[0].selection, Selection::Set(vec![Selector { params: vec![spi(5)] }]));
        assert_eq!(emit(&[], &[(ActionKind::Update, vec![])]).len(), 1);
    }
}
