//! Property tests for the pg_hba.conf/pg_ident.conf parser, evaluator and lint: no panic on
//! any text, and a print-parse round trip for well-formed rules.

use std::path::Path;

use pgtls_doctor::hba::{self, matcher};
use proptest::prelude::*;

fn conn(ssl: bool) -> matcher::Connection {
    matcher::Connection {
        local: false,
        ssl,
        client_ip: Some("10.1.2.3".parse().unwrap()),
        server_ip: Some("10.1.2.1".parse().unwrap()),
        user: "alice".into(),
        database: "app".into(),
        replication: false,
    }
}

/// Tokens from the grammar's alphabet, so random lines reach deep into the parser.
fn hba_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("host".to_string()),
        Just("hostssl".to_string()),
        Just("hostnossl".to_string()),
        Just("local".to_string()),
        Just("all".to_string()),
        Just("\"all\"".to_string()),
        Just("+admins".to_string()),
        Just("/^a.*$".to_string()),
        Just("/((".to_string()),
        Just("samehost".to_string()),
        Just("127.0.0.1/32".to_string()),
        Just("10.0.0.0".to_string()),
        Just("255.255.0.0".to_string()),
        Just("::1/128".to_string()),
        Just("cert".to_string()),
        Just("trust".to_string()),
        Just("scram-sha-256".to_string()),
        Just("clientcert=verify-full".to_string()),
        Just("clientcert=1".to_string()),
        Just("map=m".to_string()),
        Just("#".to_string()),
        Just("\\".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        "[a-z0-9_./=,\"#@+-]{0,12}",
    ]
}

fn hba_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::collection::vec(hba_token(), 0..8).prop_map(|t| t.join(" ")),
        0..6,
    )
    .prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_grammar_shaped_text(text in hba_text()) {
        for version in [13, 15, 16, 17] {
            let file = hba::parse_hba(&text, Path::new("/nonexistent/pg_hba.conf"), version);
            for ssl in [false, true] {
                let _ = matcher::decide(&file.rules, &conn(ssl));
                let _ = matcher::near_misses(&file.rules, &conn(ssl));
            }
            let ident = hba::parse_ident(&text, Path::new("/nonexistent/pg_ident.conf"));
            let _ = hba::lint::lint(&file, Some(&ident), None, version);
        }
    }

    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,200}") {
        let file = hba::parse_hba(&text, Path::new("/nonexistent/pg_hba.conf"), 17);
        let _ = matcher::decide(&file.rules, &conn(true));
    }

    #[test]
    fn every_parsed_rule_reparses_from_its_own_text_to_the_same_rule(text in hba_text()) {
        let file = hba::parse_hba(&text, Path::new("/nonexistent/pg_hba.conf"), 17);
        for rule in &file.rules {
            let again = hba::parse_hba(&rule.raw, Path::new("/nonexistent/pg_hba.conf"), 17);
            prop_assert_eq!(again.rules.len(), 1, "{}", rule.raw);
            let r2 = &again.rules[0];
            prop_assert_eq!((&r2.conn_type, &r2.databases, &r2.users, &r2.address, &r2.method, &r2.options),
                            (&rule.conn_type, &rule.databases, &rule.users, &rule.address, &rule.method, &rule.options));
        }
    }
}
