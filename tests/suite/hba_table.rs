//! Issue 4: table-driven parse and match cases for pg_hba.conf and pg_ident.conf.

use std::net::IpAddr;
use std::path::Path;

use pgtls_doctor::hba::matcher::{
    cert_name_verdict, decide, map_user, near_misses, CertNameVerdict, Connection,
};
use pgtls_doctor::hba::{self, Address, ClientCert, HbaFile};

fn parse(text: &str, version: u32) -> HbaFile {
    hba::parse_hba(text, Path::new("/etc/pg_hba.conf"), version)
}

/// (line, version, expected error or None)
const PARSE_CASES: &[(&str, u32, Option<&str>)] = &[
    ("host all all 127.0.0.1/32 trust", 17, None),
    ("host all all 127.0.0.1 255.255.255.255 trust", 17, None),
    ("host all all 10.0.0.0 255.255.0.0 md5", 17, None),
    ("host all all 127.0.0.1 trust", 17, Some("invalid IP mask \"trust\": Name or service not known")),
    ("host all all 127.0.0.1", 17, Some("end-of-line before netmask specification")),
    ("host all all 127.0.0.1/33 trust", 17, Some("invalid CIDR mask in address \"127.0.0.1/33\"")),
    ("host all all db.example.com/24 trust", 17, Some("specifying both host name and CIDR mask is invalid: \"db.example.com/24\"")),
    ("host all all ::1/128 trust", 17, None),
    ("host all all ::1 255.255.255.255 trust", 17, Some("IP address and mask do not match")),
    ("hots all all all trust", 17, Some("invalid connection type \"hots\"")),
    ("host", 17, Some("end-of-line before database specification")),
    ("host all", 17, Some("end-of-line before role specification")),
    ("host all all", 17, Some("end-of-line before IP address specification")),
    ("host all all all", 17, Some("end-of-line before authentication method")),
    ("host all all all foo", 17, Some("invalid authentication method \"foo\"")),
    ("host all all all cert", 17, Some("cert authentication is only supported on hostssl connections")),
    ("local all all ident", 17, None),
    ("host all all all peer", 17, Some("peer authentication is only supported on local sockets")),
    ("hostssl all all all trust clientcert=1", 17, Some("invalid value for clientcert: \"1\"")),
    ("hostssl all all all trust clientcert=1", 13, None),
    ("hostssl all all all trust clientcert=no-verify", 14, Some("invalid value for clientcert: \"no-verify\"")),
    ("host all all all trust clientcert=verify-ca", 17, Some("clientcert can only be configured for \"hostssl\" rows")),
    ("hostssl all all all cert clientcert=verify-ca", 17, Some("clientcert only accepts \"verify-full\" when using \"cert\" authentication")),
    ("hostssl all all all trust map=x", 17, Some("authentication option \"map\" is only valid for authentication methods ident, peer, gssapi, sspi, and cert")),
    ("hostssl all all all trust foo", 17, Some("authentication option not in name=value format: foo")),
    ("hostssl all all all trust clientname=XX", 17, Some("invalid value for clientname: \"XX\"")),
    ("host all all all trust clientname=CN", 17, Some("clientname can only be configured for \"hostssl\" rows")),
    ("host all all all trust bogus=1", 17, Some("unrecognized authentication option name: \"bogus\"")),
    ("hostssl all all all cert", 17, None),
    ("hostssl all all all cert map=m clientname=DN", 17, None),
    ("host all all all trust # a comment", 17, None),
    ("host \"all\" all all trust", 17, None),
    ("host db1,db2 u1,\"U 2\" all trust", 17, None),
    ("host /^(unclosed all all trust", 16, Some("invalid regular expression \"^(unclosed\"")),
    ("host /^(unclosed all all trust", 15, None),
    ("host all all samehost trust", 17, None),
    ("host all all .example.com trust", 17, None),
    ("include other.conf", 15, Some("invalid connection type \"include\"")),
    ("host all all all trust \"unterminated", 17, Some("unterminated quoted string")),
    ("hostgssenc all all all trust", 17, None),
];

#[test]
fn parse_cases() {
    for (line, version, expected) in PARSE_CASES {
        let file = parse(line, *version);
        match expected {
            None => assert!(
                file.errors.is_empty(),
                "{line} (PG {version}): unexpected {:?}",
                file.errors
            ),
            Some(msg) => {
                let e = file
                    .errors
                    .first()
                    .unwrap_or_else(|| panic!("{line} (PG {version}): no error, wanted {msg}"));
                assert!(
                    e.message.starts_with(msg),
                    "{line} (PG {version}): {} != {msg}",
                    e.message
                );
                assert_eq!(e.line_number, 1, "{line}");
            }
        }
    }
}

#[test]
fn parsed_fields() {
    let f = parse(
        "host all all 10.1.0.0 255.255.0.0 md5\nlocal all all ident\nhostssl all all all cert\n",
        17,
    );
    assert_eq!(
        f.rules[0].address,
        Some(Address::Net {
            addr: "10.1.0.0".parse().unwrap(),
            prefix: 16
        })
    );
    assert_eq!(f.rules[1].method, "peer", "ident on local is peer");
    assert_eq!(
        f.rules[2].clientcert,
        ClientCert::VerifyFull,
        "cert implies verify-full"
    );
    let f = parse("host \"all\" \"+g\" all trust\n", 17);
    assert!(f.rules[0].databases[0].quoted && f.rules[0].users[0].quoted);
    let f = parse(
        "host all all \\\n  127.0.0.1/32 \\\n  trust\nhost all all all reject\n",
        17,
    );
    assert_eq!(f.rules.len(), 2);
    assert_eq!(
        (f.rules[0].line_number, f.rules[1].line_number),
        (1, 4),
        "continued lines keep their first number"
    );
    let f = parse("# nothing\n\n", 17);
    assert!(f.errors[0].message.contains("contains no entries"));
}

fn conn(ssl: bool, ip: &str, user: &str, db: &str) -> Connection {
    Connection {
        local: false,
        ssl,
        client_ip: Some(ip.parse().unwrap()),
        server_ip: Some("127.0.0.1".parse().unwrap()),
        user: user.into(),
        database: db.into(),
        replication: false,
    }
}

/// (pg_hba.conf, version, connection, expected line)
fn match_cases() -> Vec<(&'static str, u32, Connection, Option<usize>)> {
    vec![
        (
            "host all all 127.0.0.1/32 trust\nhost all all all reject",
            17,
            conn(false, "127.0.0.1", "a", "d"),
            Some(1),
        ),
        (
            "host all all all reject\nhost all all 127.0.0.1/32 trust",
            17,
            conn(false, "127.0.0.1", "a", "d"),
            Some(1),
        ),
        (
            "hostssl all all all trust\nhost all all all md5",
            17,
            conn(false, "127.0.0.1", "a", "d"),
            Some(2),
        ),
        (
            "hostssl all all all trust\nhost all all all md5",
            17,
            conn(true, "127.0.0.1", "a", "d"),
            Some(1),
        ),
        (
            "hostnossl all all all reject\nhostssl all all all cert",
            17,
            conn(true, "10.0.0.1", "a", "d"),
            Some(2),
        ),
        (
            "hostnossl all all all reject\nhostssl all all all cert",
            17,
            conn(false, "10.0.0.1", "a", "d"),
            Some(1),
        ),
        (
            "host all all 127.0.0.1/32 trust",
            17,
            conn(false, "::1", "a", "d"),
            None,
        ),
        (
            "host all all 127.0.0.1/32 trust",
            17,
            conn(false, "::ffff:127.0.0.1", "a", "d"),
            None,
        ),
        (
            "host all all ::1/128 trust",
            17,
            conn(false, "127.0.0.1", "a", "d"),
            None,
        ),
        (
            "host all all ::1/128 trust",
            17,
            conn(false, "::1", "a", "d"),
            Some(1),
        ),
        (
            "host all all 10.0.0.0/24 trust",
            17,
            conn(false, "10.0.0.77", "a", "d"),
            Some(1),
        ),
        (
            "host all all 10.0.0.0/24 trust",
            17,
            conn(false, "10.0.1.77", "a", "d"),
            None,
        ),
        (
            "host all all 10.0.0.0 255.255.255.0 trust",
            17,
            conn(false, "10.0.0.9", "a", "d"),
            Some(1),
        ),
        (
            "host all all 0.0.0.0/0 trust",
            17,
            conn(false, "192.0.2.1", "a", "d"),
            Some(1),
        ),
        (
            "host sameuser all all trust",
            17,
            conn(false, "127.0.0.1", "alice", "alice"),
            Some(1),
        ),
        (
            "host sameuser all all trust",
            17,
            conn(false, "127.0.0.1", "alice", "app"),
            None,
        ),
        (
            "host samerole all all trust\nhost all all all md5",
            17,
            conn(false, "127.0.0.1", "alice", "app"),
            Some(2),
        ),
        (
            "host samerole all all trust",
            17,
            conn(false, "127.0.0.1", "app", "app"),
            Some(1),
        ),
        (
            "host all +admins all trust\nhost all all all md5",
            17,
            conn(false, "127.0.0.1", "alice", "d"),
            Some(2),
        ),
        (
            "host all +alice all trust",
            17,
            conn(false, "127.0.0.1", "alice", "d"),
            Some(1),
        ),
        (
            "host all \"+alice\" all trust",
            17,
            conn(false, "127.0.0.1", "+alice", "d"),
            Some(1),
        ),
        (
            "host all /^app_ all trust",
            16,
            conn(false, "127.0.0.1", "app_ro", "d"),
            Some(1),
        ),
        (
            "host all /^app_ all trust",
            15,
            conn(false, "127.0.0.1", "app_ro", "d"),
            None,
        ),
        (
            "host /^sales_\\d+$ all all trust",
            17,
            conn(false, "127.0.0.1", "u", "sales_42"),
            Some(1),
        ),
        (
            "host /^sales_\\d+$ all all trust",
            17,
            conn(false, "127.0.0.1", "u", "sales_x"),
            None,
        ),
        (
            "host \"all\" all all trust",
            17,
            conn(false, "127.0.0.1", "u", "app"),
            None,
        ),
        (
            "host \"all\" all all trust",
            17,
            conn(false, "127.0.0.1", "u", "all"),
            Some(1),
        ),
        (
            "host all Alice all trust",
            17,
            conn(false, "127.0.0.1", "alice", "d"),
            None,
        ),
        (
            "host replication all all trust",
            17,
            conn(false, "127.0.0.1", "u", "replication"),
            None,
        ),
        (
            "local all all trust\nhost all all all md5",
            17,
            conn(false, "127.0.0.1", "u", "d"),
            Some(2),
        ),
        (
            "host all all db.example.com trust\nhost all all all md5",
            17,
            conn(false, "127.0.0.1", "u", "d"),
            Some(2),
        ),
        (
            "host all all samehost trust",
            17,
            conn(false, "127.0.0.1", "u", "d"),
            Some(1),
        ),
        (
            "host all all samenet trust\nhost all all all reject",
            17,
            conn(false, "127.0.0.1", "u", "d"),
            Some(2),
        ),
        (
            "hostgssenc all all all trust\nhostnogssenc all all all md5",
            17,
            conn(true, "127.0.0.1", "u", "d"),
            Some(2),
        ),
        (
            "host db1,db2 u1,u2 all trust",
            17,
            conn(false, "127.0.0.1", "u2", "db2"),
            Some(1),
        ),
        (
            "host db1,db2 u1,u2 all trust",
            17,
            conn(false, "127.0.0.1", "u3", "db2"),
            None,
        ),
        (
            "host all all \\\n 127.0.0.1/32 trust",
            17,
            conn(false, "127.0.0.1", "u", "d"),
            Some(1),
        ),
    ]
}

#[test]
fn match_cases_pick_the_servers_line() {
    for (text, version, c, expected) in match_cases() {
        let file = parse(text, version);
        assert!(file.errors.is_empty(), "{text}: {:?}", file.errors);
        let got = decide(&file.rules, &c).rule.map(|r| r.line_number);
        assert_eq!(got, expected, "{text} with {c:?}");
    }
}

#[test]
fn unknowable_fields_are_stated_as_assumptions() {
    let file = parse(
        "host all +admins all trust\nhost all all samenet md5\nhost all all all reject",
        17,
    );
    let d = decide(&file.rules, &conn(false, "127.0.0.1", "alice", "d"));
    assert_eq!(d.rule.unwrap().line_number, 3);
    assert_eq!(d.assumptions.len(), 2, "{:?}", d.assumptions);
    assert!(d.assumptions[0].contains("+group"));
}

#[test]
fn near_misses_name_what_differed() {
    let file = parse("hostssl app alice 127.0.0.1/32 scram-sha-256\nhost app bob 127.0.0.1/32 md5\nhost other alice 10.0.0.0/8 md5", 17);
    let c = conn(false, "127.0.0.1", "alice", "app");
    assert!(decide(&file.rules, &c).rule.is_none());
    let misses = near_misses(&file.rules, &c);
    assert_eq!(
        misses[0].0.line_number, 2,
        "the user was the only difference on line 2"
    );
    assert!(misses[0].1.describe().contains("user \"alice\""));
    assert!(misses
        .iter()
        .any(|(r, m)| r.line_number == 1 && m.describe().contains("not encrypted")));
}

#[test]
fn includes_at_files_and_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("users.txt"), "alice\nbob, carol\n").unwrap();
    std::fs::write(
        d.join("extra.conf"),
        "# extra\nhost all @users.txt 10.0.0.0/8 md5\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("conf.d")).unwrap();
    std::fs::write(d.join("conf.d/b.conf"), "host all all all reject\n").unwrap();
    std::fs::write(d.join("conf.d/a.conf"), "host all dave all trust\n").unwrap();
    std::fs::write(d.join("conf.d/.hidden.conf"), "host all all all trust\n").unwrap();
    let main = "include extra.conf\ninclude_if_exists missing.conf\ninclude_dir conf.d\n";
    let file = hba::parse_hba(main, &d.join("pg_hba.conf"), 17);
    assert!(file.errors.is_empty(), "{:?}", file.errors);
    assert_eq!(file.rules.len(), 3);
    assert_eq!(file.rules[0].file, d.join("extra.conf"));
    assert_eq!(file.rules[0].line_number, 2);
    assert_eq!(
        file.rules[0]
            .users
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );
    assert!(
        file.rules[1].raw.contains("dave"),
        "include_dir reads files in name order"
    );
    let c = conn(false, "10.1.2.3", "carol", "x");
    assert_eq!(
        decide(&file.rules, &c).rule.unwrap().file,
        d.join("extra.conf")
    );
    let missing = hba::parse_hba("include nowhere.conf\n", &d.join("pg_hba.conf"), 17);
    assert!(missing.errors[0].message.starts_with("could not open file"));
}

#[test]
fn ident_maps_literal_regex_and_backreferences() {
    let ident = hba::parse_ident(
        "m  carol  alice\nm  /^(.*)-admin$  \\1\nm  /^nocapture$  \\1\nm  /^svc_.*$  \"all\"\nM  dave  alice\nm /^any-(.*)$ all\n",
        Path::new("/etc/pg_ident.conf"),
    );
    assert!(ident.errors.is_empty(), "{:?}", ident.errors);
    let rules = &ident.rules;
    assert_eq!(map_user("m", "carol", "alice", rules), Some(1));
    assert_eq!(map_user("m", "alice-admin", "alice", rules), Some(2));
    assert_eq!(map_user("m", "alice-admin", "bob", rules), None);
    assert_eq!(
        map_user("m", "nocapture", "x", rules),
        None,
        "\\1 without a capture group never maps"
    );
    assert_eq!(
        map_user("m", "svc_1", "all", rules),
        Some(4),
        "a quoted all is a literal role name"
    );
    assert_eq!(map_user("m", "svc_1", "bob", rules), None);
    assert_eq!(
        map_user("m", "dave", "alice", rules),
        None,
        "map names are case-sensitive"
    );
    assert_eq!(
        map_user("m", "any-thing", "whoever", rules),
        Some(6),
        "all matches any user (16+)"
    );
}

#[test]
fn certificate_name_rules() {
    let file = parse(
        "hostssl a all all cert\nhostssl b all all cert map=m\nhostssl c all all trust clientcert=verify-full clientname=DN\nhostssl d all all scram-sha-256 clientcert=verify-ca",
        17,
    );
    let ident = hba::parse_ident("m /^(.*)-admin$ \\1\n", Path::new("/i")).rules;
    let r = &file.rules;
    assert!(matches!(
        cert_name_verdict(&r[0], Some("alice"), None, "alice", &ident),
        CertNameVerdict::Accepted { .. }
    ));
    assert!(matches!(
        cert_name_verdict(&r[0], Some("bob"), None, "alice", &ident),
        CertNameVerdict::Refused { .. }
    ));
    assert!(matches!(
        cert_name_verdict(&r[1], Some("alice-admin"), None, "alice", &ident),
        CertNameVerdict::Accepted { .. }
    ));
    match cert_name_verdict(&r[1], Some("alice"), None, "alice", &ident) {
        CertNameVerdict::Refused { why, .. } => {
            assert!(why.starts_with("no match in usermap \"m\""))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        cert_name_verdict(
            &r[2],
            Some("x"),
            Some("O=Acme,CN=alice"),
            "O=Acme,CN=alice",
            &ident
        ),
        CertNameVerdict::Accepted { .. }
    ));
    assert_eq!(
        cert_name_verdict(&r[3], Some("x"), None, "alice", &ident),
        CertNameVerdict::NotChecked
    );
    assert!(matches!(
        cert_name_verdict(&r[0], None, None, "alice", &ident),
        CertNameVerdict::Refused { .. }
    ));
}

#[test]
fn ipv4_and_ipv6_never_mix() {
    let v4: IpAddr = "127.0.0.1".parse().unwrap();
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert!(hba::matcher::in_network(v4, v4, 32));
    assert!(!hba::matcher::in_network(mapped, v4, 0));
}
