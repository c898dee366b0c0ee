//! What the doctor does with each libpq connection keyword that touches TLS or the choice of
//! connection: emulated as libpq does (with the test that shows it), read and ignored where
//! libpq's outcome does not depend on it, or not emulated, in which case a report whose
//! settings use it carries `setting_not_emulated`. docs/libpq-keywords.md is generated from
//! this table (a unit test fails when it is stale), so the two cannot disagree.

use crate::catalogue::Code;
use crate::catalogue::Severity;
use crate::evidence::{Evidence, Value};
use crate::finding::Finding;
use crate::plan::Plan;

/// How the doctor treats one keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Emulated as libpq does; `test` names the integration test that shows it.
    Emulated {
        test: &'static str,
        how: &'static str,
    },
    /// Read, and ignored because libpq's outcome does not depend on it here.
    Ignored { why: &'static str },
    /// Not emulated (beyond its value checks): a report that uses it says its verdicts may
    /// differ, and why. `test` shows the finding.
    NotEmulated {
        why: &'static str,
        test: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Keyword {
    pub name: &'static str,
    pub env: Option<&'static str>,
    pub handling: Handling,
}

const fn emulated(
    name: &'static str,
    env: Option<&'static str>,
    how: &'static str,
    test: &'static str,
) -> Keyword {
    Keyword {
        name,
        env,
        handling: Handling::Emulated { test, how },
    }
}

const NOT_EMULATED_TEST: &str = "settings_the_doctor_does_not_emulate_are_named_in_the_report";

/// libpq 17's keywords that touch TLS or the choice of connection, in its documentation's order.
pub const KEYWORDS: &[Keyword] = &[
    emulated("host", Some("PGHOST"), "host lists, Unix socket directories, multi-host order and where libpq stops", "multi_host_skips_the_unreachable_host_and_says_where_libpq_ends"),
    emulated("hostaddr", Some("PGHOSTADDR"), "connects to the address, checks the certificate against host", "hostname_mismatch_names_the_certificate_names"),
    emulated("port", Some("PGPORT"), "one port per host, or one for all", "multi_host_skips_the_unreachable_host_and_says_where_libpq_ends"),
    emulated("connect_timeout", Some("PGCONNECT_TIMEOUT"), "per network step, at least 2 s; 0 or negative waits (bounded by --timeout)", "silence_ends_at_connect_timeout"),
    emulated("options", Some("PGOPTIONS"), "sent in the StartupMessage", "options_are_sent_in_the_startup_message_as_libpq_sends_them"),
    Keyword {
        name: "replication",
        env: None,
        handling: Handling::NotEmulated {
            why: "a replication connection is matched by pg_hba.conf's `replication` database and runs no SQL; the doctor always opens a normal session",
            test: NOT_EMULATED_TEST,
        },
    },
    Keyword {
        name: "gssencmode",
        env: Some("PGGSSENCMODE"),
        handling: Handling::NotEmulated {
            why: "with a Kerberos credential cache libpq tries GSSAPI encryption before TLS, and a GSS-encrypted session satisfies every sslmode; the doctor never does GSSAPI. Values are checked, and `require` without a credential cache fails before connecting, as in libpq 17",
            test: NOT_EMULATED_TEST,
        },
    },
    emulated("sslmode", Some("PGSSLMODE"), "all six modes, fallbacks and the root-file upgrade", "prefer_falls_back_to_plaintext_after_a_verification_failure"),
    emulated("sslnegotiation", Some("PGSSLNEGOTIATION"), "postgres or direct (ALPN, weak modes refused)", "direct_tls_to_postgresql_17_negotiates_alpn"),
    Keyword {
        name: "sslcompression",
        env: Some("PGSSLCOMPRESSION"),
        handling: Handling::Ignored {
            why: "libpq only toggles SSL_OP_NO_COMPRESSION; Debian's OpenSSL 3 has no TLS compression and PostgreSQL 14+ refuses it, so no outcome depends on it",
        },
    },
    emulated("sslcert", Some("PGSSLCERT"), "explicit, default ~/.postgresql/postgresql.crt, chains, PEM and DER", "client_files_from_the_default_path_and_from_pgsslcert"),
    emulated("sslkey", Some("PGSSLKEY"), "PEM, DER, PKCS#1, SEC1, PKCS#8, encrypted; libpq's permission rule", "client_key_permissions"),
    emulated("sslpassword", None, "decrypts the key; never printed", "encrypted_keys_in_every_format_load_with_the_right_sslpassword"),
    emulated("sslcertmode", Some("PGSSLCERTMODE"), "disable, allow, require (libpq 16+)", "sslcertmode_require_against_a_server_that_never_asks"),
    emulated("sslrootcert", Some("PGSSLROOTCERT"), "a file switches verification on for every TLS mode; `system` (libpq 16+) allows only verify-full", "sslrootcert_system_refuses_every_mode_but_verify_full_as_libpq_17_does"),
    emulated("sslcrl", Some("PGSSLCRL"), "loaded only with a root file; a file that does not load is ignored, as libpq ignores it", "revoked_server_certificate_via_the_default_root_crl"),
    emulated("sslcrldir", Some("PGSSLCRLDIR"), "hashed directory beside sslcrl; replaces the default root.crl", "sslcrldir_revokes_the_server_certificate"),
    emulated("sslsni", Some("PGSSLSNI"), "SNI for host names, never for IP addresses; 0 turns it off", "sslsni_puts_the_host_name_in_the_client_hello_unless_it_is_0"),
    Keyword {
        name: "requirepeer",
        env: Some("PGREQUIREPEER"),
        handling: Handling::NotEmulated {
            why: "on a Unix socket libpq compares the server process's user with it and refuses a mismatch; the doctor does not check the peer's credentials (over TCP libpq ignores it too)",
            test: NOT_EMULATED_TEST,
        },
    },
    emulated("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION"), "validated (default TLSv1.2) and applied to the handshake", "protocol_bounds_are_applied_to_the_handshake"),
    emulated("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION"), "validated and applied; a range below TLS 1.2 fails as libpq's does", "a_maximum_below_tls_1_2_is_judged_as_libpq_fails_it"),
    Keyword {
        name: "krbsrvname",
        env: Some("PGKRBSRVNAME"),
        handling: Handling::Ignored {
            why: "used only by GSSAPI authentication and encryption, which the doctor does not perform (see gssencmode)",
        },
    },
    Keyword {
        name: "gsslib",
        env: Some("PGGSSLIB"),
        handling: Handling::Ignored {
            why: "Windows only (SSPI or GSSAPI)",
        },
    },
    Keyword {
        name: "gssdelegation",
        env: Some("PGGSSDELEGATION"),
        handling: Handling::Ignored {
            why: "used only by GSSAPI authentication (see gssencmode)",
        },
    },
    emulated("channel_binding", Some("PGCHANNELBINDING"), "SCRAM-SHA-256-PLUS over TLS; require refuses methods without it", "channel_binding_required_but_not_possible"),
    Keyword {
        name: "require_auth",
        env: Some("PGREQUIREAUTH"),
        handling: Handling::NotEmulated {
            why: "libpq 16+ refuses a server that asks for another authentication method; the doctor checks the value but not the server's choice against it",
            test: NOT_EMULATED_TEST,
        },
    },
    Keyword {
        name: "target_session_attrs",
        env: Some("PGTARGETSESSIONATTRS"),
        handling: Handling::NotEmulated {
            why: "libpq checks each server's read-only or standby state and moves to the next host; the doctor judges the first host that answers",
            test: NOT_EMULATED_TEST,
        },
    },
    Keyword {
        name: "load_balance_hosts",
        env: Some("PGLOADBALANCEHOSTS"),
        handling: Handling::NotEmulated {
            why: "with random, libpq 16+ tries the hosts and addresses in a random order; the doctor tries them in the order given",
            test: NOT_EMULATED_TEST,
        },
    },
    Keyword {
        name: "keepalives",
        env: None,
        handling: Handling::Ignored {
            why: "TCP keepalives (and keepalives_idle, _interval, _count, tcp_user_timeout) only matter for idle sessions, never for a probe's outcome",
        },
    },
];

fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "on" | "yes" | "database"
    )
}

/// Whether the plan uses a keyword the doctor does not emulate in a way that can change
/// libpq's outcome; the value shown.
fn used(plan: &Plan, name: &str) -> Option<String> {
    let value = plan.settings.get(name).map(|s| s.value.clone());
    match name {
        "replication" => value.filter(|v| truthy(v)),
        "gssencmode" => {
            let mode = value.unwrap_or_else(|| "prefer".into());
            (mode != "disable" && plan.gss_cache.is_some()).then_some(mode)
        }
        "requirepeer" => value
            .filter(|v| !v.is_empty())
            .filter(|_| plan.endpoints.iter().any(|e| e.is_unix_socket())),
        "require_auth" => value.filter(|v| !v.is_empty()),
        "target_session_attrs" => value.filter(|v| v != "any"),
        "load_balance_hosts" => value.filter(|v| v == "random"),
        _ => None,
    }
}

/// `setting_not_emulated` for every keyword the plan uses that the doctor does not emulate.
pub fn unemulated_findings(plan: &Plan) -> Vec<Finding> {
    KEYWORDS
        .iter()
        .filter_map(|k| {
            let Handling::NotEmulated { why, .. } = k.handling else {
                return None;
            };
            let value = used(plan, k.name)?;
            let mut evidence = vec![
                Evidence::new("keyword", Value::name(k.name.to_string())),
                Evidence::new("value", value.clone()),
            ];
            if let Some(setting) = plan.settings.get(k.name) {
                evidence.push(Evidence::new("source", setting.source.describe()));
            } else if k.name == "gssencmode" {
                evidence.push(Evidence::new("source", "libpq default (prefer)"));
            }
            if k.name == "gssencmode" {
                if let Some(cache) = &plan.gss_cache {
                    evidence.push(Evidence::new("credential_cache", cache.clone()));
                }
            }
            evidence.push(Evidence::new("why", why.to_string()));
            Some(Finding {
                code: Code::SettingNotEmulated,
                severity: Severity::Warning,
                summary: format!(
                    "libpq would act on {}={value}, which the doctor does not emulate: its verdicts may differ from libpq's",
                    k.name
                ),
                evidence,
                fix: Some(match k.name {
                    "gssencmode" => "check with gssencmode=disable to judge TLS alone, or with psql for the GSSAPI path".into(),
                    _ => format!("check the connection with psql too, or leave {} unset to judge TLS alone", k.name),
                }),
                modes: vec![],
            })
        })
        .collect()
}

/// docs/libpq-keywords.md.
pub fn markdown() -> String {
    let mut out = String::from(
        "# libpq keywords: what the doctor does with each\n\n\
         Generated from `src/keywords.rs` (`PGTLS_BLESS=1 cargo test --lib keywords` rewrites it;\n\
         a unit test fails when it is stale). Every libpq 17 keyword that touches TLS or the\n\
         choice of connection is here:\n\n\
         - **emulated**: the doctor does what libpq does; the named test shows it against a real server;\n\
         - **ignored**: read, and ignored because libpq's outcome does not depend on it;\n\
         - **not emulated**: a report whose settings use it carries `setting_not_emulated`\n\
           (a warning saying its verdicts may differ, and why).\n\n\
         | keyword | environment | handling | what the doctor does | test |\n\
         |---|---|---|---|---|\n",
    );
    for k in KEYWORDS {
        let env = k
            .env
            .map(|e| format!("`{e}`"))
            .unwrap_or_else(|| "—".into());
        let (handling, what, test) = match k.handling {
            Handling::Emulated { test, how } => ("emulated", how, format!("`{test}`")),
            Handling::Ignored { why } => ("ignored", why, "—".into()),
            Handling::NotEmulated { why, test } => ("not emulated", why, format!("`{test}`")),
        };
        out.push_str(&format!(
            "| `{}` | {env} | {handling} | {what} | {test} |\n",
            k.name
        ));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// A setting the doctor does not emulate, used.
    pub(crate) fn codes_produced() -> std::collections::BTreeSet<Code> {
        let env = crate::plan::Environment {
            vars: Default::default(),
            home: None,
            os_user: Some("alice".into()),
        };
        let plan = crate::plan::resolve(
            "host=db.example.com replication=database",
            &crate::plan::FlagSettings::default(),
            &env,
        )
        .unwrap();
        unemulated_findings(&plan).iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_setting_not_emulated_is_named() {
        assert!(codes_produced().contains(&Code::SettingNotEmulated));
    }

    #[test]
    fn docs_table_is_current() {
        crate::testing::check_generated("docs/libpq-keywords.md", &markdown());
    }

    #[test]
    fn every_named_test_exists() {
        let mut sources = String::new();
        for entry in std::fs::read_dir(root().join("tests/suite")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
        for k in KEYWORDS {
            let test = match k.handling {
                Handling::Emulated { test, .. } | Handling::NotEmulated { test, .. } => test,
                Handling::Ignored { .. } => continue,
            };
            assert!(
                sources.contains(&format!("fn {test}(")),
                "{}: no test named {test} in tests/",
                k.name
            );
        }
    }

    #[test]
    fn the_keywords_the_issue_lists_are_all_here() {
        for name in [
            "sslmode",
            "sslnegotiation",
            "sslcompression",
            "sslcert",
            "sslkey",
            "sslpassword",
            "sslcertmode",
            "sslrootcert",
            "sslcrl",
            "sslcrldir",
            "sslsni",
            "requirepeer",
            "ssl_min_protocol_version",
            "ssl_max_protocol_version",
            "gssencmode",
            "channel_binding",
            "require_auth",
            "target_session_attrs",
            "load_balance_hosts",
            "hostaddr",
            "connect_timeout",
        ] {
            let k = KEYWORDS.iter().find(|k| k.name == name);
            assert!(k.is_some(), "{name} missing from the keyword table");
            // Every environment variable the table names is one the planner reads.
            if let Some(env) = k.and_then(|k| k.env) {
                assert!(
                    crate::plan::ENV_VARS.iter().any(|(_, v)| *v == env),
                    "{env} is not read by the planner"
                );
            }
        }
    }
}
