//! What the client makes of the server's chain and names, judged once per host: OpenSSL's
//! verdict against the root file (with the CRLs), and verify-full's host-name check. The
//! six sslmodes then read it; none verifies again.

use crate::eval::causes::chain::*;
use crate::eval::model::*;
use crate::finding::Problem;
use crate::plan::Endpoint;
use crate::trust::{self, ChainFailure, RootState};
use crate::x509::{self, CertSummary};

pub struct Assessment {
    /// The chain as sent, summarized (depth 0 first).
    pub chain: Vec<CertSummary>,
    /// OpenSSL's verdict; None when no root file is loaded (nothing to verify against).
    pub trust: Option<Result<(), ChainFailure>>,
    /// Why verify-full's host-name check fails; None when the name matches (or no chain).
    pub hostname: Option<Problem>,
}

impl Assessment {
    pub fn of(input: &EvalInput) -> Assessment {
        let der: &[Vec<u8>] = input.tls.map(|t| t.chain.as_slice()).unwrap_or_default();
        Assessment::of_chain(input.local, input.endpoint, der, input.now)
    }

    pub fn of_chain(
        local: &LocalSetup,
        endpoint: &Endpoint,
        der: &[Vec<u8>],
        now: i64,
    ) -> Assessment {
        let chain: Vec<CertSummary> = der.iter().filter_map(|d| x509::summarize(d).ok()).collect();
        let trust = match &local.roots {
            RootState::Loaded { certs, .. } => {
                Some(trust::verify_chain(der, certs, local.crl.as_ref(), now))
            }
            _ => None,
        };
        let hostname = hostname_problem(endpoint, &chain);
        Assessment {
            chain,
            trust,
            hostname,
        }
    }

    /// OpenSSL accepts the chain against the loaded root file.
    pub fn trusted(&self) -> bool {
        matches!(self.trust, Some(Ok(())))
    }
}
