//! Findings: what was diagnosed, with its evidence and fix. The codes are in `catalogue`.

use crate::catalogue::{Code, Severity};
use crate::evidence::{Evidence, Value};
use crate::sslmode::SslMode;

/// One diagnosed fact: a stable code, what was seen, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub summary: String,
    /// Ordered key/value evidence: names, dates, bytes, the server's own words.
    pub evidence: Vec<Evidence>,
    pub fix: Option<String>,
    /// The sslmodes this problem makes fail.
    pub modes: Vec<SslMode>,
}

/// A failure detected while judging one sslmode, before it is merged into a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: Code,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub fix: Option<String>,
}

impl Problem {
    pub fn new(code: Code, summary: impl Into<String>) -> Self {
        Problem {
            code,
            summary: summary.into(),
            evidence: Vec::new(),
            fix: None,
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.evidence.push(Evidence::new(key, value));
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Severity from the modes a problem breaks: error if it breaks the requested mode, warning
/// if it breaks a stricter one (it works now but a stricter client would fail), else info.
pub fn severity_for(modes: &[SslMode], requested: SslMode) -> Severity {
    if modes.contains(&requested) {
        Severity::Error
    } else if modes.iter().any(|m| *m > requested) {
        Severity::Warning
    } else {
        Severity::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_rules() {
        use SslMode::*;
        assert_eq!(
            severity_for(&[VerifyCa, VerifyFull], VerifyFull),
            Severity::Error
        );
        assert_eq!(
            severity_for(&[VerifyCa, VerifyFull], Prefer),
            Severity::Warning
        );
        assert_eq!(severity_for(&[Disable, Allow], Require), Severity::Info);
    }
}
