//! Certificate facts (names, dates, keys) read from DER, and libpq's host-name rules.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

/// What a certificate says, in the terms findings need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub is_ca: bool,
    pub self_issued: bool,
    /// X.509 version as written on certificates (1 or 3).
    pub version: u32,
    pub key: String,
    pub key_bits: u32,
    pub signature_algorithm: String,
    pub sha256: String,
    /// Extended key usages, or None when the extension is absent.
    pub extended_key_usage: Option<Vec<String>>,
    /// Key usages, or None when the extension is absent.
    pub key_usage: Option<Vec<String>>,
}

/// Bytes that do not parse as an X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a DER certificate: {reason}")]
pub struct NotACertificate {
    pub reason: String,
}

pub fn summarize(der: &[u8]) -> Result<CertSummary, NotACertificate> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| NotACertificate {
        reason: e.to_string(),
    })?;
    let tbs = &cert.tbs_certificate;
    let common_name = tbs.subject().iter_common_name().next().map(|cn| {
        cn.as_str()
            .map(str::to_string)
            .unwrap_or_else(|_| String::from_utf8_lossy(cn.as_slice()).into_owned())
    });
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = tbs.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns_names.push(n.to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => ip_addresses.push(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(bytes);
                        ip_addresses.push(IpAddr::from(b));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let is_ca = tbs
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let extended_key_usage = tbs.extended_key_usage().ok().flatten().map(|eku| {
        let e = eku.value;
        let mut out = Vec::new();
        if e.any {
            out.push("anyExtendedKeyUsage".to_string());
        }
        if e.server_auth {
            out.push("serverAuth".into());
        }
        if e.client_auth {
            out.push("clientAuth".into());
        }
        if e.code_signing {
            out.push("codeSigning".into());
        }
        if e.email_protection {
            out.push("emailProtection".into());
        }
        if e.time_stamping {
            out.push("timeStamping".into());
        }
        if e.ocsp_signing {
            out.push("OCSPSigning".into());
        }
        for oid in &e.other {
            out.push(oid.to_id_string());
        }
        out
    });
    let key_usage = tbs.key_usage().ok().flatten().map(|ku| {
        let k = ku.value;
        let mut out = Vec::new();
        for (set, name) in [
            (k.digital_signature(), "digitalSignature"),
            (k.non_repudiation(), "nonRepudiation"),
            (k.key_encipherment(), "keyEncipherment"),
            (k.data_encipherment(), "dataEncipherment"),
            (k.key_agreement(), "keyAgreement"),
            (k.key_cert_sign(), "keyCertSign"),
            (k.crl_sign(), "cRLSign"),
        ] {
            if set {
                out.push(name.to_string());
            }
        }
        out
    });
    let spki = tbs.public_key();
    let (key, key_bits) = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size() as u32;
            (format!("RSA {bits}"), bits)
        }
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => {
            let bits = ec.key_size() as u32;
            let curve = match bits {
                256 => "P-256",
                384 => "P-384",
                521 | 528 => "P-521",
                _ => "EC",
            };
            (format!("EC {curve}"), bits)
        }
        _ => {
            let oid = spki.algorithm.algorithm.to_id_string();
            let name = match oid.as_str() {
                "1.3.101.112" => "Ed25519".to_string(),
                "1.3.101.113" => "Ed448".to_string(),
                other => other.to_string(),
            };
            (name, 0)
        }
    };
    let signature_algorithm = signature_name(&cert.signature_algorithm.algorithm.to_id_string());
    let sha256 = openssl::sha::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertSummary {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        serial: tbs.raw_serial_as_string(),
        not_before: tbs.validity().not_before.timestamp(),
        not_after: tbs.validity().not_after.timestamp(),
        common_name,
        dns_names,
        ip_addresses,
        is_ca,
        self_issued: tbs.subject().as_raw() == tbs.issuer().as_raw(),
        version: tbs.version().0 + 1,
        key,
        key_bits,
        signature_algorithm,
        sha256,
        extended_key_usage,
        key_usage,
    })
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        other => other,
    }
    .to_string()
}

/// The hash for SCRAM's tls-server-end-point channel binding (RFC 5929): the certificate's
/// signature hash, with MD5 and SHA-1 raised to SHA-256, as PostgreSQL computes it.
pub fn tls_server_end_point(der: &[u8]) -> Vec<u8> {
    let algorithm = summarize(der)
        .map(|s| s.signature_algorithm)
        .unwrap_or_default();
    if algorithm.contains("384") {
        openssl::sha::sha384(der).to_vec()
    } else if algorithm.contains("512") {
        openssl::sha::sha512(der).to_vec()
    } else {
        openssl::sha::sha256(der).to_vec()
    }
}

/// The names libpq 15+ compares with the host, and whether one matches
/// (`pq_verify_peer_name_matches_certificate`): SAN dNSName and iPAddress; the CN only when
/// there is no SAN of the host's own type.
pub fn host_matches(cert: &CertSummary, host: &str) -> bool {
    let host_ip: Option<IpAddr> = parse_libpq_ip(host);
    if cert.dns_names.iter().any(|n| wildcard_match(n, host)) {
        return true;
    }
    if let Some(ip) = host_ip {
        if cert.ip_addresses.contains(&ip) {
            return true;
        }
    }
    let has_san_of_host_type = match host_ip {
        Some(_) => !cert.ip_addresses.is_empty(),
        None => !cert.dns_names.is_empty(),
    };
    if !has_san_of_host_type {
        if let Some(cn) = &cert.common_name {
            if !cn.contains('\0') && wildcard_match(cn, host) {
                return true;
            }
        }
    }
    false
}

/// The names libpq lists in its mismatch message: SANs first, else the CN.
pub fn presented_names(cert: &CertSummary) -> Vec<String> {
    let mut names: Vec<String> = cert.dns_names.clone();
    names.extend(cert.ip_addresses.iter().map(|ip| ip.to_string()));
    if names.is_empty() {
        names.extend(cert.common_name.clone());
    }
    names
}

/// The names libpq 15+ examines against `host`, in its order, for its mismatch message
/// ("server certificate for FIRST (and N other names)"): every SAN, then the CN when the
/// certificate has no SAN of the host's kind.
pub fn examined_names(cert: &CertSummary, host: &str) -> Vec<String> {
    let mut names: Vec<String> = cert.dns_names.clone();
    names.extend(cert.ip_addresses.iter().map(|ip| ip.to_string()));
    let cn_checked = if parse_libpq_ip(host).is_some() {
        cert.ip_addresses.is_empty()
    } else {
        cert.dns_names.is_empty()
    };
    if cn_checked {
        names.extend(cert.common_name.clone());
    }
    names
}

/// inet_aton / inet_pton: libpq accepts `127.1` as an IPv4 address.
fn parse_libpq_ip(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    // inet_aton takes digits (and 0x hex) only; the integer parsers would also take a sign.
    let well_formed = parts.iter().all(|p| {
        let digits = p
            .strip_prefix("0x")
            .or_else(|| p.strip_prefix("0X"))
            .unwrap_or(p);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit())
    });
    if !well_formed {
        return None;
    }
    let nums: Option<Vec<u64>> = parts
        .iter()
        .map(|p| {
            if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                u64::from_str_radix(hex, 16).ok()
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(p, 8).ok()
            } else {
                p.parse().ok()
            }
        })
        .collect();
    let nums = nums?;
    let (last, head) = nums.split_last()?;
    let mut value: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        if *n > 255 {
            return None;
        }
        value |= n << (24 - 8 * i);
    }
    let remaining_bits = 32 - 8 * head.len() as u32;
    if *last >= (1u64 << remaining_bits) {
        return None;
    }
    value |= last;
    Some(IpAddr::from((value as u32).to_be_bytes()))
}

/// libpq's `wildcard_certificate_match`: case-insensitive; `*.` only as the whole leftmost label.
pub fn wildcard_match(pattern: &str, host: &str) -> bool {
    if pattern.contains('\0') {
        return false;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        // '*' matches exactly one non-empty label.
        match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        }
    } else {
        pattern.eq_ignore_ascii_case(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, dns: &[&str], ips: &[&str]) -> CertSummary {
        CertSummary {
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            not_before: 0,
            not_after: 0,
            common_name: cn.map(String::from),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ip_addresses: ips.iter().map(|s| s.parse().unwrap()).collect(),
            is_ca: false,
            self_issued: false,
            version: 3,
            key: String::new(),
            key_bits: 0,
            signature_algorithm: String::new(),
            sha256: String::new(),
            extended_key_usage: None,
            key_usage: None,
        }
    }

    #[test]
    fn hostname_rules_of_libpq_15() {
        let cases: &[(CertSummary, &str, bool)] = &[
            (cert(Some("db"), &[], &[]), "db", true),
            (
                cert(Some("DB.example.com"), &[], &[]),
                "db.EXAMPLE.com",
                true,
            ),
            (
                cert(Some("bar.test"), &["foo.test"], &[]),
                "bar.test",
                false,
            ),
            (
                cert(Some("127.0.0.1"), &["foo.test"], &[]),
                "127.0.0.1",
                true,
            ),
            (cert(None, &[], &["127.0.0.1"]), "127.1", true),
            (cert(None, &[], &["0.0.0.1"]), "+1", false),
            (cert(None, &[], &["0.0.0.1"]), "0x+1", false),
            (
                cert(Some("127.0.0.1"), &[], &["10.0.0.1"]),
                "127.0.0.1",
                false,
            ),
            (cert(None, &["*.example.test"], &[]), "a.example.test", true),
            (
                cert(None, &["*.example.test"], &[]),
                "a.b.example.test",
                false,
            ),
            (cert(None, &["*.example.test"], &[]), "example.test", false),
            (cert(None, &["127.0.0.1"], &[]), "127.0.0.1", true),
            (cert(None, &[], &["::1"]), "::1", true),
            (cert(Some("a\0b"), &[], &[]), "a", false),
        ];
        for (c, host, expected) in cases {
            assert_eq!(host_matches(c, host), *expected, "{host} vs {c:?}");
        }
    }

    #[test]
    fn presented_names_prefer_sans() {
        assert_eq!(
            presented_names(&cert(Some("cn"), &["a"], &["127.0.0.1"])),
            vec!["a", "127.0.0.1"]
        );
        assert_eq!(presented_names(&cert(Some("cn"), &[], &[])), vec!["cn"]);
    }

    #[test]
    fn libpq_examines_the_cn_when_no_san_is_of_the_hosts_kind() {
        // psql: server certificate for "localhost" (and 1 other name) does not match host name "127.0.0.1"
        let c = cert(Some("localhost"), &["localhost"], &[]);
        assert_eq!(
            examined_names(&c, "127.0.0.1"),
            vec!["localhost", "localhost"]
        );
        assert_eq!(examined_names(&c, "db.example.com"), vec!["localhost"]);
        let c = cert(Some("cn"), &["a"], &["127.0.0.1"]);
        assert_eq!(examined_names(&c, "10.0.0.1"), vec!["a", "127.0.0.1"]);
    }
}
