//! `--admin CONNINFO`: the rules as the server reads its files now, from `pg_hba_file_rules`
//! and `pg_ident_file_mappings` (PostgreSQL 15+; a superuser, or EXECUTE on their functions).
//! Those views parse the files as they are on disk, which can differ from the rules in force:
//! a changed, unreloaded file or one with error rows is reported, since the server then still
//! runs the old rules.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::eval;
use crate::hba::{self, HbaContext, HbaFile, IdentFile, IdentRule, ParseError, Token, TokenLine};
use crate::local::local_setup;
use crate::observe::{PasswordPermit, StartupOutcome};
use crate::plan::Plan;
use crate::probe::{self, Deadlines, Permit, StartupParams, TlsPermits};
use crate::sslmode::SslMode;

/// One statement reads both views and the file name; a second, which needs the right to
/// stat the file, says whether it changed after the last reload.
pub const ADMIN_SQL: &str = "SELECT 'rule', to_jsonb(r)::text FROM pg_hba_file_rules r \
     UNION ALL SELECT 'ident', to_jsonb(m)::text FROM pg_ident_file_mappings m \
     UNION ALL SELECT 'hba_file', current_setting('hba_file') \
     UNION ALL SELECT 'server_version_num', current_setting('server_version_num'); \
     SELECT 'stale', ((pg_stat_file(current_setting('hba_file'))).modification > pg_conf_load_time())::text";

/// The server's rules, and whether they are the ones in force.
#[derive(Debug, Clone)]
pub struct AdminRules {
    pub context: HbaContext,
    /// The file changed after pg_conf_load_time(); None when the role may not stat it.
    pub stale: Option<bool>,
}

/// Why the --admin connection could not read the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("the --admin connection string names no host")]
    NoHost,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the server's certificate does not pass sslmode={0} (run the doctor on the --admin target itself)")]
    Certificate(SslMode),
    #[error("{severity}:  {message}")]
    Refused { severity: String, message: String },
    #[error("fe_sendauth: no password supplied")]
    NoPassword,
    #[error("no session{0}")]
    NoSession(String),
    #[error("could not read pg_hba_file_rules: {0} (the role needs superuser or EXECUTE on pg_hba_file_rules())")]
    ViewRefused(String),
}

/// Connects with the admin conninfo (its own sslmode, password rules as for the probe) and
/// reads the views.
pub async fn fetch(
    plan: &Plan,
    timeout: Duration,
    allow_cleartext_password: bool,
    now: i64,
) -> Result<AdminRules, AdminError> {
    let endpoint = plan.endpoints.first().ok_or(AdminError::NoHost)?;
    let (local, identity) = local_setup(plan);
    let params = StartupParams {
        user: &plan.user,
        dbname: &plan.dbname,
        application_name: "pgtls-doctor --admin",
        options: None,
        password: plan.password.as_ref().map(|(s, _)| s),
        allow_cleartext_on_plaintext: allow_cleartext_password,
        channel_binding: plan.channel_binding,
        extra_query: Some(ADMIN_SQL),
        ask_pooler_version: false,
    };
    let deadlines = Deadlines {
        overall: Instant::now() + timeout.min(Duration::from_secs(30)),
        step: plan.connect_timeout,
    };
    let outcome = if endpoint.is_unix_socket() || plan.sslmode == SslMode::Disable {
        probe::plain_attempt(
            endpoint,
            deadlines,
            &params,
            Permit::Now(PasswordPermit::Send),
        )
        .await
        .startup
    } else {
        let mode = plan.sslmode;
        let permit_for = |chain: &[Vec<u8>]| eval::permit_at(&local, endpoint, chain, mode, now);
        let after_refusal = if mode.requires_tls() {
            PasswordPermit::Withhold
        } else {
            PasswordPermit::Send
        };
        let tls = probe::tls_attempt(
            endpoint,
            deadlines,
            &params,
            &identity,
            plan.tls_options(),
            plan.negotiation,
            TlsPermits {
                permit_for: &permit_for,
                hold: Permit::Now(PasswordPermit::Send),
                after_refusal,
                negotiated: None,
            },
        )
        .await;
        if let Some(e) = &tls.connect_error {
            return Err(AdminError::Connect(format!("{e:?}")));
        }
        if !tls.chain.is_empty() && !eval::tls_acceptable(&local, endpoint, &tls.chain, mode, now) {
            return Err(AdminError::Certificate(mode));
        }
        tls.startup.or(tls.plaintext_after_refusal)
    };
    let query = match outcome {
        Some(StartupOutcome::Session { query: Some(q), .. }) => q,
        Some(StartupOutcome::ServerError { fields, .. }) => {
            return Err(AdminError::Refused {
                severity: fields.severity,
                message: fields.message,
            })
        }
        Some(StartupOutcome::PasswordNeeded { .. }) => return Err(AdminError::NoPassword),
        Some(other) => return Err(AdminError::NoSession(format!(": {other:?}"))),
        None => return Err(AdminError::NoSession(String::new())),
    };
    if query.rows.is_empty() {
        let message = query
            .errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "no rows".into());
        return Err(AdminError::ViewRefused(message));
    }
    Ok(rules_from_rows(&query.rows, &plan.user))
}

/// Builds the rules from the view rows (pure).
pub fn rules_from_rows(rows: &[Vec<Option<String>>], admin_user: &str) -> AdminRules {
    let mut hba_file_name = PathBuf::from("pg_hba.conf");
    let mut version = 15;
    let mut stale = None;
    for row in rows {
        match (
            row.first().cloned().flatten().as_deref(),
            row.get(1).cloned().flatten(),
        ) {
            (Some("hba_file"), Some(v)) => hba_file_name = PathBuf::from(v),
            (Some("server_version_num"), Some(v)) => {
                version = v.parse::<u32>().map(|n| n / 10_000).unwrap_or(15)
            }
            (Some("stale"), Some(v)) => stale = Some(v == "true"),
            _ => {}
        }
    }
    let mut file = HbaFile::default();
    let mut ident = IdentFile::default();
    for row in rows {
        let (Some(kind), Some(json)) = (
            row.first().cloned().flatten(),
            row.get(1).cloned().flatten(),
        ) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&json) else {
            continue;
        };
        let line_number = v["line_number"].as_u64().unwrap_or(0) as usize;
        let path = v["file_name"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| hba_file_name.clone());
        let error = v["error"].as_str().map(str::to_string);
        match kind.as_str() {
            "rule" => {
                let raw = rule_text(&v);
                // PostgreSQL 15 leaves some refused lines with neither a type nor an error
                // text (clientcert=1, for one): the line is refused all the same.
                let error = error.or_else(|| {
                    v["type"].is_null().then(|| {
                        "the server refuses this line (pg_hba_file_rules gives no reason; `pgtls-doctor hba lint` on the file says why)".to_string()
                    })
                });
                if let Some(message) = error {
                    file.errors.push(ParseError {
                        file: path,
                        line_number,
                        raw,
                        message,
                        hint: None,
                    });
                    continue;
                }
                let line = TokenLine {
                    file: path.clone(),
                    line_number,
                    raw: raw.clone(),
                    fields: hba::tokenize(&raw, &path, 0)
                        .0
                        .into_iter()
                        .flat_map(|l| l.fields)
                        .collect(),
                };
                match hba::parse_hba_line(&line, version) {
                    Ok((rule, _)) => file.rules.push(rule),
                    Err(e) => file.errors.push(e),
                }
            }
            "ident" => {
                if let Some(message) = error {
                    ident.errors.push(ParseError {
                        file: path,
                        line_number,
                        raw: String::new(),
                        message,
                        hint: None,
                    });
                    continue;
                }
                let token = |k: &str| Token {
                    text: v[k].as_str().unwrap_or_default().to_string(),
                    quoted: false,
                };
                ident.rules.push(IdentRule {
                    file: path,
                    line_number,
                    raw: format!(
                        "{} {} {}",
                        token("map_name").text,
                        token("sys_name").text,
                        token("pg_username").text
                    ),
                    map: token("map_name").text,
                    system_user: token("sys_name"),
                    pg_user: token("pg_username"),
                });
            }
            _ => {}
        }
    }
    AdminRules {
        context: HbaContext {
            hba: file,
            ident: Some(ident),
            source: format!(
                "pg_hba_file_rules (read as {admin_user} via --admin; the file on disk now)"
            ),
        },
        stale,
    }
}

/// A pg_hba.conf line rebuilt from a pg_hba_file_rules row.
fn rule_text(v: &Value) -> String {
    let list = |k: &str| -> String {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .map(|s| {
                        if s.contains([' ', ',', '#']) {
                            format!("\"{s}\"")
                        } else {
                            s.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let mut parts = vec![
        v["type"].as_str().unwrap_or("").to_string(),
        list("database"),
        list("user_name"),
    ];
    if let Some(a) = v["address"].as_str() {
        parts.push(a.to_string());
    }
    if let Some(m) = v["netmask"].as_str() {
        parts.push(m.to_string());
    }
    parts.push(v["auth_method"].as_str().unwrap_or("").to_string());
    if let Some(opts) = v["options"].as_array() {
        parts.extend(opts.iter().filter_map(|o| o.as_str()).map(str::to_string));
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}
