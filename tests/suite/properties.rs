//! Property tests for the parsers that read untrusted input: the wire codec (bytes from
//! whatever answers on the port), connection strings (the user's TARGET), and certificates
//! (PEM files and DER from the server). The first property of each is "never panics"; the
//! others pin down the framing bounds and the conninfo quoting round trip.
//!
//! Case counts are kept modest so the whole file runs in a few seconds in a debug build;
//! the cargo-fuzz targets under `fuzz/` are the long-running counterpart.

use std::net::IpAddr;
use std::sync::OnceLock;

use pgtls_doctor::conninfo::{self, KEYWORDS};
use pgtls_doctor::trust::pem_certificates;
use pgtls_doctor::wire::{self, WireError, MAX_MESSAGE_LEN};
use pgtls_doctor::x509::{self, CertSummary};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `cases` per property, unless `PROPTEST_CASES` asks for more (or fewer) for a deeper run:
/// `PROPTEST_CASES=100000 cargo test --release --test properties`.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// One backend message on the wire: tag, i32 length (body + 4), body.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Tags the doctor parses specially, plus any other byte.
fn tag() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(&b"REDNSKZvTCDX"[..]),
        1 => any::<u8>(),
    ]
}

/// A body shaped like what its tag promises often enough to reach the inner parsers.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Authentication: a plausible code then anything.
        (0i32..14, bytes(64)).prop_map(|(code, rest)| {
            let mut b = code.to_be_bytes().to_vec();
            b.extend_from_slice(&rest);
            b
        }),
        // DataRow: a column count, then (length, bytes) pairs that may lie.
        (
            -2i16..6,
            proptest::collection::vec((-2i32..40, bytes(40)), 0..6)
        )
            .prop_map(|(count, cols)| {
                let mut b = count.to_be_bytes().to_vec();
                for (len, data) in cols {
                    b.extend_from_slice(&len.to_be_bytes());
                    b.extend_from_slice(&data);
                }
                b
            }),
        // Error/notice fields: (kind, text) pairs, NUL-terminated or not.
        proptest::collection::vec((any::<u8>(), bytes(24), any::<bool>()), 0..8).prop_map(
            |fields| {
                let mut b = Vec::new();
                for (kind, text, nul) in fields {
                    b.push(kind);
                    b.extend_from_slice(&text);
                    if nul {
                        b.push(0);
                    }
                }
                b
            }
        ),
        bytes(128),
    ]
}

/// Walks a buffer as the probe does: split a frame, parse it, move on; stops at the first
/// incomplete frame or framing error. Checks the framing invariants on every frame.
fn walk_stream(buf: &[u8]) -> Result<usize, TestCaseError> {
    let mut rest = buf;
    let mut frames = 0;
    loop {
        match wire::split_message(rest) {
            Ok(Some(f)) => {
                prop_assert!(
                    f.len <= rest.len(),
                    "frame len {} > buffer {}",
                    f.len,
                    rest.len()
                );
                prop_assert!(f.len >= 5);
                prop_assert_eq!(f.body.len() + 5, f.len);
                prop_assert!(f.body.len() <= MAX_MESSAGE_LEN);
                prop_assert_eq!(f.tag, rest[0]);
                prop_assert_eq!(f.body, &rest[5..f.len]);
                let _ = wire::parse_backend(f.tag, f.body);
                rest = &rest[f.len..];
                frames += 1;
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
    Ok(frames)
}

/// Standard base64 with padding, wrapped at 64 columns as PEM is.
fn base64_pem_body(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut flat = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                flat.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                flat.push('=');
            }
        }
    }
    let mut out = String::new();
    for line in flat.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out
}

fn pem_wrap(label: &str, inner: &str) -> String {
    format!("-----BEGIN {label}-----\n{inner}-----END {label}-----\n")
}

/// A real certificate with every extension `summarize` reads (SAN DNS + IP, EKU, key usage,
/// basic constraints), generated once; the mutation properties start from it.
fn sample_cert_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose, SanType,
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let mut params = CertificateParams::new(vec!["db.example.test".to_string()])
            .expect("certificate params");
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .subject_alt_names
            .push(SanType::IpAddress("::1".parse().unwrap()));
        params
            .distinguished_name
            .push(DnType::CommonName, "db.example.test");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.self_signed(&key).expect("self-sign").der().to_vec()
    })
}

/// Flip, overwrite, insert or truncate a few bytes of `der`.
fn mutate(der: &[u8], edits: &[(usize, u8, u8)], truncate: Option<usize>) -> Vec<u8> {
    let mut out = der.to_vec();
    for &(pos, op, val) in edits {
        if out.is_empty() {
            break;
        }
        let at = pos % out.len();
        match op % 4 {
            0 => out[at] ^= 1 << (val % 8),
            1 => out[at] = val,
            2 => out.insert(at, val),
            _ => {
                out.remove(at);
            }
        }
    }
    if let Some(t) = truncate {
        out.truncate(t % (out.len() + 1));
    }
    out
}

fn summary_strategy() -> impl Strategy<Value = CertSummary> {
    let name = || {
        prop_oneof![
            any::<String>(),
            "(\\*\\.)?[a-zA-Z0-9.\\-]{0,20}",
            "[0-9.]{1,16}",
        ]
    };
    (
        proptest::option::of(name()),
        proptest::collection::vec(name(), 0..4),
        proptest::collection::vec(
            prop_oneof![
                any::<[u8; 4]>().prop_map(IpAddr::from),
                any::<[u8; 16]>().prop_map(IpAddr::from),
            ],
            0..3,
        ),
    )
        .prop_map(|(common_name, dns_names, ip_addresses)| CertSummary {
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            not_before: 0,
            not_after: 0,
            common_name,
            dns_names,
            ip_addresses,
            is_ca: false,
            self_issued: false,
            version: 3,
            key: String::new(),
            key_bits: 0,
            signature_algorithm: String::new(),
            sha256: String::new(),
            extended_key_usage: None,
            key_usage: None,
        })
}

/// Host names as users type them, IP literals in libpq's inet_aton forms included.
fn host_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9.\\-*]{0,24}",
        "(0x[0-9a-fA-F]{0,9}|0[0-7]{0,12}|[0-9]{0,11}|\\+[0-9]{0,3})(\\.(0x[0-9a-fA-F]{0,4}|0[0-7]{0,5}|[0-9]{0,11})){0,4}",
        "[0-9a-fA-F:.]{0,40}",
    ]
}

// ---------------------------------------------------------------------------------------
// (a) The wire codec
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn wire_functions_never_panic_on_arbitrary_bytes(buf in bytes(2048), tag in any::<u8>()) {
        let _ = wire::split_message(&buf);
        let _ = wire::parse_backend(tag, &buf);
        let _ = wire::parse_error_fields(&buf);
        let _ = wire::parse_pre_tls_error(&buf);
        let _ = wire::identify_foreign_peer(&buf);
    }

    #[test]
    fn every_tag_parses_any_shaped_body_without_panic(tag in tag(), body in body()) {
        let _ = wire::parse_backend(tag, &body);
        let _ = wire::parse_error_fields(&body);
        // parse_pre_tls_error gets the bytes after the 'E': a v3 length then fields.
        let mut v3 = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        v3.extend_from_slice(&body);
        let _ = wire::parse_pre_tls_error(&v3);
        let _ = wire::parse_pre_tls_error(&body);
    }

    #[test]
    fn a_stream_of_arbitrary_bytes_splits_and_parses_without_panic(buf in bytes(4096)) {
        walk_stream(&buf)?;
    }

    #[test]
    fn a_stream_of_well_formed_frames_splits_back_into_the_same_frames(
        frames in proptest::collection::vec((tag(), body()), 0..12),
        tail in bytes(16),
    ) {
        let mut buf = Vec::new();
        for (t, b) in &frames {
            buf.extend_from_slice(&frame(*t, b));
        }
        buf.extend_from_slice(&tail);
        let mut rest = &buf[..];
        for (t, b) in &frames {
            let f = wire::split_message(rest)
                .expect("a well-formed frame is not an error")
                .expect("a complete frame is returned");
            prop_assert_eq!(f.tag, *t);
            prop_assert_eq!(f.body, &b[..]);
            prop_assert_eq!(f.len, b.len() + 5);
            let _ = wire::parse_backend(f.tag, f.body);
            rest = &rest[f.len..];
        }
        // Whatever follows the frames walks with the same invariants.
        walk_stream(rest)?;
    }

    #[test]
    fn a_truncated_frame_is_incomplete_not_an_error(
        t in tag(),
        b in body(),
        cut in any::<prop::sample::Index>(),
    ) {
        let full = frame(t, &b);
        let short = &full[..cut.index(full.len())];
        prop_assert_eq!(wire::split_message(short), Ok(None));
    }

    #[test]
    fn the_length_field_decides_the_error(
        t in any::<u8>(),
        len in prop_oneof![
            any::<i32>(),
            (MAX_MESSAGE_LEN as i32 + 1)..=i32::MAX,
            i32::MIN..4,
            (MAX_MESSAGE_LEN as i32 - 4)..(MAX_MESSAGE_LEN as i32 + 4),
        ],
        tail in bytes(64),
    ) {
        let mut buf = vec![t];
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&tail);
        let got = wire::split_message(&buf);
        if len < 4 {
            prop_assert_eq!(got, Err(WireError::LengthTooSmall { tag: t, len: i64::from(len) }));
        } else if len as usize > MAX_MESSAGE_LEN {
            // More than 1 MiB is refused from the header alone, whatever follows.
            prop_assert_eq!(got, Err(WireError::LengthTooLarge { tag: t, len: i64::from(len) }));
        } else if buf.len() < 1 + len as usize {
            prop_assert_eq!(got, Ok(None));
        } else {
            let f = got.expect("valid length").expect("complete frame");
            prop_assert_eq!(f.len, 1 + len as usize);
            prop_assert!(f.len <= buf.len());
        }
    }

    #[test]
    fn identify_foreign_peer_depends_only_on_the_first_bytes(
        head in prop::sample::select(vec![
            &b"SSH-2.0-x"[..],
            &b"HTTP/1.1 "[..],
            &b"\x15\x03"[..],
            &b"\x16\x03"[..],
            &b"-ERR"[..],
            &b"+OK"[..],
            &b"220 "[..],
        ]),
        tail in bytes(64),
    ) {
        let mut buf = head.to_vec();
        buf.extend_from_slice(&tail);
        prop_assert!(wire::identify_foreign_peer(&buf).is_some());
        prop_assert_eq!(wire::identify_foreign_peer(&buf), wire::identify_foreign_peer(head));
    }
}

// ---------------------------------------------------------------------------------------
// (b) Connection strings
// ---------------------------------------------------------------------------------------

/// Strings made mostly of the characters the three syntaxes give meaning to.
fn conninfo_ish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z_= '\\\\\t\n]{0,64}",
        "(postgresql|postgres)://[a-zA-Z0-9%@:/\\[\\],?&=._\\-]{0,64}",
        "(postgresql|postgres)://(%[0-9a-fA-F+\\-]{0,2}|[\\[\\]@:/,?&=a-z\u{e9}\u{1F600}]){0,24}",
        "\\[?[0-9a-fA-F:]{0,20}\\]?(:[0-9]{0,6})?",
    ]
}

/// libpq conninfo with every value single-quoted, `\` and `'` escaped by a backslash.
fn print_conninfo(pairs: &[(String, String)], sep: &str) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut quoted = String::with_capacity(v.len() + 2);
            quoted.push('\'');
            for c in v.chars() {
                if c == '\\' || c == '\'' {
                    quoted.push('\\');
                }
                quoted.push(c);
            }
            quoted.push('\'');
            format!("{k}{sep}{quoted}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn conninfo_parsers_never_panic(s in conninfo_ish()) {
        let _ = conninfo::parse_target(&s);
        let _ = conninfo::parse_conninfo(&s);
        let _ = conninfo::parse_uri(&s);
    }

    #[test]
    fn quoted_conninfo_round_trips(
        pairs in proptest::collection::vec(
            (
                prop::sample::select(KEYWORDS),
                prop_oneof![
                    any::<String>(),
                    "[ '\\\\=a-z\t]{0,16}",
                ],
            ),
            0..8,
        ),
        sep in prop::sample::select(vec!["=", " = ", "= ", "\t=\t"]),
    ) {
        let pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let text = print_conninfo(&pairs, sep);
        let parsed = conninfo::parse_conninfo(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&pairs), "conninfo text: {:?}", text);
        // parse_target takes the same text as conninfo whenever it has an '='.
        if !pairs.is_empty() {
            let target = conninfo::parse_target(&text).map(|(_, p)| p);
            prop_assert_eq!(target.as_ref(), Ok(&pairs), "target text: {:?}", text);
        }
    }
}

// ---------------------------------------------------------------------------------------
// (c) Certificates
// ---------------------------------------------------------------------------------------

/// Base64-ish text: valid base64 of random bytes, or random characters from the alphabet
/// (with stray padding, blanks and line breaks).
fn base64_inner() -> impl Strategy<Value = String> {
    prop_oneof![
        bytes(600).prop_map(|b| base64_pem_body(&b)),
        "[A-Za-z0-9+/=\n \r]{0,400}",
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn certificate_parsers_never_panic_on_arbitrary_bytes(buf in bytes(2048)) {
        let _ = pem_certificates(&buf);
        if let Ok(summary) = x509::summarize(&buf) {
            let _ = x509::host_matches(&summary, "db.example.test");
        }
        let _ = x509::tls_server_end_point(&buf);
    }

    #[test]
    fn pem_with_random_base64_never_panics(
        label in prop::sample::select(vec![
            "CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CRL", "PRIVATE KEY", "",
        ]),
        inner in base64_inner(),
        before in "[ -~\n]{0,16}",
        after in "[ -~\n]{0,16}",
        unterminated in any::<bool>(),
    ) {
        let mut text = format!("{before}{}{after}", pem_wrap(label, &inner));
        if unterminated {
            text.truncate(text.rfind("-----END").unwrap_or(text.len()));
        }
        let _ = pem_certificates(text.as_bytes());
    }

    #[test]
    fn mutated_certificates_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
        truncate in proptest::option::of(any::<usize>()),
        host in host_strategy(),
    ) {
        let der = mutate(sample_cert_der(), &edits, truncate);
        if let Ok(summary) = x509::summarize(&der) {
            let _ = x509::host_matches(&summary, &host);
            let _ = x509::presented_names(&summary);
        }
        let pem = pem_wrap("CERTIFICATE", &base64_pem_body(&der));
        if let Ok(certs) = pem_certificates(pem.as_bytes()) {
            for c in certs {
                let _ = x509::summarize(&c);
            }
        }
    }

    #[test]
    fn host_matches_never_panics(cert in summary_strategy(), host in host_strategy()) {
        let _ = x509::host_matches(&cert, &host);
    }

    #[test]
    fn a_dns_san_matches_itself_in_any_ascii_case(name in "(\\*\\.)?[a-zA-Z0-9\\-]{1,10}(\\.[a-zA-Z0-9\\-]{1,10}){0,3}") {
        let mut cert = x509::summarize(sample_cert_der()).expect("sample certificate parses");
        cert.dns_names = vec![name.clone()];
        prop_assert!(x509::host_matches(&cert, &name));
        prop_assert!(x509::host_matches(&cert, &name.to_ascii_uppercase()));
    }
}

#[test]
fn the_sample_certificate_round_trips_through_pem_and_summarize() {
    let der = sample_cert_der();
    let pem = pem_wrap("CERTIFICATE", &base64_pem_body(der));
    let certs = pem_certificates(pem.as_bytes()).expect("PEM parses");
    assert_eq!(certs, vec![der.to_vec()]);
    let s = x509::summarize(der).expect("DER parses");
    assert_eq!(s.dns_names, vec!["db.example.test".to_string()]);
    assert_eq!(s.ip_addresses.len(), 2);
    assert!(s.is_ca);
    assert!(x509::host_matches(&s, "db.example.test"));
    assert!(x509::host_matches(&s, "127.0.0.1"));
    assert!(x509::host_matches(&s, "127.1"));
}
