//! Certificates rcgen cannot make, built at test time with the openssl crate (and the openssl
//! CLI for RSA-PSS keys): X.509 v1 certificates and CAs, as `openssl x509 -req` without an
//! extensions file makes them, and leaves with RSA-PSS keys. Users' PKIs and PostgreSQL's own
//! test certificates look like this; a PKI made only by rcgen would share our blind spots.

use std::process::Command;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use super::pki::Issued;

/// The kind of key a certificate carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcP256,
    /// Below OpenSSL security level 2 ("ee key too small").
    Rsa1024,
    Rsa2048,
    /// id-RSASSA-PSS, as `openssl genpkey -algorithm rsa-pss` makes.
    RsaPss,
}

pub fn new_key(kind: KeyKind) -> PKey<Private> {
    match kind {
        KeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
        }
        KeyKind::Rsa1024 => PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap(),
        KeyKind::Rsa2048 => PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
        KeyKind::RsaPss => {
            let out = Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "rsa-pss",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .output()
                .expect("run the openssl CLI");
            assert!(out.status.success(), "openssl genpkey rsa-pss failed");
            PKey::private_key_from_pem(&out.stdout).unwrap()
        }
    }
}

/// What a certificate holds.
#[derive(Clone, Debug)]
pub struct Spec {
    pub cn: String,
    /// 1 or 3. A v1 certificate has no extensions at all (no SAN, no EKU, no CA flag).
    pub version: u8,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
    pub ca: bool,
    pub server_auth: bool,
    pub client_auth: bool,
    pub key: KeyKind,
}

impl Spec {
    pub fn v1(cn: &str) -> Spec {
        Spec {
            cn: cn.into(),
            version: 1,
            dns: Vec::new(),
            ips: Vec::new(),
            ca: false,
            server_auth: false,
            client_auth: false,
            key: KeyKind::EcP256,
        }
    }

    /// A v3 server certificate with subjectAltNames and serverAuth.
    pub fn v3_server(cn: &str, dns: &[&str], ips: &[&str], key: KeyKind) -> Spec {
        Spec {
            cn: cn.into(),
            version: 3,
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.to_string()).collect(),
            ca: false,
            server_auth: true,
            client_auth: false,
            key,
        }
    }

    pub fn key(mut self, key: KeyKind) -> Spec {
        self.key = key;
        self
    }
}

/// A CA: certificate and key, either made here or taken from an rcgen [`super::pki::Ca`].
pub struct OsslCa {
    pub issued: Issued,
    cert: X509,
    key: PKey<Private>,
}

fn serial() -> Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(120, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn build(spec: &Spec, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", &spec.cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(if spec.version == 1 { 0 } else { 2 })
        .unwrap();
    b.set_serial_number(&serial()).unwrap();
    b.set_subject_name(&name).unwrap();
    match issuer {
        Some((cert, _)) => b.set_issuer_name(cert.subject_name()).unwrap(),
        None => b.set_issuer_name(&name).unwrap(),
    }
    b.set_pubkey(key).unwrap();
    let start = Asn1Time::from_unix(now_unix() - 86_400).unwrap();
    b.set_not_before(&start).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    if spec.version == 3 {
        if spec.ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
                .unwrap();
        } else {
            b.append_extension(BasicConstraints::new().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .digital_signature()
                    .key_encipherment()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        }
        if spec.server_auth || spec.client_auth {
            let mut eku = ExtendedKeyUsage::new();
            if spec.server_auth {
                eku.server_auth();
            }
            if spec.client_auth {
                eku.client_auth();
            }
            b.append_extension(eku.build().unwrap()).unwrap();
        }
        if !spec.dns.is_empty() || !spec.ips.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for d in &spec.dns {
                san.dns(d);
            }
            for ip in &spec.ips {
                san.ip(ip);
            }
            let ctx = b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None);
            let ext = san.build(&ctx).unwrap();
            b.append_extension(ext).unwrap();
        }
    }
    let signer = issuer.map(|(_, k)| k).unwrap_or(key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn issued(cert: &X509, key: &PKey<Private>) -> Issued {
    Issued {
        cert_pem: String::from_utf8(cert.to_pem().unwrap()).unwrap(),
        key_pem: String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        cert_der: cert.to_der().unwrap(),
    }
}

impl OsslCa {
    /// A self-signed root. `version` 1 makes a v1 CA (no basicConstraints), which OpenSSL
    /// accepts as a trust anchor.
    pub fn root(cn: &str, version: u8) -> OsslCa {
        let spec = Spec {
            ca: true,
            version,
            ..Spec::v1(cn)
        };
        let key = new_key(spec.key);
        let cert = build(&spec, &key, None);
        OsslCa {
            issued: issued(&cert, &key),
            cert,
            key,
        }
    }

    /// An rcgen CA, to sign certificates rcgen cannot make.
    pub fn from_rcgen(ca: &super::pki::Ca) -> OsslCa {
        let cert = X509::from_pem(ca.issued.cert_pem.as_bytes()).unwrap();
        let key = PKey::private_key_from_pem(ca.issued.key_pem.as_bytes()).unwrap();
        OsslCa {
            issued: ca.issued.clone(),
            cert,
            key,
        }
    }

    pub fn issue(&self, spec: &Spec) -> Issued {
        let key = new_key(spec.key);
        let cert = build(spec, &key, Some((&self.cert, &self.key)));
        issued(&cert, &key)
    }

    /// The name OpenSSL's hashed-directory lookup uses for this CA's CRLs
    /// (`openssl rehash`): the subject-name hash, in hex, then `.r0`.
    pub fn crl_hash_name(&self) -> String {
        format!("{:08x}.r0", self.cert.subject_name_hash())
    }
}
