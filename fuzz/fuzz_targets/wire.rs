//! Bytes from whatever answers on the port: split them into backend messages and parse each
//! one, as the probe does, then hand the same bytes to the other wire parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::wire::{self, WireError, MAX_MESSAGE_LEN};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        if rest.len() >= 5 {
            let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
            if len >= 4 && len as usize > MAX_MESSAGE_LEN {
                assert!(matches!(
                    wire::split_message(rest),
                    Err(WireError::LengthTooLarge { .. })
                ));
            }
        }
        match wire::split_message(rest) {
            Ok(Some(frame)) => {
                assert!(frame.len <= rest.len(), "frame longer than the buffer");
                assert_eq!(frame.body.len() + 5, frame.len);
                let _ = wire::parse_backend(frame.tag, frame.body);
                rest = &rest[frame.len..];
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Some((&tag, body)) = data.split_first() {
        let _ = wire::parse_backend(tag, body);
    }
    let _ = wire::parse_error_fields(data);
    let _ = wire::parse_pre_tls_error(data);
    let _ = wire::identify_foreign_peer(data);
    // libpq's pre-3.0 rule during the startup: what it takes lies within the buffer.
    if let wire::PreV3Error::Complete { text, used } = wire::split_pre_v3_error(data) {
        assert!(used <= data.len(), "pre-3.0 error longer than the buffer");
        assert!(text.len() <= 3 * wire::MAX_ERRLEN as usize, "pre-3.0 text past its limit");
    }
});
