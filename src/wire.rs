//! The PostgreSQL wire codec: builds frontend messages into buffers and parses backend
//! messages from bytes. No I/O happens here, so every parser can be tested on byte arrays
//! and fuzzed; the probe owns the sockets.

use std::fmt;

/// `NEGOTIATE_SSL_CODE` (1234 << 16 | 5679).
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Protocol 3.0.
pub const PROTOCOL_VERSION_3: i32 = 196_608;
/// Largest backend message the doctor accepts. Real servers send error messages of a few
/// hundred bytes; anything larger is hostile or not PostgreSQL.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// The 8-byte SSLRequest packet.
pub fn ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8i32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    out
}

/// A StartupMessage with the given parameters (user, database, application_name, ...).
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&PROTOCOL_VERSION_3.to_be_bytes());
    for (key, value) in params {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        // Values keep the bytes they were given (a user name from a Latin-1 passfile).
        body.extend_from_slice(&crate::untrusted::encode(value));
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// PasswordMessage carrying a cleartext or MD5 password (NUL-terminated).
pub fn password_message(password: &[u8]) -> Vec<u8> {
    let mut body = password.to_vec();
    body.push(0);
    tagged(b'p', &body)
}

/// SASLInitialResponse: mechanism name, then the length-prefixed client-first message.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(mechanism.len() + data.len() + 5);
    body.extend_from_slice(mechanism.as_bytes());
    body.push(0);
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    tagged(b'p', &body)
}

/// SASLResponse: the client-final message.
pub fn sasl_response(data: &[u8]) -> Vec<u8> {
    tagged(b'p', data)
}

/// Terminate, sent before closing so the server does not log a reset.
pub fn terminate() -> Vec<u8> {
    tagged(b'X', &[])
}

/// A simple Query message.
pub fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    tagged(b'Q', &body)
}

/// Why bytes from the server could not be read as a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The length field is below the 4 bytes it must cover.
    LengthTooSmall { tag: u8, len: i64 },
    /// The length field exceeds [`MAX_MESSAGE_LEN`].
    LengthTooLarge { tag: u8, len: i64 },
    /// A message body did not have the shape its tag promises.
    Malformed { tag: u8, what: &'static str },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::LengthTooSmall { tag, len } => write!(
                f,
                "message '{}' has length {len}, less than the 4 bytes of the length field",
                printable(*tag)
            ),
            WireError::LengthTooLarge { tag, len } => write!(
                f,
                "message '{}' announces {len} bytes, more than the {MAX_MESSAGE_LEN} accepted",
                printable(*tag)
            ),
            WireError::Malformed { tag, what } => {
                write!(f, "malformed '{}' message: {what}", printable(*tag))
            }
        }
    }
}

impl std::error::Error for WireError {}

/// A byte as a character when printable, else as `\xNN`.
pub fn printable(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        (byte as char).to_string()
    } else {
        format!("\\x{byte:02x}")
    }
}

/// One framed backend message: its tag, its body, and the bytes it took from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub tag: u8,
    pub body: &'a [u8],
    pub len: usize,
}

/// Splits one framed backend message (tag, i32 length, body) off the front of `buf`.
/// Returns `Ok(None)` while the message is incomplete, and an error as soon as the header
/// alone shows the length is impossible, so no allocation ever follows a hostile length.
pub fn split_message(buf: &[u8]) -> Result<Option<Frame<'_>>, WireError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as i64;
    if len < 4 {
        return Err(WireError::LengthTooSmall { tag, len });
    }
    if len as usize > MAX_MESSAGE_LEN {
        return Err(WireError::LengthTooLarge { tag, len });
    }
    let total = 1 + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(Frame {
        tag,
        body: &buf[5..total],
        len: total,
    }))
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The source file the server names ('F'): PostgreSQL's own (auth.c) or a pooler's.
    pub file: Option<String>,
    /// The field types present, in order ("SVCMFLR" from PostgreSQL): which software
    /// wrote the message shows in its shape (PgBouncer sends only S, C and M).
    pub tags: String,
    /// A pre-3.0 error text that came first, which is all libpq reads and shows (pgpool-II
    /// 4.3 sends an empty one before its real ErrorResponse).
    pub pre_v3_text: Option<String>,
}

/// libpq's limit on a v3 ErrorResponse while it awaits the answer to its StartupMessage
/// (MAX_ERRLEN in fe-connect.c); an 'E' with a length outside 8..=30000 is a pre-3.0 error.
pub const MAX_ERRLEN: i64 = 30_000;

/// A pre-3.0 error at the front of a buffer, as libpq reads one during the startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreV3Error {
    /// The buffer does not start with one.
    NotOne,
    /// It may (an 'E' without its length yet), or it does and its NUL has not arrived.
    Incomplete,
    /// Its text (lossy UTF-8, at most MAX_ERRLEN bytes) and the bytes it took.
    Complete { text: String, used: usize },
}

/// Applies libpq's rule: 'E' with a length below 8 or above [`MAX_ERRLEN`] is the tag of a
/// NUL-terminated text. Bounded: text beyond MAX_ERRLEN bytes without a NUL ends there.
/// Taken only in the two shapes real peers send, so a hostile length stays a protocol
/// error: a text that starts with a letter (the postmaster's `could not fork new process`),
/// or an empty text with a v3 ErrorResponse right behind it (pgpool-II 4.3).
pub fn split_pre_v3_error(buf: &[u8]) -> PreV3Error {
    match buf.first() {
        Some(b'E') => {}
        _ => return PreV3Error::NotOne,
    }
    match buf.get(1) {
        None => return PreV3Error::Incomplete,
        Some(b) if b.is_ascii_alphabetic() => {}
        Some(0) => {
            if buf.len() < 5 {
                return PreV3Error::Incomplete;
            }
            let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as i64;
            if (8..=MAX_ERRLEN).contains(&len) {
                return PreV3Error::NotOne;
            }
            return match split_message(&buf[2..]) {
                Ok(Some(frame)) if frame.tag == b'E' => PreV3Error::Complete {
                    text: String::new(),
                    used: 2,
                },
                Ok(None) if buf[2] == b'E' => PreV3Error::Incomplete,
                _ => PreV3Error::NotOne,
            };
        }
        Some(_) => return PreV3Error::NotOne,
    }
    let limit = MAX_ERRLEN as usize;
    match buf[1..].iter().take(limit).position(|b| *b == 0) {
        Some(end) => PreV3Error::Complete {
            text: lossy(&buf[1..1 + end]).trim_end().to_string(),
            used: end + 2,
        },
        None if buf.len() > limit => PreV3Error::Complete {
            text: lossy(&buf[1..1 + limit]).trim_end().to_string(),
            used: buf.len(),
        },
        None => PreV3Error::Incomplete,
    }
}

/// The SQLSTATE codes the doctor tells apart, named as in PostgreSQL's errcodes.txt.
pub mod sqlstate {
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    pub const CONFIG_FILE_ERROR: &str = "F0000";
}

/// Authentication requests the doctor understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    Cleartext,
    Md5 {
        salt: [u8; 4],
    },
    Sasl {
        mechanisms: Vec<String>,
    },
    SaslContinue {
        data: Vec<u8>,
    },
    SaslFinal {
        data: Vec<u8>,
    },
    /// GSS, SSPI, Kerberos and others the doctor cannot complete.
    Other {
        code: i32,
    },
}

impl AuthRequest {
    /// The method name as pg_hba.conf and users call it.
    pub fn method_name(&self) -> String {
        match self {
            AuthRequest::Ok => "trust".into(),
            AuthRequest::Cleartext => "password".into(),
            AuthRequest::Md5 { .. } => "md5".into(),
            AuthRequest::Sasl { mechanisms } => format!("SASL ({})", mechanisms.join(", ")),
            AuthRequest::SaslContinue { .. } | AuthRequest::SaslFinal { .. } => "SASL".into(),
            AuthRequest::Other { code: 7 } => "gss".into(),
            AuthRequest::Other { code: 9 } => "sspi".into(),
            AuthRequest::Other { code } => format!("authentication request {code}"),
        }
    }
}

/// A backend message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    Authentication(AuthRequest),
    Error(ErrorFields),
    Notice(ErrorFields),
    ParameterStatus { name: String, value: String },
    BackendKeyData,
    ReadyForQuery,
    NegotiateProtocolVersion,
    RowDescription,
    DataRow(Vec<Option<String>>),
    CommandComplete,
    Other(u8),
}

/// The iteration count of a SCRAM server-first message (`r=...,s=...,i=4096`), when it is a
/// positive integer as libpq requires.
pub fn scram_iterations(server_first: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(server_first).ok()?;
    let value = text.split(',').find_map(|attr| attr.strip_prefix("i="))?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u32>().ok().filter(|i| *i >= 1)
}

/// Parses the body of a message whose tag and body [`split_message`] returned.
pub fn parse_backend(tag: u8, body: &[u8]) -> Result<BackendMessage, WireError> {
    Ok(match tag {
        b'R' => BackendMessage::Authentication(parse_auth(body)?),
        b'E' => BackendMessage::Error(parse_error_fields(body)),
        b'N' => BackendMessage::Notice(parse_error_fields(body)),
        b'S' => {
            let mut parts = body.split(|b| *b == 0);
            let name = lossy(parts.next().unwrap_or_default());
            let value = lossy(parts.next().unwrap_or_default());
            BackendMessage::ParameterStatus { name, value }
        }
        b'K' => BackendMessage::BackendKeyData,
        b'Z' => BackendMessage::ReadyForQuery,
        b'v' => BackendMessage::NegotiateProtocolVersion,
        b'T' => BackendMessage::RowDescription,
        b'D' => BackendMessage::DataRow(parse_data_row(body)?),
        b'C' => BackendMessage::CommandComplete,
        other => BackendMessage::Other(other),
    })
}

fn read_i32(body: &[u8], at: usize, tag: u8, what: &'static str) -> Result<i32, WireError> {
    body.get(at..at + 4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(WireError::Malformed { tag, what })
}

fn parse_auth(body: &[u8]) -> Result<AuthRequest, WireError> {
    let code = read_i32(body, 0, b'R', "authentication code missing")?;
    let rest = &body[4..];
    Ok(match code {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let salt = rest.get(..4).ok_or(WireError::Malformed {
                tag: b'R',
                what: "MD5 salt missing",
            })?;
            AuthRequest::Md5 {
                salt: [salt[0], salt[1], salt[2], salt[3]],
            }
        }
        10 => AuthRequest::Sasl {
            mechanisms: rest
                .split(|b| *b == 0)
                .filter(|m| !m.is_empty())
                .map(lossy)
                .collect(),
        },
        11 => AuthRequest::SaslContinue {
            data: rest.to_vec(),
        },
        12 => AuthRequest::SaslFinal {
            data: rest.to_vec(),
        },
        other => AuthRequest::Other { code: other },
    })
}

/// The ErrorResponse at the start of `bytes`, if they begin with one (a pooler's answer to
/// a ClientHello). A truncated one still yields the fields received.
pub fn plaintext_error(bytes: &[u8]) -> Option<ErrorFields> {
    let (&tag, rest) = bytes.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    if tag != b'E' || !(5..=64 << 10).contains(&len) {
        return None;
    }
    let body = rest.get(4..len.min(rest.len()))?;
    Some(parse_error_fields(body))
}

/// Parses ErrorResponse/NoticeResponse fields. Tolerant by design: a missing terminator or
/// invalid UTF-8 still yields whatever the server said, since that is the evidence.
pub fn parse_error_fields(body: &[u8]) -> ErrorFields {
    let mut fields = ErrorFields::default();
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        let value = lossy(&tail[..end]);
        if fields.tags.len() < 32 {
            fields.tags.push(char::from(kind));
        }
        match kind {
            // 'V' is the untranslated severity (9.6+); prefer it over the localized 'S'.
            b'V' => fields.severity = value,
            b'S' if fields.severity.is_empty() => fields.severity = value,
            b'C' => fields.code = value,
            b'M' => fields.message = value,
            b'D' => fields.detail = Some(value),
            b'H' => fields.hint = Some(value),
            b'F' => fields.file = Some(value),
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    fields
}

fn parse_data_row(body: &[u8]) -> Result<Vec<Option<String>>, WireError> {
    let malformed = WireError::Malformed {
        tag: b'D',
        what: "column length runs past the message",
    };
    let count = body
        .get(..2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or(malformed.clone())?;
    let mut at = 2;
    let mut columns = Vec::new();
    for _ in 0..count.max(0) {
        let len = read_i32(body, at, b'D', "column length missing")?;
        at += 4;
        if len < 0 {
            columns.push(None);
            continue;
        }
        let value = body.get(at..at + len as usize).ok_or(malformed.clone())?;
        columns.push(Some(lossy(value)));
        at += len as usize;
    }
    Ok(columns)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the first bytes of an unexpected reply identify, so a wrong port is named rather
/// than reported as a protocol error.
pub fn identify_foreign_peer(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"SSH-") {
        Some("an SSH server")
    } else if bytes.starts_with(b"HTTP/") {
        Some("an HTTP server")
    } else if bytes.first() == Some(&0x15) && bytes.get(1) == Some(&0x03) {
        Some("a TLS server that expects a ClientHello at once (direct TLS)")
    } else if bytes.first() == Some(&0x16) && bytes.get(1) == Some(&0x03) {
        Some("a TLS server")
    } else if bytes.starts_with(b"-ERR") || bytes.starts_with(b"+OK") {
        Some("a Redis or POP3 server")
    } else if bytes.starts_with(b"220") {
        Some("an SMTP or FTP server")
    } else {
        None
    }
}

/// The v2-style text the postmaster writes on fork failure (`E` + text + NUL), or the v3
/// ErrorResponse a server may send instead. `bytes` starts after the `E`.
pub fn parse_pre_tls_error(bytes: &[u8]) -> String {
    // A v3 ErrorResponse has a 4-byte length whose high byte is 0; v2 text starts with a letter.
    if bytes.len() >= 5 && bytes[0] == 0 {
        // `bytes` starts after the tag, at the length field, which counts itself.
        let len = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let end = len.min(bytes.len());
        let body = bytes.get(4..end).unwrap_or_default();
        let fields = parse_error_fields(body);
        if !fields.message.is_empty() {
            return format!("{}: {}", fields.severity, fields.message);
        }
    }
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    lossy(&bytes[..end]).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_request_is_the_eight_documented_bytes() {
        assert_eq!(
            ssl_request(),
            [
                0x00, 0x00, 0x00, 0x08, // length 8
                0x04, 0xd2, 0x16, 0x2f, // 1234 << 16 | 5679
            ]
        );
    }

    #[test]
    fn scram_iteration_counts() {
        assert_eq!(scram_iterations(b"r=abc,s=c2FsdA==,i=4096"), Some(4096));
        for bad in [
            &b"r=abc,s=c2FsdA==,i=0"[..],
            b"r=abc,s=c2FsdA==,i=-1",
            b"r=abc,s=c2FsdA==,i=",
            b"r=abc,s=c2FsdA==",
            b"r=abc,s=c2FsdA==,i=99999999999",
            b"r=abc,s=c2FsdA==,i=4k",
        ] {
            assert_eq!(scram_iterations(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn startup_message_is_length_prefixed_and_double_terminated() {
        let msg = startup_message(&[("user", "bob")]);
        assert_eq!(
            msg,
            [
                0, 0, 0, 18, // length
                0, 3, 0, 0, // protocol 3.0
                b'u', b's', b'e', b'r', 0, // key
                b'b', b'o', b'b', 0, // value
                0, // end of parameters
            ]
        );
    }

    #[test]
    fn split_rejects_hostile_lengths_before_reading_the_body() {
        let huge = [b'E', 0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            split_message(&huge),
            Err(WireError::LengthTooLarge { .. })
        ));
        let tiny = [b'E', 0, 0, 0, 2];
        assert!(matches!(
            split_message(&tiny),
            Err(WireError::LengthTooSmall { len: 2, .. })
        ));
        let incomplete = [b'E', 0, 0, 0, 9, b'S'];
        assert_eq!(split_message(&incomplete), Ok(None));
    }

    #[test]
    fn error_response_fields() {
        let body = b"SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0\0";
        let mut frame = vec![b'E'];
        frame.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        frame.extend_from_slice(body);
        let parsed = split_message(&frame).unwrap().unwrap();
        assert_eq!(parsed.len, frame.len());
        let BackendMessage::Error(fields) = parse_backend(parsed.tag, parsed.body).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(fields.code, "28000");
        assert_eq!(fields.severity, "FATAL");
        assert_eq!(fields.message, "no pg_hba.conf entry");
    }

    #[test]
    fn error_fields_survive_missing_terminator_and_bad_utf8() {
        let fields = parse_error_fields(b"C28P01\0M\xff\xfe broken");
        assert_eq!(fields.code, "28P01");
        assert!(fields.message.ends_with("broken"));
    }

    #[test]
    fn auth_requests() {
        let sasl = parse_auth(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0").unwrap();
        assert_eq!(
            sasl,
            AuthRequest::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]
            }
        );
        assert_eq!(
            parse_auth(b"\0\0\0\x05abcd").unwrap(),
            AuthRequest::Md5 { salt: *b"abcd" }
        );
        assert!(parse_auth(b"\0\0\0\x05ab").is_err());
        assert!(parse_auth(b"\0\0").is_err());
    }

    #[test]
    fn data_row_bounds_are_checked() {
        assert_eq!(
            parse_data_row(b"\0\x02\0\0\0\x01t\xff\xff\xff\xff").unwrap(),
            vec![Some("t".into()), None]
        );
        assert!(parse_data_row(b"\0\x01\0\0\0\x09t").is_err());
    }

    #[test]
    fn foreign_peers_are_named() {
        assert_eq!(
            identify_foreign_peer(b"SSH-2.0-OpenSSH_9.2"),
            Some("an SSH server")
        );
        assert_eq!(
            identify_foreign_peer(b"HTTP/1.1 400 Bad"),
            Some("an HTTP server")
        );
        assert!(identify_foreign_peer(&[0x15, 0x03, 0x01, 0x00, 0x02]).is_some());
        assert_eq!(identify_foreign_peer(b"garbage"), None);
    }

    #[test]
    fn a_pre_v3_error_during_the_startup_is_read_as_libpq_reads_it() {
        // pgpool-II 4.3: an empty pre-3.0 error, then its real ErrorResponse.
        let mut bytes = b"E\0".to_vec();
        bytes.extend_from_slice(&[b'E', 0, 0, 0, 8, b'M', b'x', 0, 0]);
        assert_eq!(
            split_pre_v3_error(&bytes),
            PreV3Error::Complete {
                text: String::new(),
                used: 2
            }
        );
        assert_eq!(split_pre_v3_error(&bytes[2..]), PreV3Error::NotOne);
        assert_eq!(split_pre_v3_error(b"Eno NUL yet"), PreV3Error::Incomplete);
        // The 'E' alone, its length not read yet: wait for it (pgpool-II writes "E\0" apart).
        assert_eq!(split_pre_v3_error(b"E\0"), PreV3Error::Incomplete);
        assert_eq!(split_pre_v3_error(b"E"), PreV3Error::Incomplete);
        assert_eq!(split_pre_v3_error(b""), PreV3Error::NotOne);
        // The postmaster's fork failure text.
        assert!(matches!(
            split_pre_v3_error(b"Ecould not fork new process for connection\0"),
            PreV3Error::Complete { text, .. } if text.starts_with("could not fork")
        ));
        // Hostile lengths are not text: the framing refuses them.
        for hostile in [
            &[b'E', 0x7f, 0xff, 0xff, 0xff][..],
            &[b'E', 0, 0, 0, 2],
            &[b'E', 0, 0x10, 0, 0x1d, b'S'],
        ] {
            assert_eq!(
                split_pre_v3_error(hostile),
                PreV3Error::NotOne,
                "{hostile:?}"
            );
        }
        // No NUL within libpq's limit: the text ends there, nothing is held beyond it.
        let mut long = b"E".to_vec();
        long.extend(std::iter::repeat_n(b'a', 40_000));
        assert!(matches!(
            split_pre_v3_error(&long),
            PreV3Error::Complete { text, used } if text.len() == 30_000 && used == long.len()
        ));
    }

    #[test]
    fn pre_tls_error_v2_and_v3() {
        assert_eq!(
            parse_pre_tls_error(b"could not fork new process for connection: x\n\0"),
            "could not fork new process for connection: x"
        );
        let body = b"SFATAL\0C53300\0Msorry, too many clients already\0\0";
        let mut v3 = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        v3.extend_from_slice(body);
        assert_eq!(
            parse_pre_tls_error(&v3),
            "FATAL: sorry, too many clients already"
        );
        // Whatever follows the message is not part of it.
        v3.extend_from_slice(b"Mtrailing");
        assert_eq!(
            parse_pre_tls_error(&v3),
            "FATAL: sorry, too many clients already"
        );
    }
}
