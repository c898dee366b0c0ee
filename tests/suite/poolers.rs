//! Real PgBouncer (Debian's 1.18) in front of a real PostgreSQL server: the doctor names the
//! pooler from what it says, explains its refusals in its own terms, and its verdicts agree
//! with psql at every sslmode through the pooler.

use serde_json::Value;

use crate::support::doctor::{
    assert_agrees_with_psql_through_pooler, evidence, run_doctor, DoctorRun,
};
use crate::support::pg::{pg17_bin_dir, PgConfig, PgServer};
use crate::support::pki::{write_file, Ca, LeafSpec};
use crate::support::pooler::{BouncerConfig, PgBouncer, Pgpool, PgpoolConfig};

struct Setup {
    ca: Ca,
    pg: PgServer,
    home: tempfile::TempDir,
}

fn setup() -> Setup {
    setup_with("hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n")
}

fn setup_with(hba: &str) -> Setup {
    let ca = Ca::root("Pooler Test CA");
    let server = ca.issue(&LeafSpec::server("127.0.0.1", &[], &["127.0.0.1"]));
    let pg = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(server.pair()),
        hba: hba.into(),
        setup_sql: vec![
            "CREATE ROLE alice LOGIN".into(),
            "CREATE ROLE carol LOGIN".into(),
            "CREATE DATABASE app".into(),
        ],
        ..Default::default()
    });
    Setup {
        ca,
        pg,
        home: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    /// PgBouncer with TLS to its clients (certificate for localhost) and to the server.
    fn bouncer(&self, settings: &str, users: &[&str]) -> PgBouncer {
        self.bouncer_trusting(settings, users, None)
    }

    /// [`Setup::bouncer`], with server_tls_ca_file holding `server_ca`.
    fn bouncer_trusting(
        &self,
        settings: &str,
        users: &[&str],
        server_ca: Option<String>,
    ) -> PgBouncer {
        let leaf = self.ca.issue(&LeafSpec::server(
            "localhost",
            &["localhost"],
            &["127.0.0.1"],
        ));
        PgBouncer::start(
            &self.pg,
            BouncerConfig {
                settings: settings.into(),
                users: users.iter().map(|u| u.to_string()).collect(),
                tls: Some(leaf.pair()),
                client_ca: Some(self.ca.issued.cert_pem.clone()),
                server_ca,
                hba: None,
            },
        )
    }

    fn root(&self) -> String {
        let path = write_file(
            self.home.path(),
            "root.crt",
            self.ca.issued.cert_pem.as_bytes(),
            0o644,
        );
        path.display().to_string()
    }

    /// A client certificate and key for `cn`, as conninfo settings.
    fn client(&self, cn: &str) -> String {
        let leaf = self.ca.issue(&LeafSpec::client(cn));
        let cert = write_file(
            self.home.path(),
            &format!("{cn}.crt"),
            leaf.cert_pem.as_bytes(),
            0o644,
        );
        let key = write_file(
            self.home.path(),
            &format!("{cn}.key"),
            leaf.key_pem.as_bytes(),
            0o600,
        );
        format!("sslcert={} sslkey={}", cert.display(), key.display())
    }

    fn diagnose(&self, bouncer: &PgBouncer, extra: &str) -> (DoctorRun, String) {
        let target = bouncer.conninfo(&format!("sslrootcert={} {extra}", self.root()));
        let run = self.run(&target, &[]);
        (run, target)
    }

    /// The doctor at verify-full, JSON, with `extra` flags.
    fn run(&self, target: &str, extra: &[&str]) -> DoctorRun {
        let mut args = vec![target, "--sslmode", "verify-full", "--format", "json"];
        args.extend_from_slice(extra);
        run_doctor(&args, self.home.path(), None, &[])
    }

    fn agrees(&self, run: &DoctorRun, target: &str) {
        assert_agrees_with_psql_through_pooler(run, &self.pg.psql_path(), target, self.home.path());
    }
}

const CERT_AUTH: &str =
    "auth_type = cert\nclient_tls_sslmode = verify-full\nserver_tls_sslmode = require\n";

fn peer(run: &DoctorRun) -> Value {
    evidence(run.expect_finding("pooler_detected", "info"), "peer")
}

#[test]
fn pgbouncer_with_a_matching_certificate_is_named_and_pg_stat_ssl_is_its_connection() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    let (run, target) = s.diagnose(&bouncer, &format!("user=alice {}", s.client("alice")));
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(peer(&run), "PgBouncer");
    let detected = run.finding("pooler_detected").unwrap();
    assert_eq!(evidence(detected, "error_fields"), "S, C, M");
    // The server's pg_stat_ssl row is PgBouncer's own connection: no client certificate.
    assert!(
        detected
            .to_string()
            .contains("the row is another connection's"),
        "{detected}"
    );
    // Asked what it is, it passed the query on to PostgreSQL, which refused it.
    assert!(
        evidence(detected, "pool_version")
            .to_string()
            .contains("not pgpool-II"),
        "{detected}"
    );
    let session = run.finding("tls_session").unwrap();
    assert!(session.to_string().contains("server_view_is"), "{session}");
    // Plaintext is refused in PgBouncer's words, read as PgBouncer's setting.
    let refused = run.finding("server_refused").unwrap();
    assert_eq!(evidence(refused, "peer"), "PgBouncer");
    assert!(refused["summary"]
        .as_str()
        .unwrap()
        .contains("client_tls_sslmode"));
    s.agrees(&run, &target);
    // Its own connection to the server, by its settings: require, and it works.
    let ini = bouncer.dir().join("pgbouncer.ini").display().to_string();
    let run = s.run(&target, &["--pooler-config", &ini]);
    let hop = run.expect_finding("pooler_server_hop", "info");
    assert!(hop["summary"].as_str().unwrap().contains("works"), "{hop}");
}

#[test]
fn a_name_pgbouncer_refuses_names_both_candidates() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice", "bob"]);
    let (run, target) = s.diagnose(&bouncer, &format!("user=alice {}", s.client("bob")));
    assert_eq!(run.code, 1);
    let failed = run.expect_finding("pooler_cert_auth_failed", "error");
    assert_eq!(
        evidence(failed, "names_match_user_as_pgbouncer_compares"),
        false
    );
    let candidates = crate::support::doctor::DoctorRun::evidence_all(failed, "candidate");
    assert_eq!(candidates.len(), 2, "{failed}");
    assert!(candidates[1].to_string().contains("auth_file"));
    // PostgreSQL's pg_hba.conf advice does not apply to PgBouncer's refusal.
    assert!(
        run.finding("client_cert_cn_mismatch").is_none(),
        "{}",
        run.stdout
    );
    s.agrees(&run, &target);
}

#[test]
fn a_user_missing_from_auth_file_is_told_apart_by_the_names() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    let (run, target) = s.diagnose(&bouncer, &format!("user=carol {}", s.client("carol")));
    assert_eq!(run.code, 1);
    let failed = run.expect_finding("pooler_cert_auth_failed", "error");
    assert_eq!(
        evidence(failed, "names_match_user_as_pgbouncer_compares"),
        true
    );
    assert!(evidence(failed, "cause").to_string().contains("auth_file"));
    assert!(failed["fix"].as_str().unwrap().contains("\"carol\" \"\""));
    assert!(
        bouncer.log().contains("carol") || bouncer.log().contains("certificate"),
        "{}",
        bouncer.log()
    );
    s.agrees(&run, &target);
}

#[test]
fn a_certificate_pgbouncer_accepts_and_postgresql_would_refuse() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    // PgBouncer compares case-insensitively; PostgreSQL's cert method wants the CN exactly.
    let (run, target) = s.diagnose(&bouncer, &format!("user=alice {}", s.client("ALICE")));
    assert_eq!(run.code, 0, "{}", run.stdout);
    let differs = run.expect_finding("pooler_cert_match_differs", "warning");
    assert_eq!(evidence(differs, "certificate_cn"), "ALICE");
    s.agrees(&run, &target);
}

#[test]
fn no_client_certificate_where_pgbouncer_demands_one() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    let (run, target) = s.diagnose(&bouncer, "user=alice");
    assert_eq!(run.code, 1);
    let missing = run.expect_finding("client_cert_missing", "error");
    assert_eq!(evidence(missing, "alert"), "certificate_required");
    assert!(evidence(missing, "usual_setting")
        .to_string()
        .contains("client_tls_sslmode"));
    assert!(
        run.finding("tls_handshake_failed").is_none(),
        "{}",
        run.stdout
    );
    s.agrees(&run, &target);
}

#[test]
fn a_pooler_without_tls_agrees_with_psql() {
    let s = setup();
    let bouncer = PgBouncer::start(
        &s.pg,
        BouncerConfig {
            settings: "auth_type = trust\nclient_tls_sslmode = disable\n".into(),
            users: vec!["alice".into()],
            tls: None,
            client_ca: None,
            server_ca: None,
            hba: None,
        },
    );
    let (run, target) = s.diagnose(&bouncer, "user=alice");
    assert_eq!(run.code, 1, "verify-full cannot work without TLS");
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
    s.agrees(&run, &target);
}

#[test]
fn direct_tls_to_pgbouncer_is_refused_as_libpq_17_refuses_it() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    let (run, target) = s.diagnose(
        &bouncer,
        &format!("user=alice sslnegotiation=direct {}", s.client("alice")),
    );
    assert_eq!(run.code, 1);
    let unsupported = run.expect_finding("direct_tls_unsupported", "error");
    let text = unsupported.to_string();
    assert!(
        text.contains("client sent partial pkt in startup phase"),
        "{text}"
    );
    assert!(evidence(unsupported, "ssl_request_answer")
        .to_string()
        .contains("'S'"));
    assert_eq!(peer(&run), "PgBouncer");
    assert!(bouncer.log().contains("partial pkt"), "{}", bouncer.log());
    assert_agrees_with_psql_through_pooler(
        &run,
        &pg17_bin_dir().join("psql"),
        &target,
        s.home.path(),
    );
}

#[test]
fn a_server_side_hop_that_fails_verification_is_the_second_hop() {
    let s = setup();
    // PgBouncer verifies the server against a CA that did not issue its certificate.
    let other = Ca::root("Not The Server's CA").issued.cert_pem.clone();
    let bouncer = s.bouncer_trusting(
        "auth_type = cert\nclient_tls_sslmode = verify-full\nserver_tls_sslmode = verify-full\n",
        &["alice"],
        Some(other),
    );
    let target = bouncer.conninfo(&format!(
        "sslrootcert={} user=alice {}",
        s.root(),
        s.client("alice")
    ));
    let log = bouncer.log_path().display().to_string();
    let run = s.run(&target, &["--timeout", "20", "--pooler-log", &log]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failed = run.expect_finding("pooler_server_login_failed", "error");
    let logged = crate::support::doctor::DoctorRun::evidence_all(failed, "pooler_log");
    assert!(
        logged
            .iter()
            .any(|l| l.to_string().contains("TLS handshake error")),
        "{failed}"
    );
    // With PgBouncer's configuration, the doctor checks that hop by PgBouncer's rules.
    let ini = bouncer.dir().join("pgbouncer.ini").display().to_string();
    let run = s.run(&target, &["--timeout", "20", "--pooler-config", &ini]);
    let hop = run.expect_finding("pooler_server_hop", "error");
    assert_eq!(
        evidence(hop, "hop_finding"),
        "server_cert_unknown_ca",
        "{hop}"
    );
    assert!(
        hop["fix"].as_str().unwrap().contains("server_tls_"),
        "{hop}"
    );
    assert!(
        evidence(failed, "hop").to_string().contains("second hop"),
        "{failed}"
    );
    assert!(
        bouncer.log().contains("TLS handshake error"),
        "{}",
        bouncer.log()
    );
    s.agrees(&run, &target);
    // Waiting less than client_login_timeout: silence, named as a possible second hop.
    let run = s.run(&target, &["--timeout", "1.5"]);
    let silent = run.expect_finding("connect_timeout", "error");
    assert!(evidence(silent, "possible_cause")
        .to_string()
        .contains("client_login_timeout"));
}

#[test]
fn the_servers_refusal_of_the_pooler_is_relayed_and_read_as_the_second_hop() {
    // The server takes only TLS; PgBouncer connects to it without.
    let s = setup_with("hostssl all all 127.0.0.1/32 trust\n");
    let bouncer = s.bouncer(
        "auth_type = cert\nclient_tls_sslmode = verify-full\nserver_tls_sslmode = disable\n",
        &["alice"],
    );
    let (run, target) = s.diagnose(&bouncer, &format!("user=alice {}", s.client("alice")));
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failed = run.expect_finding("pooler_server_login_failed", "error");
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .contains("no pg_hba.conf entry"),
        "{failed}"
    );
    assert_eq!(evidence(failed, "sqlstate"), "08P01");
    assert!(run.finding("hba_no_entry").is_none(), "{}", run.stdout);
    s.agrees(&run, &target);
}

const POOL_HBA_CERT: &str = "local all all trust\nhostssl all all 127.0.0.1/32 cert\n";

impl Setup {
    fn pgpool(&self, pool_hba: &str) -> Pgpool {
        let leaf = self.ca.issue(&LeafSpec::server(
            "localhost",
            &["localhost"],
            &["127.0.0.1"],
        ));
        Pgpool::start(
            &self.pg,
            PgpoolConfig {
                pool_hba: pool_hba.into(),
                tls: Some(leaf.pair()),
                client_ca: Some(self.ca.issued.cert_pem.clone()),
            },
        )
    }

    fn diagnose_at(&self, conninfo: String) -> (DoctorRun, String) {
        let target = format!("{conninfo} sslrootcert={}", self.root());
        let run = self.run(&target, &[]);
        (run, target)
    }
}

#[test]
fn pgpool_is_named_and_its_pool_hba_conf_is_the_file_that_refused_plaintext() {
    let s = setup();
    let pool = s.pgpool(POOL_HBA_CERT);
    let (run, target) = s.diagnose_at(pool.conninfo(&format!("user=alice {}", s.client("alice"))));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, pool.log());
    assert_eq!(peer(&run), "pgpool-II");
    let refused = run.expect_finding("hba_no_entry", "info");
    assert!(evidence(refused, "file")
        .to_string()
        .contains("pool_hba.conf"));
    // The refusal of plaintext is the file doing its job at verify-full: no line to add.
    assert!(refused["fix"].is_null(), "{refused}");
    assert!(
        refused["summary"]
            .as_str()
            .unwrap()
            .contains("plaintext is refused"),
        "{refused}"
    );
    s.agrees(&run, &target);
    // pgpool-II's own connection to the server, by its settings: ssl = on with ssl_ca_cert
    // verifies the chain and no libpq sslmode matches it whole.
    let conf = pool.dir.join("pgpool.conf").display().to_string();
    let run = s.run(&target, &["--pooler-config", &conf]);
    let hop = run.expect_finding("pooler_server_hop", "info");
    assert!(hop["summary"].as_str().unwrap().contains("works"), "{hop}");
    assert!(
        hop.to_string().contains("no libpq sslmode matches"),
        "{hop}"
    );
}

#[test]
fn pgpool_cert_authentication_compares_the_cn_without_case() {
    let s = setup();
    let pool = s.pgpool(POOL_HBA_CERT);
    // A CN that is not the user: refused, in pgpool-II's terms.
    let (run, target) = s.diagnose_at(pool.conninfo(&format!("user=alice {}", s.client("bob"))));
    assert_eq!(run.code, 1);
    let failed = run.expect_finding("pooler_cert_auth_failed", "error");
    assert_eq!(evidence(failed, "certificate_cn"), "bob");
    s.agrees(&run, &target);
    // The user in capitals: pgpool-II accepts, PostgreSQL's cert method would not.
    let (run, target) = s.diagnose_at(pool.conninfo(&format!("user=alice {}", s.client("ALICE"))));
    assert_eq!(run.code, 0, "{}", run.stdout);
    let differs = run.expect_finding("pooler_cert_match_differs", "warning");
    assert_eq!(evidence(differs, "peer"), "pgpool-II");
    s.agrees(&run, &target);
    // No certificate at all.
    let (run, target) = s.diagnose_at(pool.conninfo("user=alice"));
    assert_eq!(run.code, 1);
    let missing = run.expect_finding("client_cert_missing", "error");
    assert!(missing["summary"]
        .as_str()
        .unwrap()
        .contains("pool_hba.conf"));
    s.agrees(&run, &target);
}

#[test]
fn the_pooler_config_and_log_tell_the_two_candidates_apart_and_name_the_settings() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    let ini = bouncer.dir().join("pgbouncer.ini");
    let ini = ini.to_str().unwrap();
    let log = bouncer.log_path();
    let log = log.to_str().unwrap();
    let run_with = |extra: &str, flags: &[&str]| {
        let target = bouncer.conninfo(&format!("sslrootcert={} {extra}", s.root()));
        s.run(&target, flags)
    };
    // The config's auth_file lists alice: the name is what failed.
    let run = run_with(
        &format!("user=alice {}", s.client("bob")),
        &["--pooler-config", ini],
    );
    let failed = run.expect_finding("pooler_cert_auth_failed", "error");
    assert!(
        evidence(failed, "cause")
            .to_string()
            .contains("the user is in auth_file"),
        "{failed}"
    );
    let cited = crate::support::doctor::DoctorRun::evidence_all(failed, "pooler_setting");
    assert!(
        cited
            .iter()
            .any(|c| c.to_string().contains("auth_type = cert")),
        "{failed}"
    );
    // The config's usual mistake: clients verify fully, the server hop does not.
    let weak = run.expect_finding("pooler_config_weak_server_tls", "warning");
    assert!(evidence(weak, "server_side")
        .to_string()
        .contains("require"));
    // PgBouncer's log says carol is not a user it knows.
    let run = run_with(
        &format!("user=carol {}", s.client("carol")),
        &["--pooler-log", log],
    );
    let failed = run.expect_finding("pooler_cert_auth_failed", "error");
    assert!(
        evidence(failed, "pooler_log")
            .to_string()
            .contains("no such user: carol"),
        "{failed}"
    );
    assert!(failed["fix"].as_str().unwrap().contains("auth_file"));
    // And for bob's certificate, the name mismatch it logged.
    let run = run_with(
        &format!("user=alice {}", s.client("bob")),
        &["--pooler-log", log],
    );
    let failed = run.expect_finding("pooler_cert_auth_failed", "error");
    assert!(
        evidence(failed, "pooler_log")
            .to_string()
            .contains("name mismatch"),
        "{failed}"
    );
    // A file that is no pooler's configuration is a usage error naming it.
    let target = bouncer.conninfo("user=alice");
    let root = s.root();
    let bad = run_doctor(
        &[&target, "--pooler-config", &root],
        s.home.path(),
        None,
        &[],
    );
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("neither a pgbouncer.ini"),
        "{}",
        bad.stderr
    );
}

#[test]
fn pgbouncer_takes_a_subject_alt_name_or_the_cn() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    let issue = |name: &str, cn: &str, dns: &[&str]| {
        let mut spec = LeafSpec::client(cn);
        spec.dns = dns.iter().map(|d| d.to_string()).collect();
        let leaf = s.ca.issue(&spec);
        let cert = write_file(
            s.home.path(),
            &format!("{name}.crt"),
            leaf.cert_pem.as_bytes(),
            0o644,
        );
        let key = write_file(
            s.home.path(),
            &format!("{name}.key"),
            leaf.key_pem.as_bytes(),
            0o600,
        );
        format!("sslcert={} sslkey={}", cert.display(), key.display())
    };
    // A SAN beside the CN does not hide the CN from PgBouncer 1.18.
    let (run, target) = s.diagnose(
        &bouncer,
        &format!(
            "user=alice {}",
            issue("cn", "alice", &["alice.clients.example.com"])
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.finding("pooler_cert_match_differs").is_none(),
        "{}",
        run.stdout
    );
    s.agrees(&run, &target);
    // A SAN that names the user passes PgBouncer; PostgreSQL's cert method reads the CN.
    let (run, target) = s.diagnose(
        &bouncer,
        &format!("user=alice {}", issue("san", "bob", &["alice"])),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let differs = run.expect_finding("pooler_cert_match_differs", "warning");
    assert_eq!(evidence(differs, "certificate_cn"), "bob");
    s.agrees(&run, &target);
}

#[test]
fn pgbouncer_auth_hba_file_names_the_line_that_rejected() {
    let s = setup();
    let leaf = s.ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let bouncer = PgBouncer::start(
        &s.pg,
        BouncerConfig {
            settings:
                "auth_type = hba\nclient_tls_sslmode = verify-full\nserver_tls_sslmode = require\n"
                    .into(),
            users: vec!["alice".into(), "bob".into(), "dave".into()],
            tls: Some(leaf.pair()),
            client_ca: Some(s.ca.issued.cert_pem.clone()),
            server_ca: None,
            hba: Some(
                "hostssl app alice 127.0.0.1/32 cert\nhostssl app bob 127.0.0.1/32 reject\n".into(),
            ),
        },
    );
    let ini = bouncer.dir().join("pgbouncer.ini").display().to_string();
    let diagnose = |user: &str, flags: &[&str]| {
        let target = bouncer.conninfo(&format!(
            "sslrootcert={} user={user} {}",
            s.root(),
            s.client(user)
        ));
        (s.run(&target, flags), target)
    };
    // Without the file: both candidates.
    let (run, target) = diagnose("bob", &[]);
    let rejected = run.expect_finding("hba_reject", "error");
    assert_eq!(evidence(rejected, "peer"), "PgBouncer");
    assert_eq!(
        crate::support::doctor::DoctorRun::evidence_all(rejected, "candidate").len(),
        2
    );
    s.agrees(&run, &target);
    // With it: line 2 rejected bob.
    let (run, _) = diagnose("bob", &["--pooler-config", &ini]);
    let rejected = run.expect_finding("hba_reject", "error");
    assert_eq!(evidence(rejected, "hba_line"), 2, "{rejected}");
    // And no line admits dave.
    let (run, target) = diagnose("dave", &["--pooler-config", &ini]);
    let rejected = run.expect_finding("hba_reject", "error");
    assert!(
        evidence(rejected, "hba_rule")
            .to_string()
            .contains("no line"),
        "{rejected}"
    );
    s.agrees(&run, &target);
}

#[test]
fn a_certificate_problem_at_the_pooler_is_put_in_its_terms() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    // A certificate that expires within --warn-days is PgBouncer's, not PostgreSQL's.
    let target = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=app user=alice sslrootcert={} {}",
        bouncer.port,
        s.root(),
        s.client("alice")
    );
    let run = s.run(&target, &["--warn-days", "4000"]);
    let expiring = run.expect_finding("server_cert_expiring_soon", "warning");
    assert!(
        evidence(expiring, "in_pooler_terms")
            .to_string()
            .contains("client_tls_cert_file"),
        "{expiring}"
    );
    assert!(
        expiring["fix"].as_str().unwrap().contains("RELOAD;"),
        "{expiring}"
    );
    s.agrees(&run, &target);
}

#[test]
fn a_tls_version_pgbouncer_refuses_names_client_tls_protocols() {
    let s = setup();
    // PgBouncer speaks only TLS 1.2 to its clients; the client asks for 1.3 at least.
    let bouncer = s.bouncer(
        &format!("{CERT_AUTH}client_tls_protocols = tlsv1.2\n"),
        &["alice"],
    );
    let (run, target) = s.diagnose(
        &bouncer,
        &format!(
            "user=alice ssl_min_protocol_version=TLSv1.3 {}",
            s.client("alice")
        ),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failed = run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["phase"] == "tls" && f["severity"] == "error")
        .unwrap_or_else(|| panic!("no TLS error: {}", run.stdout))
        .clone();
    let fix = failed["fix"].as_str().unwrap();
    assert!(fix.contains("client_tls_protocols"), "{failed}");
    assert!(fix.contains("pgbouncer.ini"), "{failed}");
    assert!(
        !fix.contains("ssl_min_protocol_version / ssl_max"),
        "{failed}"
    );
    // The client offered only TLS 1.3, and the finding says so.
    assert!(
        failed["summary"].as_str().unwrap().contains("(TLSv1.3)"),
        "{failed}"
    );
    assert!(evidence(&failed, "client_setting")
        .to_string()
        .contains("ssl_min_protocol_version"));
    s.agrees(&run, &target);
}

#[test]
fn a_client_certificate_from_a_ca_pgbouncer_does_not_trust_names_client_tls_ca_file() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    // alice's certificate from a CA that is not in client_tls_ca_file.
    let other = Ca::root("Not The Pooler's CA");
    let leaf = other.issue(&LeafSpec::client("alice"));
    let cert = write_file(
        s.home.path(),
        "other-alice.crt",
        leaf.cert_pem.as_bytes(),
        0o644,
    );
    let key = write_file(
        s.home.path(),
        "other-alice.key",
        leaf.key_pem.as_bytes(),
        0o600,
    );
    let (run, target) = s.diagnose(
        &bouncer,
        &format!(
            "user=alice sslcert={} sslkey={}",
            cert.display(),
            key.display()
        ),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let refused = run.expect_finding("client_cert_unknown_ca", "error");
    let fix = refused["fix"].as_str().unwrap();
    assert!(fix.contains("PgBouncer's client_tls_ca_file"), "{refused}");
    assert!(!fix.contains("ssl_ca_file"), "{refused}");
    s.agrees(&run, &target);
}

#[test]
fn a_login_served_on_a_pooled_server_connection_is_named() {
    let s = setup();
    let bouncer = s.bouncer(CERT_AUTH, &["alice"]);
    let client = s.client("alice");
    let (first, _) = s.diagnose(&bouncer, &format!("user=alice {client}"));
    assert_eq!(first.code, 0, "{}", first.stdout);
    assert!(
        !first.stdout.contains("from its pool"),
        "the first login opened its server connection: {}",
        first.stdout
    );
    // PgBouncer keeps the server connection; the next login is served on it.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (second, target) = s.diagnose(&bouncer, &format!("user=alice {client}"));
    assert_eq!(second.code, 0, "{}", second.stdout);
    let detected = second.expect_finding("pooler_detected", "info");
    let views = crate::support::doctor::DoctorRun::evidence_all(detected, "server_view");
    assert!(
        views
            .iter()
            .any(|v| v.to_string().contains("from its pool")),
        "{detected}"
    );
    s.agrees(&second, &target);
}

#[test]
fn a_login_from_pgbouncers_cache_that_ends_at_the_first_query_is_the_second_hop() {
    let s = setup();
    // Logins are refused for a while after a failed server login; the first query waits at
    // most 2 s for a server connection.
    let bouncer = s.bouncer(
        &format!("{CERT_AUTH}server_login_retry = 60\nquery_wait_timeout = 2\n"),
        &["alice"],
    );
    let client = s.client("alice");
    let (first, _) = s.diagnose(&bouncer, &format!("user=alice {client}"));
    assert_eq!(first.code, 0, "{}", first.stdout);
    // The server goes away. PgBouncer still completes logins from what it cached.
    s.pg.stop();
    let (waited, _) = s.diagnose(&bouncer, &format!("user=alice {client}"));
    assert_eq!(waited.code, 1, "{}\n{}", waited.stdout, bouncer.log());
    let failed = waited.expect_finding("pooler_server_login_failed", "error");
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .contains("query_wait_timeout"),
        "{failed}"
    );
    assert!(
        evidence(failed, "stage")
            .to_string()
            .contains("first query"),
        "{failed}"
    );
    // Its failed login makes PgBouncer turn the next sessions away at once.
    let (refused, target) = s.diagnose(&bouncer, &format!("user=alice {client}"));
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, bouncer.log());
    let failed = refused.expect_finding("pooler_server_login_failed", "error");
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .contains("server login has been failing"),
        "{failed}"
    );
    assert_eq!(evidence(failed, "sqlstate"), "08P01");
    assert!(
        refused.finding("tls_session").is_none(),
        "a session that ends at its first query is no session: {}",
        refused.stdout
    );
    // psql connects, and its query fails: every sslmode cell agrees.
    s.agrees(&refused, &target);
}

#[test]
fn a_healthy_pgpool_login_is_named_by_its_answer_to_show_pool_version() {
    let s = setup();
    // Nothing refuses: no error names pgpool-II. The server's view lacks the client
    // certificate, so the doctor asks the intermediary what it is.
    let pool = s.pgpool(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n",
    );
    let (run, target) = s.diagnose_at(pool.conninfo(&format!("user=alice {}", s.client("alice"))));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, pool.log());
    assert_eq!(peer(&run), "pgpool-II", "{}", run.stdout);
    let detected = run.expect_finding("pooler_detected", "info");
    let said = evidence(detected, "pool_version").to_string();
    assert!(said.contains("SHOW pool_version answered \\\"4."), "{said}");
    s.agrees(&run, &target);
    // --check asks nothing more than an application would.
    let check = s.run(&target, &["--check"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
    assert!(!check.stdout.contains("pool_version"), "{}", check.stdout);
}

#[test]
fn a_user_missing_from_auth_file_is_looked_up_with_auth_query() {
    let s = setup();
    // auth_user lets PgBouncer look up users it does not list, on the server.
    let bouncer = s.bouncer(
        &format!("{CERT_AUTH}auth_user = postgres\n"),
        &["alice", "postgres"],
    );
    let ini = bouncer.dir().join("pgbouncer.ini").display().to_string();
    let diagnose = |user: &str| {
        let target = bouncer.conninfo(&format!(
            "sslrootcert={} user={user} {}",
            s.root(),
            s.client(user)
        ));
        let run = s.run(&target, &["--pooler-config", &ini]);
        (run, target)
    };
    // carol is not in auth_file but is a role on the server: auth_query finds her.
    let (run, target) = diagnose("carol");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, bouncer.log());
    s.agrees(&run, &target);
    // carol with bob's certificate: auth_query found her, so the names are what failed.
    let target = bouncer.conninfo(&format!(
        "sslrootcert={} user=carol {}",
        s.root(),
        s.client("bob")
    ));
    let run = s.run(&target, &["--pooler-config", &ini]);
    let failed = run.expect_finding("pooler_cert_auth_failed", "error");
    let cause = evidence(failed, "cause").to_string();
    assert!(
        cause.contains("found it on the server with auth_query"),
        "{failed}"
    );
    assert!(cause.contains("do not match"), "{failed}");
    // dave is neither: PgBouncer says "no such user", and the doctor says where it looked.
    let (run, target) = diagnose("dave");
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, bouncer.log());
    let missing = run.expect_finding("role_missing", "error");
    let summary = missing["summary"].as_str().unwrap();
    assert!(summary.contains("auth_user \"postgres\""), "{missing}");
    assert!(summary.contains("found no row"), "{missing}");
    assert_eq!(evidence(missing, "peer"), "PgBouncer");
    s.agrees(&run, &target);
}

#[test]
fn pgpool_that_cannot_log_in_to_the_server_is_the_second_hop() {
    // The server refuses every TCP login, so pgpool-II's own login to it fails.
    let s = setup_with(
        "local all all trust\nhost all all 127.0.0.1/32 reject\nhostssl all all 127.0.0.1/32 reject\n",
    );
    let pool = s.pgpool(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n",
    );
    let (run, target) = s.diagnose_at(pool.conninfo("user=alice"));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, pool.log());
    let failed = run.expect_finding("pooler_server_login_failed", "error");
    assert_eq!(evidence(failed, "peer"), "pgpool-II");
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .contains("kind 'E' when expecting 'R'"),
        "{failed}"
    );
    // pgpool-II sends an empty pre-3.0 error first: libpq (and psql) show nothing.
    assert!(
        evidence(failed, "libpq_shows")
            .to_string()
            .contains("pre-3.0 error with no text"),
        "{failed}"
    );
    assert!(
        run.finding("protocol_violation").is_none(),
        "{}",
        run.stdout
    );
    s.agrees(&run, &target);
    // The server gone: pgpool-II cannot connect to its backend at all.
    s.pg.stop();
    let (run, target) = s.diagnose_at(pool.conninfo("user=alice"));
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failed = run.expect_finding("pooler_server_login_failed", "error");
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .contains("failed to create a backend 0 connection"),
        "{failed}"
    );
    s.agrees(&run, &target);
}
