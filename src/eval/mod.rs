//! Judges what the probe observed, offline and without I/O: for each of the six sslmodes,
//! whether libpq would get a session, over TLS or not, and the first check it fails, in
//! libpq's own order. The clock is a parameter.

mod advisories;
mod assessment;
mod causes;
pub mod client_cert;
pub mod host_loop;
mod intermediary;
mod model;
mod prose;
mod sequence;
#[cfg(test)]
pub(crate) mod tests;

pub use assessment::Assessment;
pub use model::{Cell, EvalInput, Judgement, LocalSetup, TlsSession};

use std::collections::BTreeMap;

use crate::eval::advisories::*;
use crate::eval::sequence::*;
use crate::finding::{self, Finding, Problem};
use crate::observe::{SslReply, StartupOutcome, TlsAttempt};
use crate::plan::Endpoint;
use crate::sslmode::SslMode;
use crate::trust::RootState;

/// The password permit for a TLS connection at `mode`: send only where libpq at that mode
/// would itself use the connection.
pub fn permit_at(
    local: &LocalSetup,
    endpoint: &Endpoint,
    chain: &[Vec<u8>],
    mode: SslMode,
    now: i64,
) -> crate::observe::PasswordPermit {
    if tls_acceptable(local, endpoint, chain, mode, now) {
        crate::observe::PasswordPermit::Send
    } else {
        crate::observe::PasswordPermit::Withhold
    }
}

/// Judges a host: the six cells and the findings that explain them.
pub fn judge(input: &EvalInput) -> Judgement {
    let assessment = Assessment::of(input);
    let mut problems: Vec<(Problem, Vec<SslMode>)> = Vec::new();
    // One finding per code. When the same code arises at several modes with different
    // details, the words of the requested mode's failure are the ones shown.
    let requested = input.requested;
    let mut add = |problem: Problem, mode: Option<SslMode>| match problems
        .iter_mut()
        .find(|(p, _)| p.code == problem.code)
    {
        Some((existing, modes)) => {
            if mode == Some(requested) && !modes.contains(&requested) {
                *existing = problem;
            }
            modes.extend(mode);
        }
        None => problems.push((problem, mode.into_iter().collect())),
    };

    let mut cells = BTreeMap::new();
    let unix = input.endpoint.is_unix_socket();
    for mode in SslMode::ALL {
        let result = if unix {
            plain_path(input)
        } else {
            mode_path(input, mode, &assessment)
        };
        let cell = match result {
            Ok(encrypted) => {
                if !encrypted && mode >= SslMode::Allow && !unix {
                    // Works, but only in plaintext: say why TLS was not used.
                    if let Some(reason) = fallback_reason(input, mode, &assessment) {
                        add(reason.problem, None);
                    }
                }
                Cell {
                    ok: Some(true),
                    encrypted,
                    code: None,
                }
            }
            Err(failure) => {
                let cell = Cell {
                    ok: if failure.undetermined {
                        None
                    } else {
                        Some(false)
                    },
                    encrypted: failure.on_tls,
                    code: Some(failure.problem.code),
                };
                add(failure.problem, Some(mode));
                for problem in failure.also {
                    add(problem, Some(mode));
                }
                cell
            }
        };
        cells.insert(mode, cell);
    }

    let mut findings: Vec<Finding> = problems
        .into_iter()
        .map(|(p, mut modes)| {
            modes.sort();
            modes.dedup();
            Finding {
                code: p.code,
                severity: finding::severity_for(&modes, input.requested),
                summary: p.summary,
                evidence: p.evidence,
                fix: p.fix,
                modes,
            }
        })
        .collect();

    advisories::add(input, &cells, &assessment, &mut findings);
    intermediary::add(input, &mut findings);
    // Errors first; among equals, the cause of the requested mode's failure first.
    let requested_code = cells[&input.requested].code;
    findings.sort_by_key(|f| {
        (
            std::cmp::Reverse(f.severity),
            Some(f.code) != requested_code,
        )
    });

    Judgement {
        cells,
        findings,
        chain: assessment.chain,
        postgres_replied: postgres_replied(input),
        tls_session: input.tls.and_then(tls_session),
    }
}

fn postgres_replied(input: &EvalInput) -> bool {
    let probe_replied = input
        .ssl_request_probe
        .is_some_and(|p| matches!(p.reply, Some(SslReply::Accepted) | Some(SslReply::Refused)));
    if probe_replied {
        return true;
    }
    let tls_replied = input.tls.is_some_and(|t| {
        matches!(
            t.reply,
            Some(SslReply::Accepted) | Some(SslReply::Refused) | Some(SslReply::ServerError { .. })
        ) || (t.reply.is_none() && t.handshake.as_ref().is_some_and(|h| h.is_ok()))
    });
    let plain_replied = input.plain.is_some_and(|p| {
        matches!(
            p.startup,
            Some(StartupOutcome::Session { .. })
                | Some(StartupOutcome::ServerError { .. })
                | Some(StartupOutcome::PasswordNeeded { .. })
                | Some(StartupOutcome::Withheld { .. })
                | Some(StartupOutcome::UnsupportedAuth { .. })
        )
    });
    tls_replied || plain_replied
}

/// Whether libpq at `mode` would accept the TLS connection that presented `chain`: local
/// set-up, chain trust (when verifying) and host name. Decides if the password may be sent.
pub fn tls_acceptable(
    local: &LocalSetup,
    endpoint: &Endpoint,
    chain_der: &[Vec<u8>],
    mode: SslMode,
    now: i64,
) -> bool {
    if local.client_failure.is_some() || matches!(local.roots, RootState::Unreadable { .. }) {
        return false;
    }
    let assessment = Assessment::of_chain(local, endpoint, chain_der, now);
    let chain_trusted = match assessment.trust {
        Some(verdict) => verdict.is_ok(),
        None => !mode.requires_root(),
    };
    chain_trusted && (mode != SslMode::VerifyFull || assessment.hostname.is_none())
}

/// Whether the TLS attempt fails at `mode` in a way after which prefer falls back to plaintext.
pub fn tls_falls_back(input: &EvalInput, mode: SslMode) -> bool {
    let assessment = Assessment::of(input);
    matches!(tls_path(input, mode, &assessment), Err(f) if f.falls_back)
}

/// The password gate for one host: the password goes only where libpq at that sslmode
/// would itself use the connection.
pub struct Gate<'a> {
    pub local: &'a LocalSetup,
    pub endpoint: &'a Endpoint,
    pub now: i64,
    pub user: &'a str,
    pub dbname: &'a str,
    pub negotiation: crate::plan::Negotiation,
}

impl crate::observe::PasswordGate for Gate<'_> {
    fn tls_permit(&self, mode: SslMode, chain: &[Vec<u8>]) -> crate::observe::PasswordPermit {
        permit_at(self.local, self.endpoint, chain, mode, self.now)
    }

    fn prefer_falls_back(&self, tls: &TlsAttempt) -> bool {
        let input = EvalInput {
            endpoint: self.endpoint,
            requested: SslMode::Prefer,
            local: self.local,
            tls: Some(tls),
            plain: None,
            now: self.now,
            warn_days: 0,
            user: self.user,
            dbname: self.dbname,
            user_is_default: false,
            dbname_is_default: false,
            password_source: None,
            password_unknown: None,
            hba: None,
            server_log: None,
            negotiation: self.negotiation,
            ssl_request_probe: None,
            pooler: None,
            pooler_log: None,
        };
        tls_falls_back(&input, SslMode::Prefer)
    }
}
