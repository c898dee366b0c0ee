//! Test-time PKI built with rcgen. Nothing is ever committed: every
//! certificate is generated when the test runs, with dates relative to
//! `OffsetDateTime::now_utc()`.
//!
//! All keys are ECDSA P-256 (rcgen's default with the `ring` backend), which
//! OpenSSL 3.0 (what PostgreSQL links against) loads fine. Ed25519 is avoided
//! on purpose: OpenSSL 3.0 refuses rcgen's Ed25519 PKCS#8 encoding.
//!
//! Serial numbers are 20 random bytes (rcgen derives them from a SHA-256 of
//! the freshly generated, random public key), so every certificate has a
//! unique serial and a CRL can revoke one specific leaf.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
}

impl Issued {
    /// `(cert_pem, key_pem)`, the shape `PgConfig::server_cert` wants.
    pub fn pair(&self) -> (String, String) {
        (self.cert_pem.clone(), self.key_pem.clone())
    }

    /// The certificate's serial number as unsigned big-endian bytes (no
    /// leading zero padding), read back from the DER.
    pub fn serial(&self) -> Vec<u8> {
        serial_from_der(&self.cert_der)
    }
}

/// Concatenate the certificates (not keys) of `certs` into one PEM bundle,
/// in the given order. Use for a server chain file (leaf first, then
/// intermediates) or a CA bundle.
pub fn chain_pem(certs: &[&Issued]) -> String {
    let mut out = String::new();
    for c in certs {
        out.push_str(&c.cert_pem);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// A certificate authority able to sign leaves, intermediates and CRLs.
pub struct Ca {
    /// The CA's own certificate and key.
    pub issued: Issued,
    issuer: Issuer<'static, KeyPair>,
}

/// What to put in a leaf certificate.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Subject CN.
    pub cn: String,
    /// subjectAltName dNSName entries.
    pub dns: Vec<String>,
    /// subjectAltName iPAddress entries.
    pub ips: Vec<IpAddr>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Add the clientAuth extended key usage.
    pub client_auth: bool,
    /// Add the serverAuth extended key usage.
    pub server_auth: bool,
}

impl LeafSpec {
    /// A server certificate: CN `cn`, SANs from `dns` and `ips` (IP literals,
    /// panics if one does not parse), valid now-1day .. now+365days,
    /// EKU serverAuth.
    pub fn server(cn: &str, dns: &[&str], ips: &[&str]) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            cn: cn.to_string(),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips
                .iter()
                .map(|s| {
                    s.parse::<IpAddr>()
                        .unwrap_or_else(|e| panic!("LeafSpec::server: bad IP {s:?}: {e}"))
                })
                .collect(),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
            client_auth: false,
            server_auth: true,
        }
    }

    /// A client certificate: CN `cn` (PostgreSQL maps it to the user name),
    /// no SAN, valid now-1day .. now+365days, EKU clientAuth.
    pub fn client(cn: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            cn: cn.to_string(),
            dns: Vec::new(),
            ips: Vec::new(),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
            client_auth: true,
            server_auth: false,
        }
    }
}

fn new_key() -> KeyPair {
    // ECDSA P-256 with SHA-256.
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generate P-256 key")
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = not_before;
    p.not_after = not_after;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn issued(cert: &rcgen::Certificate, key: &KeyPair) -> Issued {
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    }
}

impl Ca {
    /// A self-signed root CA, valid now-1day .. now+10years.
    pub fn root(cn: &str) -> Ca {
        let now = OffsetDateTime::now_utc();
        Ca::root_with_validity(cn, now - Duration::days(1), now + Duration::days(3650))
    }

    /// A self-signed root CA with explicit validity (e.g. an expired root).
    pub fn root_with_validity(
        cn: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Ca {
        let key = new_key();
        let params = ca_params(cn, not_before, not_after);
        let cert = params.self_signed(&key).expect("self-sign root CA");
        let issued = issued(&cert, &key);
        Ca {
            issued,
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA (CA:TRUE) signed by `self`, valid now-1day ..
    /// now+5years. Its `issued.cert_pem` is the intermediate certificate only.
    pub fn intermediate(&self, cn: &str) -> Ca {
        let now = OffsetDateTime::now_utc();
        let key = new_key();
        let mut params = ca_params(cn, now - Duration::days(1), now + Duration::days(1825));
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate CA");
        let issued = issued(&cert, &key);
        Ca {
            issued,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf (CA:FALSE) signed by this CA.
    pub fn issue(&self, spec: &LeafSpec) -> Issued {
        let key = new_key();
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(&spec.cn);
        p.not_before = spec.not_before;
        p.not_after = spec.not_after;
        p.is_ca = IsCa::ExplicitNoCa;
        p.subject_alt_names = spec
            .dns
            .iter()
            .map(|d| {
                SanType::DnsName(
                    d.clone()
                        .try_into()
                        .unwrap_or_else(|e| panic!("bad DNS SAN {d:?}: {e}")),
                )
            })
            .chain(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut eku = Vec::new();
        if spec.server_auth {
            eku.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client_auth {
            eku.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        p.extended_key_usages = eku;
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        let cert = p.signed_by(&key, &self.issuer).expect("sign leaf");
        issued(&cert, &key)
    }

    /// A PEM CRL signed by this CA revoking the given certificates (which
    /// should have been issued by this CA; the list may be empty).
    /// thisUpdate = now-1day, nextUpdate = now+30days.
    pub fn crl_pem(&self, revoked_serials_of: &[&Issued]) -> String {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = revoked_serials_of
            .iter()
            .map(|c| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&c.serial()),
                revocation_time: now - Duration::hours(1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::days(1),
            next_update: now + Duration::days(30),
            // Any positive number; derive it from the clock so successive
            // CRLs differ.
            crl_number: SerialNumber::from_slice(&(now.unix_timestamp() as u64).to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("sign CRL")
            .pem()
            .expect("CRL to PEM")
    }
}

/// Like `openssl req -new -x509 -days 365 -nodes -subj /CN=<cn>`: subject CN
/// only, no SAN, self-signed, basicConstraints CA:TRUE, valid now .. now+1year
/// (not_before backdated one minute against clock skew). The guides use this
/// file as both `server.crt` and the client's `root.crt`.
pub fn self_signed_server(cn: &str) -> Issued {
    let now = OffsetDateTime::now_utc();
    let key = new_key();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = now - Duration::minutes(1);
    p.not_after = now + Duration::days(365);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // OpenSSL's req -x509 adds subject and authority key identifiers and no
    // keyUsage/extendedKeyUsage.
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    let cert = p.self_signed(&key).expect("self-sign server cert");
    issued(&cert, &key)
}

/// Write `contents` to `dir/name` with permission bits `mode` (e.g. 0o600),
/// creating or truncating it, and return the path. Ownership is the current
/// user's; `support::pg` handles files the server must own.
pub fn write_file(dir: &Path, name: &str, contents: &[u8], mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
    path
}

// ---- minimal DER reading, enough to pull the serial out of a certificate ----

/// Returns (tag, content, rest) for the TLV at the start of `der`.
fn der_tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    assert!(der.len() >= 2, "truncated DER");
    let tag = der[0];
    let (len, hdr) = if der[1] & 0x80 == 0 {
        (der[1] as usize, 2)
    } else {
        let n = (der[1] & 0x7f) as usize;
        assert!((1..=4).contains(&n) && der.len() >= 2 + n, "bad DER length");
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    assert!(der.len() >= hdr + len, "truncated DER");
    (tag, &der[hdr..hdr + len], &der[hdr + len..])
}

fn serial_from_der(cert_der: &[u8]) -> Vec<u8> {
    let (tag, cert, _) = der_tlv(cert_der);
    assert_eq!(tag, 0x30, "Certificate is not a SEQUENCE");
    let (tag, tbs, _) = der_tlv(cert);
    assert_eq!(tag, 0x30, "TBSCertificate is not a SEQUENCE");
    let (mut tag, mut content, rest) = der_tlv(tbs);
    if tag == 0xa0 {
        // [0] EXPLICIT version
        (tag, content, _) = der_tlv(rest);
    }
    assert_eq!(tag, 0x02, "serialNumber is not an INTEGER");
    let mut s = content;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s.to_vec()
}
