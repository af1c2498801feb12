//! MOBIKE version negotiation (draft-mglt-ipsec-mm-mobikex 6.1, 6.2,
//! 7.1): MOBIKE_SUPPORTED without data is MOBIKE (RFC 4555, version 1);
//! with VERSION parameters the initiator offers versions, and the
//! responder answers MOBIKE_SUPPORTED with the one it chose, or
//! MOBIKE_UNSUPPORTED_VERSION with the ones it has (NONE: no MOBIKE at
//! all). MOBIKE_UNSUPPORTED_VERSION(NONE) later, in an INFORMATIONAL,
//! turns MOBIKE off on the IKE SA (7.1.2).

use super::param::{self, Param};
use crate::codepoints::{MobikeVersion, NotifyType};
use crate::wire::Notify;

/// What a connection offers and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offer {
    /// Neither.
    Off,
    /// RFC 4555 only: MOBIKE_SUPPORTED without data.
    Mobike,
    /// MOBIKE-X preferred, MOBIKE accepted (VERSION 2, 1).
    #[default]
    MobikeX,
}

/// The version in use on an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Version {
    Mobike,
    MobikeX,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::Mobike => "MOBIKE",
            Version::MobikeX => "MOBIKE-X",
        }
    }
}

impl Offer {
    /// The versions we take, preferred first.
    fn versions(self) -> Vec<MobikeVersion> {
        match self {
            Offer::Off => vec![],
            Offer::Mobike => vec![MobikeVersion::Mobike],
            Offer::MobikeX => vec![MobikeVersion::MobikeX, MobikeVersion::Mobike],
        }
    }

    /// The initiator's MOBIKE_SUPPORTED (6.1; 7.1.1: SHOULD be critical,
    /// which changes nothing for a peer that knows Notify payloads).
    pub fn supported(self) -> Option<Notify> {
        match self {
            Offer::Off => None,
            Offer::Mobike => Some(Notify::new(NotifyType::MobikeSupported, vec![])),
            Offer::MobikeX => {
                Some(Notify::new(NotifyType::MobikeSupported, param::emit(&[Param::Version(self.versions())])))
            }
        }
    }

    /// Responder: the answer to the initiator's MOBIKE_SUPPORTED `n`, and
    /// the version agreed (7.1.1). None when nothing is to be said (we do
    /// not offer MOBIKE).
    pub fn answer(self, n: &Notify) -> Option<(Notify, Option<Version>)> {
        if self == Offer::Off {
            return None;
        }
        if n.data.is_empty() {
            // A MOBIKE-only initiator: MOBIKE.
            return Some((Notify::new(NotifyType::MobikeSupported, vec![]), Some(Version::Mobike)));
        }
        let offered: Vec<MobikeVersion> = param::parse(&n.data)
            .map(|ps| ps.into_iter().flat_map(|p| if let Param::Version(v) = p { v } else { vec![] }).collect())
            .unwrap_or_default();
        let ours = self.versions();
        match ours.iter().find(|v| offered.contains(v)) {
            Some(&v) => {
                let n = Notify::new(NotifyType::MobikeSupported, param::emit(&[Param::Version(vec![v])]));
                Some((n, Some(if v == MobikeVersion::MobikeX { Version::MobikeX } else { Version::Mobike })))
            }
            None => {
                // 7.1.1: not one of ours offered: say which we have.
                let n = Notify::new(NotifyType::MobikeUnsupportedVersion, param::emit(&[Param::Version(ours)]));
                Some((n, None))
            }
        }
    }

    /// Initiator: the version the responder's IKE_AUTH answer agrees to,
    /// from its MOBIKE_SUPPORTED (None: MOBIKE is off).
    pub fn outcome(self, answer: Option<&Notify>) -> Option<Version> {
        let n = answer?;
        if self == Offer::Off || n.ty != NotifyType::MobikeSupported {
            return None;
        }
        if n.data.is_empty() {
            return Some(Version::Mobike);
        }
        let chosen: Vec<MobikeVersion> = param::parse(&n.data)
            .ok()?
            .into_iter()
            .flat_map(|p| if let Param::Version(v) = p { v } else { vec![] })
            .collect();
        // Exactly one, and one we offered.
        match chosen.as_slice() {
            [v] if self.versions().contains(v) => {
                Some(if *v == MobikeVersion::MobikeX { Version::MobikeX } else { Version::Mobike })
            }
            _ => None,
        }
    }
}

/// MOBIKE_UNSUPPORTED_VERSION(NONE): MOBIKE is off from now on (7.1.2).
pub fn cancel() -> Notify {
    Notify::new(NotifyType::MobikeUnsupportedVersion, param::emit(&[Param::Version(vec![MobikeVersion::None])]))
}

/// Whether `n` is MOBIKE_UNSUPPORTED_VERSION(NONE).
pub fn is_cancel(n: &Notify) -> bool {
    n.ty == NotifyType::MobikeUnsupportedVersion
        && param::parse(&n.data).is_ok_and(|ps| ps.contains(&Param::Version(vec![MobikeVersion::None])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6.1: MOBIKE_SUPPORTED without versions is MOBIKE, version 1.
    #[test]
    fn mobike_only_peer_gets_mobike() {
        let their = Notify::new(NotifyType::MobikeSupported, vec![]);
        let (ans, v) = Offer::MobikeX.answer(&their).unwrap();
        assert_eq!(v, Some(Version::Mobike));
        assert!(ans.data.is_empty(), "answered in MOBIKE's words");
        assert_eq!(Offer::MobikeX.outcome(Some(&ans)), Some(Version::Mobike));
    }

    /// 7.1.1: a responder with MOBIKE-X picks version 2 when offered.
    #[test]
    fn both_mobikex() {
        let offer = Offer::MobikeX.supported().unwrap();
        assert_eq!(offer.data, [1, 2, 2, 1]);
        let (ans, v) = Offer::MobikeX.answer(&offer).unwrap();
        assert_eq!(v, Some(Version::MobikeX));
        assert_eq!(ans.data, [1, 1, 2, 0]);
        assert_eq!(Offer::MobikeX.outcome(Some(&ans)), Some(Version::MobikeX));
        // A MOBIKE-only responder of ours answers with version 1.
        let (ans, v) = Offer::Mobike.answer(&offer).unwrap();
        assert_eq!(v, Some(Version::Mobike));
        assert_eq!(Offer::MobikeX.outcome(Some(&ans)), Some(Version::Mobike));
    }

    /// 7.1.1: none of our versions offered: MOBIKE_UNSUPPORTED_VERSION
    /// with ours, and MOBIKE stays off.
    #[test]
    fn unsupported_version() {
        let offer = Notify::new(NotifyType::MobikeSupported, vec![1, 1, 7, 0]);
        let (ans, v) = Offer::MobikeX.answer(&offer).unwrap();
        assert_eq!(v, None);
        assert_eq!(ans.ty, NotifyType::MobikeUnsupportedVersion);
        assert_eq!(ans.data, [1, 2, 2, 1]);
        assert_eq!(Offer::MobikeX.outcome(Some(&ans)), None);
        // Malformed versions offer nothing we take.
        let (ans, _) = Offer::MobikeX.answer(&Notify::new(NotifyType::MobikeSupported, vec![9])).unwrap();
        assert_eq!(ans.ty, NotifyType::MobikeUnsupportedVersion);
    }

    #[test]
    fn off_says_nothing() {
        assert!(Offer::Off.supported().is_none());
        assert!(Offer::Off.answer(&Notify::new(NotifyType::MobikeSupported, vec![])).is_none());
    }

    /// The initiator takes only one version it offered.
    #[test]
    fn outcome_checks_the_choice() {
        let two = Notify::new(NotifyType::MobikeSupported, vec![1, 2, 2, 1]);
        assert_eq!(Offer::MobikeX.outcome(Some(&two)), None);
        let x = Notify::new(NotifyType::MobikeSupported, vec![1, 1, 2, 0]);
        assert_eq!(Offer::Mobike.outcome(Some(&x)), None, "we did not offer 2");
        assert_eq!(Offer::MobikeX.outcome(None), None);
    }

    /// 7.1.2: NONE cancels.
    #[test]
    fn cancel_round_trip() {
        assert!(is_cancel(&cancel()));
        assert_eq!(cancel().data, [1, 1, 255, 0]);
        assert!(!is_cancel(&Notify::new(NotifyType::MobikeUnsupportedVersion, vec![1, 1, 2, 0])));
    }
}
