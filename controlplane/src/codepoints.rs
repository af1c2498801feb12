//! Every protocol number the gateway uses, in one module, each with where
//! it comes from (../shared/spec/NOTES.md asks for exactly this).
//!
//! IKEv2's registries are open: a peer may send a number we do not know.
//! [`registry!`] makes an enum per registry with an `Unknown(n)` arm, so
//! parsing never fails on a number alone; what an unknown number means
//! (ignore, or reject if critical) is the codec's decision.

/// Defines an open registry: `from_u*` never fails, `value` round-trips.
macro_rules! registry {
    ($(#[$m:meta])* $name:ident: $ty:ty { $($(#[$vm:meta])* $var:ident = $val:expr,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)+
            /// A value this implementation does not know.
            Unknown($ty),
        }

        impl $name {
            pub const fn value(self) -> $ty {
                match self {
                    $($name::$var => $val,)+
                    $name::Unknown(v) => v,
                }
            }

            pub const fn from_value(v: $ty) -> Self {
                match v {
                    $($val => $name::$var,)+
                    other => $name::Unknown(other),
                }
            }

            /// Every known value, for tests and tables.
            pub const KNOWN: &'static [$name] = &[$($name::$var,)+];
        }

        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                Self::from_value(v)
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                v.value()
            }
        }
    };
}

registry! {
    /// IKEv2 exchange types (RFC 7296 3.1; IANA "IKEv2 Exchange Types").
    ExchangeType: u8 {
        IkeSaInit = 34,
        IkeAuth = 35,
        CreateChildSa = 36,
        Informational = 37,
    }
}

registry! {
    /// IKEv2 payload types (RFC 7296 3.2; RFC 7383 for SKF).
    PayloadType: u8 {
        NoNextPayload = 0,
        SecurityAssociation = 33,
        KeyExchange = 34,
        IdentificationInitiator = 35,
        IdentificationResponder = 36,
        Certificate = 37,
        CertificateRequest = 38,
        Authentication = 39,
        Nonce = 40,
        Notify = 41,
        Delete = 42,
        VendorId = 43,
        TrafficSelectorInitiator = 44,
        TrafficSelectorResponder = 45,
        Encrypted = 46,
        Configuration = 47,
        ExtensibleAuthentication = 48,
        /// RFC 7383 2.5: Encrypted and Authenticated Fragment.
        EncryptedFragment = 53,
        /// draft-xu-ike-sa-sync: IKE_SA_SYN. The draft gives no number;
        /// 200 is from the private-use range (NOTES.md, "ours").
        IkeSaSyn = 200,
    }
}

registry! {
    /// Notify message types (RFC 7296 3.10.1, RFC 4555, RFC 7791 and the
    /// drafts; private-use numbers per ../shared/spec/NOTES.md).
    NotifyType: u16 {
        // Errors, RFC 7296 3.10.1.
        UnsupportedCriticalPayload = 1,
        InvalidIkeSpi = 4,
        InvalidMajorVersion = 5,
        InvalidSyntax = 7,
        InvalidMessageId = 9,
        InvalidSpi = 11,
        NoProposalChosen = 14,
        InvalidKePayload = 17,
        AuthenticationFailed = 24,
        SinglePairRequired = 34,
        NoAdditionalSas = 35,
        InternalAddressFailure = 36,
        FailedCpRequired = 37,
        TsUnacceptable = 38,
        InvalidSelectors = 39,
        /// RFC 4555 5.1.
        UnacceptableAddresses = 40,
        /// RFC 4555 5.2.
        UnexpectedNatDetected = 41,
        TemporaryFailure = 43,
        ChildSaNotFound = 44,
        /// MOBIKE-X 11.3.7 (errors).
        MobikeUnsupportedVersion = 8192,
        DoesNotFitSpd = 8193,
        UnacceptableParameter = 8194,
        UnexpectedPayloadAfterSelector = 8195,
        UnmatchedSelectorSet = 8196,
        // Status, RFC 7296 3.10.1.
        InitialContact = 16384,
        SetWindowSize = 16385,
        AdditionalTsPossible = 16386,
        IpcompSupported = 16387,
        NatDetectionSourceIp = 16388,
        NatDetectionDestinationIp = 16389,
        Cookie = 16390,
        UseTransportMode = 16391,
        HttpCertLookupSupported = 16392,
        RekeySa = 16393,
        EspTfcPaddingNotSupported = 16394,
        NonFirstFragmentsAlso = 16395,
        /// RFC 4555 (MOBIKE); with VERSION parameters, MOBIKE-X 6.2.
        MobikeSupported = 16396,
        /// RFC 4555; MOBIKE-X's ADDITIONAL_IP_ADDRESS (IPv4).
        AdditionalIp4Address = 16397,
        /// RFC 4555; MOBIKE-X's ADDITIONAL_IP_ADDRESS (IPv6).
        AdditionalIp6Address = 16398,
        NoAdditionalAddresses = 16399,
        UpdateSaAddresses = 16400,
        Cookie2 = 16401,
        NoNatsAllowed = 16402,
        /// RFC 5685 (redirect).
        RedirectSupported = 16406,
        Redirect = 16407,
        RedirectedFrom = 16408,
        /// RFC 7383 2.3.
        IkeFragmentationSupported = 16430,
        /// RFC 7427 4.
        SignatureHashAlgorithms = 16431,
        /// RFC 7791 (the standard the clone draft became).
        CloneIkeSaSupported = 16432,
        CloneIkeSa = 16433,
        /// draft-yamaya-ipsecme-mpsa 3.2.2.
        MpsaPut = 40960,
        /// MOBIKE-X 11.2.9.
        Selector = 40961,
        EndOfSelector = 40962,
        /// MOBIKE-X 11.2.9's table (the 11.2.7/11.2.8 text disagrees).
        AddSaAddress = 40963,
        RemoveSaAddress = 40964,
        /// Named in MOBIKE-X 6.8, never numbered: ours (NOTES.md).
        ClosingSa = 40965,
    }
}

impl NotifyType {
    /// RFC 7296 3.10.1: types below 16384 are errors.
    pub const fn is_error(self) -> bool {
        self.value() < 16384
    }
}

registry! {
    /// Transform types (RFC 7296 3.3.2) and the MPSA_PUT-only types of
    /// draft-yamaya-ipsecme-mpsa 3.2.2 (each with transform ID 1).
    TransformType: u8 {
        Encryption = 1,
        Prf = 2,
        Integrity = 3,
        KeyExchange = 4,
        ExtendedSequenceNumbers = 5,
        /// MPSA: the nonce that KEYMAT is derived from.
        MpsaNonce = 241,
        /// MPSA: SK_d of the group SA.
        MpsaSkd = 242,
        /// MPSA: lifetime left, seconds.
        MpsaLife = 243,
        /// MPSA: Rollover1, seconds.
        MpsaRoll1 = 244,
        /// MPSA: Rollover2, seconds.
        MpsaRoll2 = 245,
    }
}

registry! {
    /// Transform attribute types (RFC 7296 3.3.5) and MPSA's TLV
    /// attributes (draft-yamaya-ipsecme-mpsa 3.2.2).
    AttributeType: u16 {
        KeyLength = 14,
        MpsaNonce = 16384,
        MpsaSkd = 16385,
        MpsaLifetime = 16386,
        MpsaRollover1 = 16387,
        MpsaRollover2 = 16388,
    }
}

registry! {
    /// Security protocol IDs in proposals, notifies and deletes (RFC 7296 3.3.1).
    ProtocolId: u8 {
        None = 0,
        Ike = 1,
        Ah = 2,
        Esp = 3,
    }
}

registry! {
    /// Transform type 1, encryption algorithms (IANA "Transform Type 1").
    EncrId: u16 {
        /// RFC 3602; needs a key length attribute.
        AesCbc = 12,
        /// RFC 4106 / RFC 5282, 16-octet ICV; needs a key length attribute.
        AesGcm16 = 20,
        /// RFC 7634: 256-bit key, no key length attribute.
        ChaCha20Poly1305 = 28,
    }
}

registry! {
    /// Transform type 2, pseudorandom functions (RFC 7296 3.3.2, RFC 4868).
    PrfId: u16 {
        HmacSha1 = 2,
        HmacSha2_256 = 5,
        HmacSha2_384 = 6,
        HmacSha2_512 = 7,
    }
}

registry! {
    /// Transform type 3, integrity algorithms (RFC 7296 3.3.2, RFC 4868).
    IntegId: u16 {
        None = 0,
        HmacSha1_96 = 2,
        HmacSha2_256_128 = 12,
        HmacSha2_384_192 = 13,
        HmacSha2_512_256 = 14,
    }
}

registry! {
    /// Transform type 4, Diffie-Hellman groups (RFC 3526, RFC 5903, RFC 8031).
    DhGroup: u16 {
        None = 0,
        Modp2048 = 14,
        Modp3072 = 15,
        Modp4096 = 16,
        Ecp256 = 19,
        Ecp384 = 20,
        Ecp521 = 21,
        Curve25519 = 31,
        /// RFC 8031.
        Curve448 = 32,
    }
}

registry! {
    /// Authentication methods (RFC 7296 3.8).
    AuthMethod: u8 {
        RsaSignature = 1,
        SharedKeyMic = 2,
        DssSignature = 3,
        /// RFC 7427.
        DigitalSignature = 14,
    }
}

registry! {
    /// Identification types (RFC 7296 3.5).
    IdType: u8 {
        Ipv4Addr = 1,
        Fqdn = 2,
        Rfc822Addr = 3,
        Ipv6Addr = 5,
        DerAsn1Dn = 9,
        DerAsn1Gn = 10,
        KeyId = 11,
    }
}

registry! {
    /// Traffic selector types (RFC 7296 3.13.1).
    TsType: u8 {
        Ipv4AddrRange = 7,
        Ipv6AddrRange = 8,
    }
}

registry! {
    /// Configuration payload types (RFC 7296 3.15).
    CfgType: u8 {
        Request = 1,
        Reply = 2,
        Set = 3,
        Ack = 4,
    }
}

registry! {
    /// Configuration attribute types (RFC 7296 3.15.1).
    CfgAttr: u16 {
        InternalIp4Address = 1,
        InternalIp4Netmask = 2,
        InternalIp4Dns = 3,
        InternalIp6Address = 8,
        InternalIp6Dns = 10,
        InternalIp4Subnet = 13,
        InternalIp6Subnet = 15,
    }
}

/// UDP ports of IKE (RFC 7296 2) and of NAT traversal (RFC 3948).
pub const IKE_PORT: u16 = 500;
pub const NATT_PORT: u16 = 4500;

/// MPSA transform ID of the NONCE/SKD/LIFE/ROLL1/ROLL2 transforms.
pub const MPSA_TRANSFORM_ID: u16 = 1;

/// MPSA capability: Vendor ID data, the 14 ASCII octets "multi-point SA"
/// without a terminator (draft-yamaya-ipsecme-mpsa 3.2.1).
pub const MPSA_VENDOR_ID: &[u8; 14] = b"multi-point SA";

/// Clone IKE SA's reduced exchange (draft-mglt-ipsecme-clone-ike-sa-00
/// Appendix B.5: the first clone made inside IKE_AUTH): Vendor ID data in
/// IKE_SA_INIT, both ways, so the initiator knows before IKE_AUTH that the
/// responder takes it. Ours (neither the draft nor RFC 7791 gives one):
/// the 20 ASCII octets "clone-ike-sa reduced".
pub const CLONE_REDUCED_VENDOR_ID: &[u8; 20] = b"clone-ike-sa reduced";

registry! {
    /// MOBIKE-X parameter TYPE octets (draft-mglt-ipsec-mm-mobikex 11.4.9;
    /// 8 bits per NOTES.md).
    MobikexParameter: u8 {
        Version = 1,
        Spi = 2,
        Ip = 3,
        IpsecMode = 4,
        IpsecProto = 5,
        SelectorSpecificValue = 6,
        Id = 7,
    }
}

registry! {
    /// MOBIKE versions in the VERSION parameter (MOBIKE-X 6.2; NOTES.md:
    /// "version 1" there is a typo for 2).
    MobikeVersion: u8 {
        Mobike = 1,
        MobikeX = 2,
        None = 255,
    }
}

registry! {
    /// Stub signalling message types (draft-xu-ike-sa-sync 3.6).
    StubMessageType: u8 {
        Update = 1,
        Get = 2,
        Download = 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip_and_unknown_ones_survive() {
        for &t in NotifyType::KNOWN {
            assert_eq!(NotifyType::from_value(t.value()), t);
        }
        for &t in PayloadType::KNOWN {
            assert_eq!(PayloadType::from(u8::from(t)), t);
        }
        for &t in TransformType::KNOWN {
            assert_eq!(TransformType::from_value(t.value()), t);
        }
        assert_eq!(NotifyType::from_value(12345), NotifyType::Unknown(12345));
        assert_eq!(NotifyType::Unknown(12345).value(), 12345);
        assert_eq!(PayloadType::from_value(99), PayloadType::Unknown(99));
    }

    #[test]
    fn spec_code_points() {
        // ../shared/spec/NOTES.md, "Code points".
        assert_eq!(NotifyType::MpsaPut.value(), 40960);
        assert_eq!(NotifyType::Selector.value(), 40961);
        assert_eq!(NotifyType::AddSaAddress.value(), 40963);
        assert_eq!(NotifyType::ClosingSa.value(), 40965);
        assert_eq!(NotifyType::CloneIkeSaSupported.value(), 16432);
        assert_eq!(NotifyType::UnacceptableParameter.value(), 8194);
        assert_eq!(PayloadType::IkeSaSyn.value(), 200);
        assert_eq!(TransformType::MpsaRoll2.value(), 245);
        assert_eq!(AttributeType::MpsaRollover2.value(), 16388);
        assert_eq!(MPSA_VENDOR_ID.len(), 14);
        assert_eq!(MobikexParameter::Id.value(), 7);
        assert_eq!(MobikeVersion::MobikeX.value(), 2);
        assert!(NotifyType::NoProposalChosen.is_error());
        assert!(NotifyType::MobikeUnsupportedVersion.is_error());
        assert!(!NotifyType::MpsaPut.is_error());
    }

    #[test]
    fn registries_have_no_duplicate_values() {
        let mut v: Vec<u16> = NotifyType::KNOWN.iter().map(|t| t.value()).collect();
        let n = v.len();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), n);
    }
}
