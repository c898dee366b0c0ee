//! `pgtls-doctor explain CODE`: for every code of the catalogue, what it means, how it shows
//! up in psql (libpq), how to confirm it by hand, and how to fix it. The match below has no
//! wildcard, so a new code does not compile without its explanation. docs/findings.md is
//! generated from the same text.

use crate::catalogue::{Code, Phase};

/// The long explanation of one code.
#[derive(Debug, Clone, Copy)]
pub struct Explanation {
    /// What libpq (psql) prints for it, or that it prints nothing.
    pub libpq: &'static str,
    /// How to see it for yourself, without the doctor.
    pub confirm: &'static str,
    /// What makes it go away.
    pub fix: &'static str,
}

const fn e(libpq: &'static str, confirm: &'static str, fix: &'static str) -> Explanation {
    Explanation {
        libpq,
        confirm,
        fix,
    }
}

pub fn explain(code: Code) -> Explanation {
    use Code::*;
    match code {
        TcpConnectFailed => e(
            "connection to server at \"HOST\" (ADDR), port PORT failed: Connection refused / Is the server running on that host and accepting TCP/IP connections? (or: could not translate host name \"HOST\" to address)",
            "`nc -vz HOST PORT`; `getent hosts HOST`; on the server `ss -ltnp | grep PORT` and `SHOW listen_addresses;`",
            "start the server, listen on the right address (listen_addresses = '*' or the interface) and port, open the firewall, or fix the host name",
        ),
        SocketConnectFailed => e(
            "connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: No such file or directory / Is the server running locally and accepting connections on that socket?",
            "`ls -l DIR/.s.PGSQL.PORT` (the socket file exists only while the server runs); on the server `SHOW unix_socket_directories;` and `SHOW port;`",
            "start the server, or connect to the directory and port it listens on (unix_socket_directories and port in postgresql.conf; Debian uses /var/run/postgresql); \"Permission denied\" means the directory or socket is not open to your OS user",
        ),
        ConnectTimeout => e(
            "timeout expired (after connect_timeout), or psql waits until the kernel gives up",
            "`nc -vz -w 5 HOST PORT` hangs: packets are dropped; `traceroute -T -p PORT HOST` shows where",
            "open the firewall or security group for the port, or connect to the right address; raise connect_timeout only if the network is merely slow",
        ),
        NotPostgres => e(
            "received invalid response to SSL negotiation: X, or expected authentication request from server, but received X",
            "`printf '\\0\\0\\0\\x08\\x04\\xd2\\x16\\x2f' | nc HOST PORT | xxd | head` shows what answers the SSLRequest (PostgreSQL answers S or N)",
            "connect to PostgreSQL's port (5432 by default); for a TLS-terminating proxy or a PostgreSQL 17 direct-TLS port use sslnegotiation=direct",
        ),
        SslResponseInjected => e(
            "received unencrypted data after SSL response (libpq 14.1 and later refuse the connection)",
            "capture the SSLRequest exchange (`tcpdump -X port PORT`): bytes follow the server's S before the ClientHello",
            "find the proxy or middlebox that injects data (CVE-2021-23222) and remove or fix it; never downgrade libpq to accept it",
        ),
        ServerSslError => e(
            "server sent an error response during SSL exchange",
            "the server log at the same time shows why the backend could not start (could not fork, out of memory, too many processes)",
            "the text before TLS is unauthenticated: fix the server's resource problem it names (max_connections, memory, process limits)",
        ),
        ServerSslUnsupported => e(
            "server does not support SSL, but SSL was required",
            "`psql \"sslmode=disable ...\" -c 'SHOW ssl'` says off; `openssl s_client -starttls postgres -connect HOST:PORT </dev/null` fails at once",
            "set ssl = on with ssl_cert_file and ssl_key_file in postgresql.conf, then SELECT pg_reload_conf(); and check the log for \"could not load server certificate file\"",
        ),
        TlsHandshakeFailed => e(
            "SSL error: ... (the alert's words), or SSL SYSCALL error: EOF detected",
            "`openssl s_client -starttls postgres -connect HOST:PORT -servername HOST </dev/null` shows the alert; the server log says \"could not accept SSL connection: ...\"",
            "read the server log line for the reason; it is usually ssl_ciphers, ssl_ecdh_curve or the server key",
        ),
        TlsVersionUnsupported => e(
            "SSL error: tlsv1 alert protocol version, with: This may indicate that the server does not support any SSL protocol version between X and Y.",
            "`openssl s_client -starttls postgres -connect HOST:PORT -tls1_2 </dev/null` and `-tls1_3`: one of them should succeed",
            "align ssl_min_protocol_version/ssl_max_protocol_version on the server with the client's (TLSv1.2 or later on both)",
        ),
        RootCertMissing => e(
            "root certificate file \"~/.postgresql/root.crt\" does not exist / Either provide the file or change sslmode to disable server certificate verification.",
            "`ls -l ~/.postgresql/root.crt` or the sslrootcert path",
            "put the CA certificate that signed the server's certificate there, or set sslrootcert=/path/to/ca.crt (sslrootcert=system for a public CA, libpq 16+)",
        ),
        RootCertUnreadable => e(
            "could not read root certificate file \"FILE\": no certificate or crl found (the connection fails at every sslmode that tries TLS)",
            "`openssl x509 -in FILE -noout -subject` fails: the file holds no PEM certificate",
            "replace the file with the CA certificate in PEM form (`openssl x509 -inform DER -in ca.der -out root.crt` for a DER file)",
        ),
        ServerCertExpired => e(
            "SSL error: certificate verify failed (libpq does not say which check)",
            "`openssl s_client -starttls postgres -connect HOST:PORT -showcerts </dev/null | openssl x509 -noout -dates`",
            "renew the server certificate (or the expired CA), install it as ssl_cert_file, then SELECT pg_reload_conf();",
        ),
        ServerCertNotYetValid => e(
            "SSL error: certificate verify failed",
            "compare `date -u` on the client with the certificate's notBefore (`openssl x509 -noout -startdate`)",
            "fix the clock of the client, or of the machine that issued the certificate, or wait until it is valid",
        ),
        ServerCertUnknownCa => e(
            "SSL error: certificate verify failed",
            "`openssl s_client -starttls postgres -connect HOST:PORT -CAfile ROOT -verify_return_error </dev/null` says unable to get local issuer certificate or self-signed certificate",
            "append the CA that issued the server certificate to the root file; if the server sends only its leaf, put the intermediates after it in ssl_cert_file",
        ),
        ServerCertRevoked => e(
            "SSL error: certificate verify failed",
            "`openssl verify -crl_check -CAfile ROOT -CRLfile CRL server.crt` says certificate revoked",
            "install a new, unrevoked server certificate; if the revocation is a mistake, publish a corrected CRL",
        ),
        CrlIncomplete => e(
            "SSL error: certificate verify failed",
            "`openssl verify -crl_check_all -CAfile ROOT -CRLfile CRL chain.pem` says unable to get certificate CRL",
            "give a current CRL from every CA in the chain (sslcrl or sslcrldir), or stop loading CRLs",
        ),
        ServerCertHostnameMismatch => e(
            "server certificate for \"NAME\" (and N other names) does not match host name \"HOST\"",
            "`openssl s_client -starttls postgres -connect HOST:PORT </dev/null | openssl x509 -noout -ext subjectAltName`",
            "connect with host= set to a name the certificate holds (keep hostaddr= for the address), or reissue it with subjectAltName=DNS:HOST (or IP:ADDR)",
        ),
        ServerCertWeakKey => e(
            "SSL error: certificate verify failed (OpenSSL: key too small, or CA signature digest too weak)",
            "`openssl x509 -in server.crt -noout -text | grep -E 'Public-Key|Signature Algorithm'`",
            "reissue with RSA 2048+ or ECDSA P-256 and SHA-256: `pgtls-doctor pki DIR --server-name HOST` makes such a set",
        ),
        ServerCertWrongPurpose => e(
            "SSL error: certificate verify failed (OpenSSL: unsupported certificate purpose)",
            "`openssl x509 -in server.crt -noout -ext extendedKeyUsage` lacks TLS Web Server Authentication",
            "reissue with extendedKeyUsage=serverAuth, or without the extension",
        ),
        ServerCertInvalid => e(
            "SSL error: certificate verify failed",
            "`openssl verify -CAfile ROOT -untrusted chain.pem server.crt` names OpenSSL's reason",
            "fix what OpenSSL names in the evidence (a CA:FALSE intermediate, a bad signature, a chain too long)",
        ),
        CrlIgnored => e(
            "nothing: libpq silently ignores a CRL file it cannot load",
            "`openssl crl -in ~/.postgresql/root.crl -noout -text` fails",
            "put the CA's CRL there in PEM form (`openssl crl -inform DER -in crl.der -out root.crl`), or remove the file",
        ),
        ServerCertExpiringSoon => e(
            "nothing yet; after the date: SSL error: certificate verify failed",
            "`openssl s_client -starttls postgres -connect HOST:PORT </dev/null | openssl x509 -noout -enddate`",
            "renew before the date and SELECT pg_reload_conf(); monitor the date (the doctor's JSON not_after, or --warn-days in CI)",
        ),
        ServerCertRustlsDiffers => e(
            "nothing: libpq (OpenSSL) accepts the chain; clients on rustls/webpki say UnknownIssuer, CaUsedAsEndEntity or NotValidForName",
            "connect with a rustls-based client (tokio-postgres-rustls, sqlx) at verify-full",
            "issue the server certificate from a CA (not self-signed, CA:FALSE, X.509 v3) with the host names in subjectAltName",
        ),
        HbaNoEntry => e(
            "FATAL:  no pg_hba.conf entry for host \"ADDR\", user \"USER\", database \"DB\", SSL encryption (or no encryption)",
            "`SELECT line_number, type, database, user_name, address, auth_method FROM pg_hba_file_rules;` and compare with the client's address and encryption",
            "add a line (hostssl for TLS) for that database, user and client network, then SELECT pg_reload_conf();",
        ),
        HbaReject => e(
            "FATAL:  pg_hba.conf rejects connection for host \"ADDR\", user \"USER\", database \"DB\", ...",
            "`SELECT * FROM pg_hba_file_rules WHERE auth_method = 'reject';` finds the line that matches first",
            "connect with the encryption an earlier line allows (a hostnossl reject wants TLS), or change the rules",
        ),
        RoleMissing => e(
            "FATAL:  role \"USER\" does not exist",
            "`psql -c '\\du'` as a superuser",
            "CREATE ROLE \"USER\" LOGIN; or connect as an existing role (user= defaults to the OS user name)",
        ),
        DatabaseMissing => e(
            "FATAL:  database \"DB\" does not exist",
            "`psql -l` as a superuser",
            "CREATE DATABASE \"DB\"; or name an existing one (dbname= defaults to the user name)",
        ),
        PasswordRequired => e(
            "fe_sendauth: no password supplied (psql -w), or a Password: prompt",
            "`PGPASSWORD=... psql ...` succeeds where plain psql fails",
            "add HOST:PORT:DB:USER:PASSWORD to ~/.pgpass (chmod 0600), set PGPASSWORD, or use a certificate",
        ),
        PasswordFailed => e(
            "FATAL:  password authentication failed for user \"USER\" (and: password retrieved from file \"~/.pgpass\")",
            "the server log's DETAIL says which: Role \"USER\" does not exist, Password does not match, or User has no password assigned",
            "set the right password (ALTER ROLE ... PASSWORD), fix ~/.pgpass, or create the role",
        ),
        CredentialsWithheld => e(
            "nothing: this is the doctor's own safety rule, not libpq's",
            "libpq at the requested sslmode would not have used this connection, so the doctor did not send the password on it",
            "nothing to fix by itself; the cell that needed the password tells which check came first",
        ),
        TooManyConnections => e(
            "FATAL:  sorry, too many clients already (or: too many connections for role/database)",
            "`SELECT count(*) FROM pg_stat_activity;` against SHOW max_connections and the role's CONNECTION LIMIT",
            "raise max_connections or the CONNECTION LIMIT, close idle sessions, or put a pooler in front",
        ),
        ServerNotReady => e(
            "FATAL:  the database system is starting up (or shutting down, or in recovery)",
            "`pg_isready -h HOST -p PORT`; the server log",
            "wait for start-up or recovery to finish; for a standby, set hot_standby = on to allow read-only sessions",
        ),
        ServerRefused => e(
            "FATAL:  (the server's message, quoted in the evidence)",
            "the server log around the connection time",
            "act on the server's message; the evidence carries its SQLSTATE, detail and hint",
        ),
        ConnectionLost => e(
            "server closed the connection unexpectedly / This probably means the server terminated abnormally",
            "the server log at that time (a crash, a refused client certificate under TLS 1.3, an authentication timeout)",
            "read the server log line; under TLS 1.3 it is often a client certificate the server refused after the handshake",
        ),
        ProtocolViolation => e(
            "expected authentication request from server, but received X, or invalid message format",
            "capture the exchange (`tcpdump -X port PORT`): the peer does not speak the PostgreSQL protocol correctly",
            "check what answers on the port: a proxy, a load balancer or a non-PostgreSQL service",
        ),
        ScramServerProofInvalid => e(
            "invalid SCRAM server-final-message (or: incorrect server signature)",
            "the server is not the one that holds the password's verifier: a proxy or a spoofed server",
            "do not send secrets to this peer; use verify-full and find what sits between client and server",
        ),
        AuthMethodUnsupported => e(
            "psql completes it (GSSAPI, SSPI, RADIUS or another method the doctor cannot run)",
            "the pg_hba.conf line that matches names the method",
            "check this connection with psql; the TLS verdicts before authentication still hold",
        ),
        ClientCertMissing => e(
            "FATAL:  connection requires a valid client certificate (or nothing, when sslcert names a missing file: libpq sends no certificate)",
            "`ls -l ~/.postgresql/postgresql.crt` or the sslcert path; `openssl s_client ... -cert C -key K </dev/null`",
            "give sslcert and sslkey (or put postgresql.crt and postgresql.key in ~/.postgresql/, key 0600)",
        ),
        ClientCertExpired => e(
            "SSL error: sslv3 alert certificate expired (OpenSSL 3: ssl/tls alert certificate expired)",
            "`openssl x509 -in CERT -noout -enddate`",
            "issue a new client certificate from the server's CA and replace sslcert/sslkey",
        ),
        ClientCertNotYetValid => e(
            "SSL error: sslv3 alert bad certificate",
            "`openssl x509 -in CERT -noout -startdate` against `date -u`",
            "fix the clocks, or wait until the certificate is valid",
        ),
        ClientCertUnknownCa => e(
            "SSL error: tlsv1 alert unknown ca",
            "`openssl verify -CAfile SERVER_CA_FILE CERT` on the server's ssl_ca_file",
            "sign the client certificate with a CA in the server's ssl_ca_file, or add its CA (and intermediates) there and reload",
        ),
        ClientCertRevoked => e(
            "SSL error: sslv3 alert certificate revoked",
            "`openssl verify -crl_check -CAfile CA -CRLfile SERVER_CRL CERT`",
            "issue a new client certificate; the revoked one is refused for good",
        ),
        ClientCertWrongPurpose => e(
            "SSL error: sslv3 alert unsupported certificate",
            "`openssl x509 -in CERT -noout -ext extendedKeyUsage,keyUsage`",
            "reissue with extendedKeyUsage=clientAuth (or none) and keyUsage including digitalSignature",
        ),
        ClientCertExpiringSoon => e(
            "nothing yet; after the date: SSL error: sslv3 alert certificate expired",
            "`openssl x509 -in CERT -noout -enddate`",
            "issue the successor before the date and replace sslcert/sslkey",
        ),
        ClientCertPkcs12 => e(
            "could not read certificate file \"FILE\": no start line (libpq reads only PEM)",
            "`openssl pkcs12 -in FILE -info -nokeys`",
            "convert it: `openssl pkcs12 -in FILE -clcerts -nokeys -out postgresql.crt` and `openssl pkcs12 -in FILE -nocerts -nodes -out postgresql.key`",
        ),
        ClientKeyMismatch => e(
            "could not load private key file \"KEY\": key values mismatch",
            "compare `openssl x509 -in CERT -noout -pubkey` with `openssl pkey -in KEY -pubout`",
            "give the key that belongs to the certificate",
        ),
        ClientKeyUnsupported => e(
            "psql uses the key (OpenSSL supports it); the doctor's TLS library cannot sign with it",
            "`openssl pkey -in KEY -noout -text | head -1` shows the curve (P-521)",
            "check this connection with psql, or use a P-256, P-384 or RSA 2048+ client key that every client supports",
        ),
        ClientKeyWeak => e(
            "could not load client certificate or key: ee key too small (or the server refuses it: alert bad certificate)",
            "`openssl x509 -in CERT -noout -text | grep Public-Key`",
            "issue a new key and certificate with RSA 2048+ or ECDSA P-256",
        ),
        ServerNoClientCa => e(
            "server did not request an SSL certificate (sslcertmode=require)",
            "`openssl s_client -starttls postgres -connect HOST:PORT </dev/null` shows No client certificate CA names sent",
            "set ssl_ca_file on the server so it requests client certificates, or lower sslcertmode to allow",
        ),
        ChannelBindingFailed => e(
            "channel binding required, but server authenticated client without channel binding (or: channel binding is required, but client does not support it / SSL not in use)",
            "the matching pg_hba.conf line's method (scram-sha-256 is needed) and whether the connection uses TLS",
            "use TLS and scram-sha-256 (password_encryption = scram-sha-256, passwords reset), or set channel_binding=prefer",
        ),
        ClientCertUnreadable => e(
            "could not read certificate file \"FILE\": no start line (or could not open certificate file)",
            "`openssl x509 -in FILE -noout -subject`",
            "give a PEM certificate file (convert DER with `openssl x509 -inform DER -in c.der -out c.crt`)",
        ),
        ClientCertCnMismatch => e(
            "FATAL:  certificate authentication failed for user \"USER\" (or password authentication failed, with clientcert=verify-full); the server log says: provided user name (USER) and authenticated user name (CN) do not match",
            "`openssl x509 -in CERT -noout -subject` against the user name; the map= line and pg_ident.conf",
            "make the CN equal the user name, or map it with map= and a pg_ident.conf line",
        ),
        ClientCertRejected => e(
            "SSL error: tlsv1 alert ... (the alert the server sent for the certificate)",
            "the server log: could not accept SSL connection: ...",
            "act on the server log's reason for refusing the certificate",
        ),
        ClientKeyMissing => e(
            "certificate present, but not private key file \"KEY\"",
            "`ls -l` the key path (the default is ~/.postgresql/postgresql.key)",
            "put the key next to the certificate or set sslkey=/path/to/key (chmod 0600)",
        ),
        ClientKeyUnreadable => e(
            "could not load private key file \"KEY\": unsupported (or no start line)",
            "`openssl pkey -in KEY -noout`",
            "give the key in PEM (PKCS#8, PKCS#1 or SEC1) or DER form",
        ),
        ClientKeyPermissions => e(
            "private key file \"KEY\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            "`stat -c '%a %U' KEY`",
            "`chmod 0600 KEY`",
        ),
        ClientKeyEncrypted => e(
            "could not load private key file \"KEY\": processing error (no sslpassword) or bad decrypt (a wrong one)",
            "`openssl pkey -in KEY -noout` asks for a pass phrase",
            "give sslpassword in a service file (chmod 0600), never on the command line; or decrypt the key once: `openssl pkey -in KEY -out KEY.plain`",
        ),
        ServerCaMissing => e(
            "FATAL:  client certificates can only be checked if a root certificate store is available",
            "`SHOW ssl_ca_file;` is empty on the server",
            "set ssl_ca_file to the CA that issues client certificates, then SELECT pg_reload_conf();",
        ),
        HbaRule => e(
            "nothing: the server does not tell the client which line it used",
            "with log_connections = on the server log says: connection authenticated / Connection matched file \"pg_hba.conf\" line N",
            "nothing to fix: this names the line that decides, so changes go there",
        ),
        HbaParseError => e(
            "nothing at first: the server refuses to load the whole file (at start it does not start; on reload it keeps the old rules and logs pg_hba.conf was not reloaded)",
            "`SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL;`",
            "fix the line as the error says, reload, and check pg_hba_file_rules again",
        ),
        HbaShadowedRule => e(
            "nothing: connections the line was meant for are decided by an earlier line",
            "`SELECT line_number, type, database, user_name, address FROM pg_hba_file_rules ORDER BY line_number;`",
            "move the more specific line above the general one, or delete it",
        ),
        HbaInsecureTrust => e(
            "nothing: anyone who reaches the port gets in without a password",
            "connect from that network without a password",
            "use scram-sha-256 or cert (with hostssl), or trust only with clientcert=verify-full",
        ),
        HbaWeakPasswordMethod => e(
            "nothing: md5 and password work, but are weaker (md5 is deprecated; password sends it in clear)",
            "`SELECT line_number, auth_method FROM pg_hba_file_rules WHERE auth_method IN ('md5','password');`",
            "switch to scram-sha-256 (set password_encryption = scram-sha-256 and reset the passwords first)",
        ),
        HbaObsoleteClientcert => e(
            "nothing on 13 and earlier; from 14 the server refuses the file: invalid value for clientcert: \"1\"",
            "`grep -n clientcert pg_hba.conf`",
            "write clientcert=verify-ca (or verify-full); drop clientcert=0/no-verify",
        ),
        HbaCertNeedsCa => e(
            "FATAL:  client certificates can only be checked if a root certificate store is available",
            "`SHOW ssl_ca_file;` is empty",
            "set ssl_ca_file to the CA of the client certificates and reload",
        ),
        HbaPlaintextAllowed => e(
            "nothing: sslmode=prefer and allow quietly connect without TLS where a host line allows it",
            "`psql \"sslmode=disable ...\"` succeeds",
            "put hostnossl ... reject in front of the host lines, or write them as hostssl",
        ),
        HbaRulesStale => e(
            "nothing: the server runs the rules it loaded last, not the file on disk",
            "`SELECT pg_conf_load_time();` against the file's modification time; the log says pg_hba.conf was not reloaded",
            "fix the file, SELECT pg_reload_conf(); and check the server log",
        ),
        IdentNoMatch => e(
            "FATAL:  certificate authentication failed for user \"USER\"; the server log says: no match in usermap \"MAP\" for user \"USER\" authenticated as \"CN\"",
            "`SELECT * FROM pg_ident_file_mappings WHERE map_name = 'MAP';`",
            "add a pg_ident.conf line mapping the certificate's name to the user, or fix the regular expression, then reload",
        ),
        ServerLogReason => e(
            "nothing: these reasons are written to the server's log, never sent to the client",
            "read the server log at the time of the connection",
            "act on the quoted reason",
        ),
        DirectTlsUnsupported => e(
            "SSL SYSCALL error: EOF detected (the server reads the ClientHello as a bad startup packet; its log says invalid length of startup packet)",
            "`psql \"sslnegotiation=postgres ...\"` works where sslnegotiation=direct fails",
            "use sslnegotiation=postgres (the default) with PostgreSQL 16 and older, or a proxy that speaks direct TLS with ALPN postgresql",
        ),
        DirectTlsWeakSslmode => e(
            "weak sslmode \"MODE\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
            "psql refuses before connecting",
            "use sslmode=require or stricter with sslnegotiation=direct",
        ),
        AdminConnectionFailed => e(
            "(the --admin connection's own error, in the evidence)",
            "`psql ADMIN_CONNINFO -c 'SELECT count(*) FROM pg_hba_file_rules'`",
            "connect --admin as a superuser, or GRANT EXECUTE ON FUNCTION pg_hba_file_rules() (and pg_ident_file_mappings()); PostgreSQL 15 or later",
        ),
        PlaintextFallback => e(
            "nothing: psql connects, without TLS; \\conninfo does not mention SSL",
            "`psql \"sslmode=prefer ...\" -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'` says f",
            "fix the TLS problem the finding names, then use sslmode=verify-full so a fallback cannot happen silently",
        ),
        UnixSocket => e(
            "nothing: libpq never uses TLS on a Unix socket, whatever the sslmode",
            "`psql -h /var/run/postgresql -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'` says f",
            "to test TLS, connect over TCP: host=127.0.0.1 or the server's name",
        ),
        ServerFlood => e(
            "psql keeps reading (or runs out of memory); no real PostgreSQL sends this",
            "capture the exchange (`tcpdump port PORT`): the peer sends rows, notices or errors without end",
            "find what answers on the port: a hostile peer or a broken proxy",
        ),
        NotProbed => e(
            "psql makes the connection the doctor did not make",
            "run psql at that sslmode",
            "rerun the doctor at the sslmode that needs that connection (--sslmode), or check with psql",
        ),
        PassfileUnread => e(
            "libpq may read the passfile and send its password",
            "`ls -l ~/.pgpass` (or PGPASSFILE): a regular file under 1 MiB",
            "make the passfile a regular file under 1 MiB, or give the password with PGPASSWORD for the check",
        ),
        TlsNotEmulated => e(
            "psql (OpenSSL) completes the handshake; the doctor's TLS library cannot",
            "`psql \"sslmode=require ...\"`",
            "check this connection with psql; an ECDSA P-256 or rsaEncryption server key, or TLS 1.3, works with every client",
        ),
        SettingNotEmulated => e(
            "psql honours the setting; the doctor names it and may differ there",
            "run the same conninfo through psql",
            "compare with psql for this setting (docs/libpq-keywords.md says what the doctor does with each keyword)",
        ),
        SystemRootWeakSslmode => e(
            "weak sslmode \"MODE\" may not be used with sslrootcert=system (use \"verify-full\") (libpq 16+; 15 reads a file named system)",
            "psql 16+ refuses before connecting",
            "use sslmode=verify-full with sslrootcert=system, or name a root file for the weaker modes",
        ),
        Authenticated => e(
            "nothing: psql connects; `\\conninfo` names the user and the TLS, not the authentication method",
            "the server log with log_connections = on: \"connection authenticated: identity=... method=scram-sha-256\" (PostgreSQL 14+), or `SELECT * FROM pg_stat_ssl WHERE pid = pg_backend_pid();` for the certificate",
            "nothing to fix; prefer scram-sha-256 with channel_binding=require, or cert, over md5, password and trust",
        ),
        TlsSession => e(
            "psql prints: SSL connection (protocol: TLSv1.3, cipher: ..., compression: off)",
            "`psql ... -c 'SELECT * FROM pg_stat_ssl WHERE pid = pg_backend_pid()'`",
            "nothing to fix: this is the session that was established",
        ),
        PoolerDetected => e(
            "nothing: psql shows the pooler's messages as the server's (PgBouncer's \"SSL required\", \"certificate authentication failed\", all with SQLSTATE 08P01)",
            "PgBouncer: `psql -p PORT pgbouncer -c 'SHOW VERSION'` (admin console); pgpool-II: `psql -c 'SHOW pool_version'`",
            "nothing to fix: read the other findings in the pooler's terms (its client_tls_* or ssl settings decide the TLS between you and it; pg_stat_ssl describes its own connection to the server)",
        ),
        PoolerCertAuthFailed => e(
            "FATAL:  certificate authentication failed (PgBouncer, SQLSTATE 08P01: it does not say whether the name or the user was wrong)",
            "the pooler's log: `grep -i cert /var/log/postgresql/pgbouncer.log`; the certificate's names: `openssl x509 -in CERT -noout -subject -ext subjectAltName`",
            "issue the client certificate with the user name as its subjectAltName or CN (PgBouncer 1.18 takes a subjectAltName or the CN that names the user, case-insensitively), or add the user to auth_file",
        ),
        PoolerServerLoginFailed => e(
            "FATAL:  client_login_timeout (server down), FATAL:  server login has been failing, try again later (server_login_retry) or FATAL:  query_wait_timeout (once PgBouncer has seen the server it completes logins from its cache: psql connects, and its first query gets the message), or the server's own refusal relabelled SQLSTATE 08P01; behind pgpool-II, FATAL:  failed to create a backend 0 connection, or an empty message (\"connection to server ... failed: \" and nothing after it) where pgpool-II's own login was refused",
            "the pooler's log: PgBouncer writes \"TLS handshake error\" or the server's message beside \"new connection to server\"; then connect to the server directly from the pooler's host: `psql \"host=SERVER sslmode=verify-full ...\"`",
            "fix the pooler's connection to the server: its server_tls_sslmode and server_tls_ca_file (PgBouncer), the [databases] entry, and the server's pg_hba.conf line for the pooler's address and user",
        ),
        PoolerConfigWeakServerTls => e(
            "nothing: clients see TLS to the pooler; the second hop's weakness is silent",
            "`grep -E '^(client|server)_tls_sslmode' pgbouncer.ini`; `SHOW SERVERS;` on PgBouncer's admin console shows each server connection's TLS",
            "server_tls_sslmode = verify-full with server_tls_ca_file, then RELOAD on the admin console",
        ),
        PoolerConfigCertWithoutCa => e(
            "FATAL:  certificate authentication failed for every user (PgBouncer), or ERROR:  CERT authentication failed (pgpool-II)",
            "`grep -E '^(auth_type|client_tls_)' pgbouncer.ini`; `grep -E '^ssl' pgpool.conf`",
            "PgBouncer: client_tls_sslmode = verify-full and client_tls_ca_file; pgpool-II: ssl = on and ssl_ca_cert",
        ),
        PoolerServerHop => e(
            "nothing at the client: PgBouncer answers client_login_timeout (server down) or server login has been failing, and logs TLS handshake error",
            "`psql \"host=SERVER port=PORT sslmode=<server_tls_sslmode> sslrootcert=<server_tls_ca_file>\"` from the pooler's host",
            "make server_tls_ca_file hold the CA that issued the server's certificate, and the [databases] host a name the certificate carries (verify-full)",
        ),
        PoolerCertMatchDiffers => e(
            "nothing through the pooler; connecting to PostgreSQL directly with the same certificate fails with FATAL:  certificate authentication failed for user \"USER\"",
            "`openssl x509 -in CERT -noout -subject` against the user name: PostgreSQL's cert method wants the CN equal to it (or a pg_ident.conf map)",
            "issue the certificate with CN exactly the user name, or add map= to the server's cert line with a pg_ident.conf mapping",
        ),
    }
}

/// The text `explain CODE` prints.
pub fn text(code: Code) -> String {
    let x = explain(code);
    format!(
        "{code}  ({phase}, {severity} by default)\n\n  {meaning}\n\nWhat psql (libpq) says\n  {libpq}\n\nHow to confirm it by hand\n  {confirm}\n\nHow to fix it\n  {fix}\n",
        phase = code.phase().as_str(),
        severity = code.default_severity().as_str(),
        meaning = code.meaning(),
        libpq = x.libpq,
        confirm = x.confirm,
        fix = x.fix,
    )
}

/// The catalogue entry of one code as JSON (`explain --format json CODE`).
pub fn json(code: Code) -> String {
    let mut text = serde_json::to_string_pretty(&entry(code)).unwrap_or_default();
    text.push('\n');
    text
}

fn entry(code: Code) -> serde_json::Value {
    let x = explain(code);
    serde_json::json!({
        "code": code.as_str(),
        "phase": code.phase().as_str(),
        "default_severity": code.default_severity().as_str(),
        "meaning": code.meaning(),
        "libpq_says": x.libpq,
        "confirm": x.confirm,
        "fix": x.fix,
    })
}

/// Every code, a line each: code, phase, default severity, meaning (`explain --list`).
pub fn list_text() -> String {
    let width = Code::ALL
        .iter()
        .map(|c| c.as_str().len())
        .max()
        .unwrap_or(0);
    Code::ALL
        .iter()
        .map(|c| {
            format!(
                "{:<width$}  {:<11} {:<8} {}\n",
                c.as_str(),
                c.phase().as_str(),
                c.default_severity().as_str(),
                c.meaning()
            )
        })
        .collect()
}

/// Every code's entry, as one JSON array (`explain --list --format json`).
pub fn list_json() -> String {
    let entries: Vec<serde_json::Value> = Code::ALL.iter().map(|c| entry(*c)).collect();
    let mut text = serde_json::to_string_pretty(&entries).unwrap_or_default();
    text.push('\n');
    text
}

/// The known codes closest to an unknown one: those that contain it, then by edit distance.
pub fn closest(unknown: &str) -> Vec<Code> {
    let wanted = unknown.trim().to_ascii_lowercase().replace('-', "_");
    let mut scored: Vec<(usize, Code)> = Code::ALL
        .iter()
        .map(|c| {
            let name = c.as_str();
            let score = if name.contains(&wanted) || (wanted.len() > 3 && wanted.contains(name)) {
                0
            } else {
                strsim::levenshtein(name, &wanted)
            };
            (score, *c)
        })
        .collect();
    scored.sort();
    let best = scored.first().map(|(s, _)| *s).unwrap_or(0);
    scored
        .into_iter()
        .take_while(|(s, _)| *s <= best.max(1) + 2)
        .take(5)
        .map(|(_, c)| c)
        .collect()
}

/// docs/findings.md: the catalogue by phase, each code with its explanation.
pub fn findings_markdown() -> String {
    let mut out = String::from(
        "# Finding codes\n\n\
         <!-- Generated from src/catalogue.rs and src/explain.rs by `PGTLS_BLESS=1 cargo test --lib`; do not edit. -->\n\n\
         Every finding has a stable `code`, a `phase`, a `severity`, a one-line `summary`, typed `evidence` \
         (names, dates, numbers, file lines, the server's own words, in order, repeated keys kept), a `fix`, \
         and the `modes` it makes fail. `pgtls-doctor explain CODE` prints the entry below.\n\n\
         Severity: `error` = the connection as requested fails because of it; `warning` = it works now but is \
         insecure or will break (plaintext fallback, expiring, fails at a stricter sslmode); `info` = facts, \
         and failures only at sslmodes weaker than the one requested. A finding that breaks sslmodes takes its \
         severity from them; the default below is the severity of a finding that stands alone.\n",
    );
    for phase in Phase::ALL {
        let codes: Vec<Code> = Code::ALL
            .iter()
            .copied()
            .filter(|c| c.phase() == phase)
            .collect();
        if codes.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n## {}\n\n| code | default severity | meaning |\n|---|---|---|\n",
            capitalised(phase.as_str())
        ));
        for code in &codes {
            out.push_str(&format!(
                "| [`{0}`](#{0}) | {1} | {2} |\n",
                code.as_str(),
                code.default_severity().as_str(),
                code.meaning()
            ));
        }
        for code in codes {
            let x = explain(code);
            out.push_str(&format!(
                "\n### {}\n\n{}\n\n- **What psql (libpq) says:** {}\n- **Confirm it by hand:** {}\n- **Fix:** {}\n",
                code.as_str(),
                code.meaning(),
                x.libpq,
                x.confirm,
                x.fix
            ));
        }
    }
    out
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_four_parts() {
        for code in Code::ALL {
            let x = explain(*code);
            for (part, text) in [
                ("meaning", code.meaning()),
                ("libpq", x.libpq),
                ("confirm", x.confirm),
                ("fix", x.fix),
            ] {
                assert!(
                    text.trim().len() >= 10,
                    "{code}: the {part} part is missing"
                );
            }
            let shown = super::text(*code);
            assert!(shown.starts_with(code.as_str()));
            assert!(shown.contains("How to fix it"));
        }
    }

    #[test]
    fn an_unknown_code_gets_the_closest_ones() {
        assert_eq!(closest("server_cert_expird")[0], Code::ServerCertExpired);
        assert!(closest("expired").contains(&Code::ClientCertExpired));
        assert!(closest("hostname").contains(&Code::ServerCertHostnameMismatch));
        assert!(!closest("zzzzzzzzzzzzzz").is_empty());
    }

    #[test]
    fn findings_doc_is_current() {
        crate::testing::check_generated("docs/findings.md", &findings_markdown());
    }
}
