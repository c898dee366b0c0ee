//! The guides' pg_hba.conf and pg_ident.conf examples (fixtures/guides/) through `hba lint`,
//! against the table beside them. No server needed.

use std::path::{Path, PathBuf};

use crate::support::doctor::{binary, validate};
use crate::support::pg::run_with_timeout;

fn guides() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/guides")
}

#[test]
fn every_guide_lints_as_the_table_says() {
    let table = std::fs::read_to_string(guides().join("lint.table")).unwrap();
    let mut rows = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut fields = line.split_whitespace();
        let (file, version) = (fields.next().unwrap(), fields.next().unwrap());
        let want: Vec<&str> = fields.collect();
        let hba = guides().join(file);
        let ident = hba.with_extension("ident");
        let mut cmd = std::process::Command::new(binary());
        cmd.args(["hba", "lint", "--format", "json", "--pg-version", version])
            .arg(&hba);
        if ident.exists() {
            cmd.arg("--ident").arg(&ident);
        }
        let out = run_with_timeout(&mut cmd, std::time::Duration::from_secs(20));
        let report: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: {e}: {}", out.stdout));
        validate(&report);
        let got: Vec<String> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{}:{}",
                    f["code"].as_str().unwrap(),
                    f["severity"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(got, want, "{file} as PostgreSQL {version}");
        let errors = want.iter().any(|w| w.ends_with(":error"));
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(i32::from(errors)),
            "{file}: exit status"
        );
        rows += 1;
    }
    assert!(rows >= 10, "the table has {rows} rows");
}
