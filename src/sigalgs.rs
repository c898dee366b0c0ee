//! Handshake signatures (ServerKeyExchange, CertificateVerify), verified by OpenSSL, the
//! library libpq uses, from the public key of the server's certificate.
//!
//! Not webpki: webpki parses only X.509 v3 certificates and has neither P-521 nor RSA-PSS
//! keys, and each of those makes the handshake fail where libpq connects, which turns every
//! TLS verdict of the report wrong. The chain itself is judged later, offline, in `trust`.
//! The schemes offered are OpenSSL 3's default client list at security level 2, in its order.

use openssl::ec::EcKey;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::x509::X509;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::{CertificateError, PeerMisbehaved, SignatureScheme};

/// rsa_pss_pss_sha256/384/512 (RFC 8446): RSA-PSS keys. rustls has no names for them.
pub const RSA_PSS_PSS_SHA256: SignatureScheme = SignatureScheme::Unknown(0x0809);
pub const RSA_PSS_PSS_SHA384: SignatureScheme = SignatureScheme::Unknown(0x080a);
pub const RSA_PSS_PSS_SHA512: SignatureScheme = SignatureScheme::Unknown(0x080b);

/// The signature_algorithms the doctor offers, as OpenSSL 3 (libpq) offers them.
pub fn offered() -> Vec<SignatureScheme> {
    vec![
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::ECDSA_NISTP384_SHA384,
        SignatureScheme::ECDSA_NISTP521_SHA512,
        SignatureScheme::ED25519,
        SignatureScheme::ED448,
        RSA_PSS_PSS_SHA256,
        RSA_PSS_PSS_SHA384,
        RSA_PSS_PSS_SHA512,
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::RSA_PSS_SHA384,
        SignatureScheme::RSA_PSS_SHA512,
        SignatureScheme::RSA_PKCS1_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512,
    ]
}

/// How one scheme is checked.
#[derive(Debug, Clone, Copy)]
enum Method {
    /// ECDSA with this digest; in TLS 1.3 the curve is bound to the scheme.
    Ecdsa(fn() -> MessageDigest, Nid),
    /// EdDSA (no separate digest).
    Eddsa(Id),
    /// RSASSA-PKCS1-v1_5 (TLS 1.2 only).
    RsaPkcs1(fn() -> MessageDigest),
    /// RSASSA-PSS with an rsaEncryption key (rsa_pss_rsae_*) or an RSA-PSS key (rsa_pss_pss_*).
    RsaPss(fn() -> MessageDigest, Id),
}

fn method(scheme: SignatureScheme) -> Option<Method> {
    use SignatureScheme as S;
    Some(match scheme {
        S::ECDSA_NISTP256_SHA256 => Method::Ecdsa(MessageDigest::sha256, Nid::X9_62_PRIME256V1),
        S::ECDSA_NISTP384_SHA384 => Method::Ecdsa(MessageDigest::sha384, Nid::SECP384R1),
        S::ECDSA_NISTP521_SHA512 => Method::Ecdsa(MessageDigest::sha512, Nid::SECP521R1),
        S::ED25519 => Method::Eddsa(Id::ED25519),
        S::ED448 => Method::Eddsa(Id::ED448),
        S::RSA_PKCS1_SHA256 => Method::RsaPkcs1(MessageDigest::sha256),
        S::RSA_PKCS1_SHA384 => Method::RsaPkcs1(MessageDigest::sha384),
        S::RSA_PKCS1_SHA512 => Method::RsaPkcs1(MessageDigest::sha512),
        S::RSA_PSS_SHA256 => Method::RsaPss(MessageDigest::sha256, Id::RSA),
        S::RSA_PSS_SHA384 => Method::RsaPss(MessageDigest::sha384, Id::RSA),
        S::RSA_PSS_SHA512 => Method::RsaPss(MessageDigest::sha512, Id::RSA),
        s if s == RSA_PSS_PSS_SHA256 => Method::RsaPss(MessageDigest::sha256, Id::RSA_PSS),
        s if s == RSA_PSS_PSS_SHA384 => Method::RsaPss(MessageDigest::sha384, Id::RSA_PSS),
        s if s == RSA_PSS_PSS_SHA512 => Method::RsaPss(MessageDigest::sha512, Id::RSA_PSS),
        _ => return None,
    })
}

/// Which TLS version's rules apply to the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

fn bad_signature() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadSignature)
}

/// Verifies a handshake signature made with the key of the certificate `cert_der` (any
/// X.509 version OpenSSL parses).
pub fn verify(
    version: Version,
    message: &[u8],
    cert_der: &[u8],
    scheme: SignatureScheme,
    signature: &[u8],
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let unadvertised =
        || rustls::Error::PeerMisbehaved(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme);
    if !offered().contains(&scheme) {
        return Err(unadvertised());
    }
    let method = method(scheme).ok_or_else(unadvertised)?;
    if version == Version::Tls13 && matches!(method, Method::RsaPkcs1(_)) {
        return Err(unadvertised());
    }
    let key = X509::from_der(cert_der)
        .and_then(|c| c.public_key())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    match check(version, method, &key, message, signature) {
        Ok(true) => Ok(HandshakeSignatureValid::assertion()),
        _ => Err(bad_signature()),
    }
}

fn check(
    version: Version,
    method: Method,
    key: &PKey<Public>,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, openssl::error::ErrorStack> {
    match method {
        Method::Ecdsa(digest, curve) => {
            if key.id() != Id::EC {
                return Ok(false);
            }
            if version == Version::Tls13 {
                let ec: EcKey<Public> = key.ec_key()?;
                if ec.group().curve_name() != Some(curve) {
                    return Ok(false);
                }
            }
            let mut verifier = Verifier::new(digest(), key)?;
            verifier.verify_oneshot(signature, message)
        }
        Method::Eddsa(id) => {
            if key.id() != id {
                return Ok(false);
            }
            let mut verifier = Verifier::new_without_digest(key)?;
            verifier.verify_oneshot(signature, message)
        }
        Method::RsaPkcs1(digest) => {
            if key.id() != Id::RSA {
                return Ok(false);
            }
            let mut verifier = Verifier::new(digest(), key)?;
            verifier.set_rsa_padding(Padding::PKCS1)?;
            verifier.verify_oneshot(signature, message)
        }
        Method::RsaPss(digest, id) => {
            if key.id() != id {
                return Ok(false);
            }
            let mut verifier = Verifier::new(digest(), key)?;
            verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
            verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
            verifier.set_rsa_mgf1_md(digest())?;
            verifier.verify_oneshot(signature, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::EcGroup;
    use openssl::pkey::Private;
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use openssl::x509::{X509Builder, X509NameBuilder};

    /// A version 1 certificate (no extensions at all) for `key`.
    fn v1_cert(key: &PKey<Private>) -> Vec<u8> {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "v1").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(0).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        let digest = if key.id() == Id::ED25519 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        };
        b.sign(key, digest).unwrap();
        b.build().to_der().unwrap()
    }

    fn sign(scheme: SignatureScheme, key: &PKey<Private>, msg: &[u8]) -> Vec<u8> {
        let sig = match method(scheme).unwrap() {
            Method::Eddsa(_) => Signer::new_without_digest(key)
                .unwrap()
                .sign_oneshot_to_vec(msg)
                .unwrap(),
            Method::Ecdsa(d, _) | Method::RsaPkcs1(d) => {
                let mut s = Signer::new(d(), key).unwrap();
                s.update(msg).unwrap();
                s.sign_to_vec().unwrap()
            }
            Method::RsaPss(d, _) => {
                let mut s = Signer::new(d(), key).unwrap();
                s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
                s.set_rsa_mgf1_md(d()).unwrap();
                s.update(msg).unwrap();
                s.sign_to_vec().unwrap()
            }
        };
        sig
    }

    fn ec(nid: Nid) -> PKey<Private> {
        PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap())
            .unwrap()
    }

    fn rsa_pss_key() -> PKey<Private> {
        // An RSA-PSS key (id-RSASSA-PSS), as `openssl genpkey -algorithm rsa-pss` makes.
        let pem = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "rsa-pss",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl CLI");
        PKey::private_key_from_pem(&pem.stdout).unwrap()
    }

    #[test]
    fn every_key_type_on_a_v1_certificate() {
        let msg = b"handshake transcript";
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let cases: Vec<(PKey<Private>, SignatureScheme, Version)> = vec![
            (
                ec(Nid::X9_62_PRIME256V1),
                SignatureScheme::ECDSA_NISTP256_SHA256,
                Version::Tls13,
            ),
            (
                ec(Nid::SECP384R1),
                SignatureScheme::ECDSA_NISTP384_SHA384,
                Version::Tls13,
            ),
            (
                ec(Nid::SECP521R1),
                SignatureScheme::ECDSA_NISTP521_SHA512,
                Version::Tls13,
            ),
            (
                PKey::generate_ed25519().unwrap(),
                SignatureScheme::ED25519,
                Version::Tls13,
            ),
            (rsa.clone(), SignatureScheme::RSA_PSS_SHA256, Version::Tls13),
            (
                rsa.clone(),
                SignatureScheme::RSA_PKCS1_SHA384,
                Version::Tls12,
            ),
            (rsa_pss_key(), RSA_PSS_PSS_SHA256, Version::Tls13),
        ];
        for (key, scheme, version) in cases {
            let cert = v1_cert(&key);
            assert_eq!(X509::from_der(&cert).unwrap().version(), 0);
            let sig = sign(scheme, &key, msg);
            assert!(
                verify(version, msg, &cert, scheme, &sig).is_ok(),
                "{scheme:?} on a v1 certificate"
            );
            assert!(
                verify(version, b"another transcript", &cert, scheme, &sig).is_err(),
                "{scheme:?} accepted a signature over other bytes"
            );
        }
    }

    #[test]
    fn tls13_rules() {
        let msg = b"m";
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let cert = v1_cert(&rsa);
        let pkcs1 = SignatureScheme::RSA_PKCS1_SHA256;
        let sig = sign(pkcs1, &rsa, msg);
        assert!(verify(Version::Tls12, msg, &cert, pkcs1, &sig).is_ok());
        assert!(verify(Version::Tls13, msg, &cert, pkcs1, &sig).is_err());
        // A P-384 key cannot sign as ecdsa_secp256r1_sha256 in TLS 1.3 (it can in 1.2).
        let p384 = ec(Nid::SECP384R1);
        let cert = v1_cert(&p384);
        let p256 = SignatureScheme::ECDSA_NISTP256_SHA256;
        let sig = sign(p256, &p384, msg);
        assert!(verify(Version::Tls12, msg, &cert, p256, &sig).is_ok());
        assert!(verify(Version::Tls13, msg, &cert, p256, &sig).is_err());
        // An RSA key cannot claim an RSA-PSS-key scheme, nor the reverse.
        let sig = sign(SignatureScheme::RSA_PSS_SHA256, &rsa, msg);
        assert!(verify(
            Version::Tls13,
            msg,
            &v1_cert(&rsa),
            RSA_PSS_PSS_SHA256,
            &sig
        )
        .is_err());
        // A scheme that was not offered.
        let sha1 = SignatureScheme::RSA_PKCS1_SHA1;
        assert!(verify(Version::Tls12, msg, &v1_cert(&rsa), sha1, &[0; 256]).is_err());
    }
}
