//! Certificate authentication in IKE_AUTH (RFC 7296 2.15, 3.6, 3.7; RFC
//! 7427 digital signatures; RFC 4945 for names), in memory between two
//! engines, IPv4 and IPv6: ECDSA P-256 and P-384, RSA with RSASSA-PSS and
//! with PKCS#1 v1.5, PSK one way and a certificate the other, and every
//! bad certificate refused with AUTHENTICATION_FAILED, a reason, and
//! nothing installed. Certificates are made for the run with rcgen.

mod certs_common;
mod common;

use std::net::IpAddr;
use std::time::Instant;

use certs_common::{ca, issue, pubkey, unix};
use common::{conn_a, conn_b, run, Node, V4, V6};
use controlplane::ike::engine::{AuthFailure, Error};
use controlplane::ike::Event;
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber, SignatureAlgorithm};

/// a.lab (initiator) to b.lab with these config lines; (a up, b up, b's
/// failure, a's failure, a, b).
fn attempt(fam: (IpAddr, IpAddr), extra_a: &str, extra_b: &str) -> (usize, usize, Node, Node) {
    let mut ca_ = conn_a(fam, extra_a);
    let mut cb = conn_b(fam, extra_b);
    // The PSK only where a side uses one.
    let all_pubkey = |e: &str| e.lines().any(|l| l == "auth = \"pubkey\"") && !e.contains("remote_auth = \"psk\"");
    if all_pubkey(extra_a) {
        ca_.psk.clear();
    }
    if all_pubkey(extra_b) {
        cb.psk.clear();
    }
    let mut a = Node::seeded(vec![ca_], 1);
    let mut b = Node::seeded(vec![cb], 2);
    let now = Instant::now();
    a.e.set_unix_time(now, unix());
    b.e.set_unix_time(now, unix());
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    (a.established(), b.established(), a, b)
}

fn installed(n: &Node) -> bool {
    n.dp.iter().any(|c| matches!(c, cpdp::msg::Command::InstallSa(_)))
}

/// The responder's reason for refusing, from its Failed event.
fn refused_because(b: &Node) -> String {
    b.events
        .iter()
        .find_map(|e| match e {
            Event::Failed { why: Error::Auth(AuthFailure::RejectedBecause { why, .. }), .. } => Some(why.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no refusal with a reason: {:?}", b.events))
}

#[test]
fn rfc7427_ecdsa_and_rsa_certificates_both_ways() {
    let d = tempfile::tempdir().unwrap();
    let lab = ca(d.path(), "lab");
    let cases: [(&str, Option<&'static SignatureAlgorithm>, &str); 4] = [
        ("p256", Some(&rcgen::PKCS_ECDSA_P256_SHA256), ""),
        ("p384", Some(&rcgen::PKCS_ECDSA_P384_SHA384), ""),
        ("rsa-pss", None, ""),
        ("rsa-pkcs1", None, "rsa_pss = false\n"),
    ];
    for (name, alg, extra) in cases {
        let (ac, ak) = issue(d.path(), &lab, &format!("a-{name}"), "a.lab", alg, |_| {});
        let (bc, bk) = issue(d.path(), &lab, &format!("b-{name}"), "b.lab", alg, |_| {});
        for fam in [V4, V6] {
            let (ua, ub, a, b) = attempt(fam, &pubkey(&ac, &ak, &lab.path, extra), &pubkey(&bc, &bk, &lab.path, extra));
            assert_eq!((ua, ub), (1, 1), "{name} {fam:?}: {:?} / {:?}", a.events, b.events);
            assert_eq!((a.children(), b.children()), (1, 1), "{name} {fam:?}");
            // Each side shows the certificate the other proved itself with.
            let peer_cert = |n: &Node| n.e.ike_sas().find_map(|s| s.established().and_then(|x| x.peer_cert.clone()));
            assert_eq!(peer_cert(&b).as_deref(), Some("CN=a.lab"), "{name}");
            assert_eq!(peer_cert(&a).as_deref(), Some("CN=b.lab"), "{name}");
        }
    }
}

/// RFC 4945 3.1: every identity type a certificate can prove. a's
/// identity is an address, an RFC 822 name, or (no local_id) its subject
/// DN; b expects it as written (the DN as text).
#[test]
fn rfc4945_3_1_address_email_and_dn_identities() {
    let d = tempfile::tempdir().unwrap();
    let lab = ca(d.path(), "lab");
    let p256 = Some(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (bc, bk) = issue(d.path(), &lab, "b", "b.lab", p256, |_| {});
    for fam in [V4, V6] {
        let addr = fam.0.to_string();
        let (ac, ak) = issue(d.path(), &lab, &format!("a-{addr}"), &addr, p256, |_| {});
        let (ec, ek) = issue(d.path(), &lab, "a-mail", "a@lab.example", p256, |_| {});
        let cases = [
            (format!("local_id = \"{addr}\"\n"), addr.clone(), &ac, &ak),
            ("local_id = \"a@lab.example\"\n".to_string(), "a@lab.example".to_string(), &ec, &ek),
            // No local_id: the certificate's subject DN, written as text on b.
            (String::new(), "CN=a@lab.example".to_string(), &ec, &ek),
        ];
        for (id_line, remote_id, c, k) in cases {
            let mut a_side = conn_a(fam, &pubkey(c, k, &lab.path, ""));
            a_side.psk.clear();
            a_side.local_id = (!id_line.is_empty()).then(|| id_line.split('"').nth(1).unwrap().to_string());
            let mut b_side = conn_b(fam, &pubkey(&bc, &bk, &lab.path, ""));
            b_side.psk.clear();
            b_side.remote_id = Some(remote_id.clone());
            let mut a = Node::seeded(vec![a_side], 1);
            let mut b = Node::seeded(vec![b_side], 2);
            let now = Instant::now();
            a.e.set_unix_time(now, unix());
            b.e.set_unix_time(now, unix());
            a.e.initiate(now, "lab").unwrap();
            run(&mut a, &mut b, now);
            assert_eq!((a.established(), b.established()), (1, 1), "{fam:?} {remote_id}: {:?}", b.events);
            let peer = b.e.ike_sas().find_map(|s| s.peer_id().map(|i| i.to_text())).unwrap();
            assert_eq!(peer, remote_id, "{fam:?}");
        }
    }
}

/// RFC 7427 4: without the peer's SIGNATURE_HASH_ALGORITHMS there is no
/// hash we may sign with: a PSK-only responder never announces one, so an
/// initiator with a certificate does not send an AUTH it cannot make.
#[test]
fn rfc7427_4_no_signature_without_the_peers_hash_algorithms() {
    let d = tempfile::tempdir().unwrap();
    let lab = ca(d.path(), "lab");
    let (ac, ak) = issue(d.path(), &lab, "a", "a.lab", Some(&rcgen::PKCS_ECDSA_P256_SHA256), |_| {});
    for fam in [V4, V6] {
        let a_side = format!("{}remote_auth = \"psk\"\n", pubkey(&ac, &ak, &lab.path, ""));
        let a_side = a_side.replace(&format!("cas = [\"{}\"]\n", lab.path.display()), "");
        // b takes a PSK from a: no certificates at b, so no notify.
        let (ua, ub, a, _) = attempt(fam, &a_side, "");
        assert_eq!((ua, ub), (0, 0), "{fam:?}");
        assert!(
            a.events
                .iter()
                .any(|e| matches!(e, Event::Failed { why: Error::Auth(AuthFailure::NoSignatureHash(_)), .. })),
            "{:?}",
            a.events
        );
    }
}

#[test]
fn rfc7296_2_15_psk_one_way_and_a_certificate_the_other() {
    let d = tempfile::tempdir().unwrap();
    let lab = ca(d.path(), "lab");
    let (ac, ak) = issue(d.path(), &lab, "a", "a.lab", Some(&rcgen::PKCS_ECDSA_P256_SHA256), |_| {});
    for fam in [V4, V6] {
        // a signs, b answers with the PSK.
        let a_side = format!(
            "{}remote_auth = \"psk\"\n",
            pubkey(&ac, &ak, &lab.path, "").replace(&format!("cas = [\"{}\"]\n", lab.path.display()), "")
        );
        let b_side = format!("remote_auth = \"pubkey\"\ncas = [\"{}\"]\n", lab.path.display());
        let (ua, ub, a, b) = attempt(fam, &a_side, &b_side);
        assert_eq!((ua, ub), (1, 1), "{fam:?}: {:?} / {:?}", a.events, b.events);
    }
}

#[test]
fn rfc4945_bad_certificates_get_authentication_failed_and_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let lab = ca(d.path(), "lab");
    let other = ca(d.path(), "other");
    let p256 = Some(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (bc, bk) = issue(d.path(), &lab, "b", "b.lab", p256, |_| {});
    let b_side = pubkey(&bc, &bk, &lab.path, "");
    let expired = issue(d.path(), &lab, "expired", "a.lab", p256, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let stranger = issue(d.path(), &other, "stranger", "a.lab", p256, |_| {});
    let wrong_name = issue(d.path(), &lab, "wrong-name", "c.lab", p256, |_| {});
    let revoked =
        issue(d.path(), &lab, "revoked", "a.lab", p256, |p| p.serial_number = Some(SerialNumber::from(4242u64)));
    let crl = CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2025, 1, 1),
        next_update: rcgen::date_time_ymd(2035, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(4242u64),
            revocation_time: rcgen::date_time_ymd(2025, 6, 1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&lab.cert, &lab.key)
    .unwrap();
    let crl_path = d.path().join("lab.crl");
    std::fs::write(&crl_path, crl.pem().unwrap()).unwrap();
    let b_with_crl = format!("{b_side}crls = [\"{}\"]\n", crl_path.display());
    let cases = [
        ("expired", &expired, &b_side, "", "expired"),
        ("an unknown CA", &stranger, &b_side, "", "no chain to a CA we trust"),
        ("another name", &wrong_name, &b_side, "", "is not for identity a.lab"),
        ("revoked", &revoked, &b_with_crl, "", "revoked"),
        ("not sent", &wrong_name, &b_side, "send_cert = \"never\"\n", "no certificate"),
    ];
    for (what, (c, k), b_side, extra, why) in cases {
        for fam in [V4, V6] {
            //   IKE_AUTH { SK { IDi(a.lab), CERT, AUTH(signature) } } -->
            //                     <-- { SK { N(AUTHENTICATION_FAILED) } }
            let (ua, ub, a, b) = attempt(fam, &pubkey(c, k, &lab.path, extra), b_side);
            assert_eq!((ua, ub), (0, 0), "{what} {fam:?}");
            assert_eq!((a.e.stats.auth_failed, b.e.stats.auth_failed), (1, 1), "{what} {fam:?}");
            assert!(!installed(&a) && !installed(&b), "{what}: nothing installed");
            assert!(b.e.ike_sas().next().is_none(), "{what}: the responder keeps no IKE SA");
            let r = refused_because(&b);
            assert!(r.contains(why), "{what}: {r}");
        }
    }
    // The responder's certificate refused by the initiator, the same way.
    let (ac, ak) = issue(d.path(), &lab, "a", "a.lab", p256, |_| {});
    let (ec, ek) = expired;
    let b_expired = pubkey(&ec, &ek, &lab.path, "").replace("a.lab", "b.lab");
    let b_expired = b_expired
        .replace(
            &ec.display().to_string(),
            &issue(d.path(), &lab, "b-expired", "b.lab", p256, |p| {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            })
            .0
            .display()
            .to_string(),
        )
        .replace(&ek.display().to_string(), &d.path().join("b-expired.key").display().to_string());
    for fam in [V4, V6] {
        let (ua, _, a, _) = attempt(fam, &pubkey(&ac, &ak, &lab.path, ""), &b_expired);
        assert_eq!(ua, 0, "{fam:?}");
        assert!(
            a.events.iter().any(|e| matches!(
                e,
                Event::Failed { why: Error::Auth(AuthFailure::PeerRefused(w)), .. } if w.contains("expired")
            )),
            "{:?}",
            a.events
        );
        assert!(!installed(&a));
    }
}

#[test]
fn a_config_with_an_unreadable_or_mismatched_file_names_it() {
    let d = tempfile::tempdir().unwrap();
    let lab = ca(d.path(), "lab");
    let p256 = Some(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (c, _) = issue(d.path(), &lab, "a", "a.lab", p256, |_| {});
    let (_, other_key) = issue(d.path(), &lab, "x", "x.lab", p256, |_| {});
    let build = |extra: &str| {
        let mut t = conn_a(V4, extra);
        t.psk.clear();
        t.build()
    };
    let missing = d.path().join("nope.key");
    let e = build(&pubkey(&c, &missing, &lab.path, "")).unwrap_err();
    assert!(e.contains("nope.key"), "{e}");
    let e = build(&pubkey(&c, &other_key, &lab.path, "")).unwrap_err();
    assert!(e.contains("not the key of cert") && e.contains("x.key"), "{e}");
    let e = build(&pubkey(&c, &other_key, &d.path().join("no-ca.pem"), "")).unwrap_err();
    assert!(e.contains("no-ca.pem") || e.contains("x.key"), "{e}");
    let e = build("auth = \"pubkey\"\n").unwrap_err();
    assert!(e.contains("cert and key"), "{e}");
}
