#!/usr/bin/env python3
"""Benchmark: pgtls-doctor against psql, openssl s_client and pgbench, side by side.

Starts its own PostgreSQL server (TLS, scram-sha-256, certificates made with the openssl CLI)
on 127.0.0.1 in a temporary directory, runs every command N times alternately, and writes
docs/performance.md with medians of wall time and CPU time and the ratios against psql.

Usage: scripts/bench.py [--runs N] [--aws-lc PATH_TO_AWS_LC_BUILD]
Run as root (the server runs as the postgres user) or as a user that may run postgres.
"""

import argparse
import glob
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        sys.exit("no PostgreSQL under /usr/lib/postgresql; run scripts/install-deps.sh")
    return dirs[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_server_user(cmd):
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def make_pki(d):
    sh = lambda *a: run(list(a), cwd=d)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=Bench Root CA")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "server.crt", "-days", "30", "-extfile", "ext")
    # A client certificate for the role certuser (the cert method).
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=certuser")
    sh("openssl", "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "client.crt", "-days", "30")
    os.chmod(os.path.join(d, "client.key"), 0o600)


def start_server(d, port, extra=""):
    bindir = pg_bin()
    data = os.path.join(d, "data")
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
        for f in ("server.key", "server.crt", "ca.crt"):
            shutil.chown(os.path.join(d, f), "postgres")
    os.chmod(os.path.join(d, "server.key"), 0o600)
    run(as_server_user([f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust"]))
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write(f"port={port}\nlisten_addresses='127.0.0.1'\nunix_socket_directories='{d}'\n"
                f"ssl=on\nssl_cert_file='{d}/server.crt'\nssl_key_file='{d}/server.key'\nfsync=off\n"
                f"ssl_ca_file='{d}/ca.crt'\n{extra}")
    with open(os.path.join(data, "pg_hba.conf"), "w") as f:
        f.write("local all all trust\nhostssl all certuser 127.0.0.1/32 cert\n"
                "hostssl all all 127.0.0.1/32 scram-sha-256\n")
    run(as_server_user([f"{bindir}/pg_ctl", "-D", data, "-l", f"{d}/log", "-w", "start"]))
    run([f"{bindir}/psql", "-h", d, "-p", str(port), "-U", "postgres", "-c",
         "create role bench login password 'bench-pw'", "-c", "create database bench owner bench",
         "-c", "create role certuser login"])
    return data


def stop_server(data):
    subprocess.run(as_server_user([f"{pg_bin()}/pg_ctl", "-D", data, "-m", "immediate", "stop"]),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(cmd, env, stdin=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.returncode, wall * 1000, cpu * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--aws-lc", help="a pgtls-doctor built with --features aws-lc-rs")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "performance.md"))
    args = ap.parse_args()

    doctor = os.path.join(ROOT, "target", "release", "pgtls-doctor")
    if not os.path.exists(doctor):
        run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    bindir = pg_bin()
    d = tempfile.mkdtemp(prefix="pgtls-bench-", dir="/tmp")
    os.chmod(d, 0o755)
    port = free_port()
    make_pki(d)
    data = start_server(d, port)
    try:
        home = tempfile.mkdtemp(prefix="pgtls-bench-home-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(HOME=home, PGPASSWORD="bench-pw", PGCONNECT_TIMEOUT="10")
        conn = f"host=localhost port={port} user=bench dbname=bench sslrootcert={d}/ca.crt"
        cert = (f"host=localhost port={port} user=certuser dbname=bench sslmode=verify-full "
                f"sslrootcert={d}/ca.crt sslcert={d}/client.crt sslkey={d}/client.key")
        subjects = [
            ("psql, verify-full, `select 1` (1 connection)",
             [f"{bindir}/psql", "-w", "-X", "-At", "-c", "select 1", conn + " sslmode=verify-full"], None),
            ("pgtls-doctor --sslmode verify-full (full diagnosis: 2 connections at once)",
             [doctor, conn, "--sslmode", "verify-full", "--format", "json"], None),
            ("psql, verify-full with a client certificate (the cert method)",
             [f"{bindir}/psql", "-w", "-X", "-At", "-c", "select 1", cert], None),
            ("pgtls-doctor, the same client certificate (full diagnosis: 2 connections at once)",
             [doctor, cert, "--format", "json"], None),
            ("pgtls-doctor --check, the same client certificate (1 connection)",
             [doctor, cert, "--check", "--format", "json"], None),
            ("openssl s_client -starttls postgres (1 handshake, no startup)",
             ["openssl", "s_client", "-starttls", "postgres", "-connect", f"127.0.0.1:{port}",
              "-CAfile", f"{d}/ca.crt", "-verify_return_error", "-brief"], "devnull"),
            ("pgbench -C, 1 transaction (1 connection)",
             [f"{bindir}/pgbench", "-n", "-C", "-t", "1", "-f", f"{d}/select1.sql",
              "-h", "localhost", "-p", str(port), "-U", "bench", "bench"], None),
        ]
        with open(f"{d}/select1.sql", "w") as f:
            f.write("select 1;\n")
        env_pgbench = dict(env, PGSSLMODE="verify-full", PGSSLROOTCERT=f"{d}/ca.crt")
        if args.aws_lc:
            subjects.insert(2, ("pgtls-doctor, aws-lc-rs provider (same diagnosis)",
                                [args.aws_lc, conn, "--sslmode", "verify-full", "--format", "json"], None))
        results = {name: ([], []) for name, _, _ in subjects}
        codes = {}
        for _ in range(args.runs):
            for name, cmd, stdin in subjects:
                e = env_pgbench if cmd[0].endswith("pgbench") else env
                with open(os.devnull) as dn:
                    rc, wall, cpu = measure(cmd, e, stdin=dn if stdin else None)
                codes.setdefault(name, set()).add(rc)
                results[name][0].append(wall)
                results[name][1].append(cpu)
    finally:
        stop_server(data)
        shutil.rmtree(d, ignore_errors=True)

    base_name = subjects[0][0]
    lines = [
        "# Performance",
        "",
        "Measured by `scripts/bench.py` (the numbers below are its output, not hand-edited).",
        f"Each command ran {args.runs} times, interleaved, against one local PostgreSQL server "
        "(TLS 1.3, scram-sha-256, P-256 certificates) on the same machine; medians.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}.",
        "",
        "Ratios are against the psql row of the same kind (with or without a client certificate),",
        "taken run by run (each run's pair was measured back to back) and then the median.",
        "",
        "| command | wall ms | CPU ms | wall vs psql | CPU vs psql | exit codes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    cert_base = next(n for n, _, _ in subjects if n.startswith("psql, verify-full with a client"))
    for name, _, _ in subjects:
        base = cert_base if "client certificate" in name else base_name
        wall = statistics.median(results[name][0])
        cpu = statistics.median(results[name][1])
        wall_ratio = statistics.median(a / b for a, b in zip(results[name][0], results[base][0]))
        cpu_ratio = statistics.median(a / b for a, b in zip(results[name][1], results[base][1]) if b)
        lines.append(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall_ratio:.2f}x | "
                     f"{cpu_ratio:.2f}x | {sorted(codes[name])} |")
    lines += [
        "",
        "The doctor's full diagnosis makes two connections (one TLS with SCRAM and a query of "
        "the server's TLS facts for its own backend, the function behind pg_stat_ssl, one "
        "plaintext startup for the disable/allow/prefer cells) where "
        "psql makes one; psql's own process start-up (readline, locale, psqlrc handling) is "
        "part of its figure.",
        "",
        "## Crypto provider",
        "",
        "ring is the default provider. aws-lc-rs spends CPU before its first handshake in every "
        "process (self-tests and initialisation); for a tool that makes one diagnosis per "
        "process that start-up cost dominates. Build the alternative with "
        "`cargo build --release --features aws-lc-rs --target-dir target/aws-lc` and pass it "
        "as `--aws-lc target/aws-lc/release/pgtls-doctor` to compare. ring has no P-521: the doctor "
        "verifies P-521 handshake signatures through OpenSSL (src/sigalgs.rs); a P-521 client key "
        "remains unusable with ring.",
        "",
    ]
    # The fleet section belongs to scripts/bench_fleet.py: keep it.
    kept = ""
    if os.path.exists(args.out):
        old = open(args.out).read()
        marker = "<!-- begin bench_fleet.py -->"
        if marker in old:
            kept = "\n" + old[old.index(marker):]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + kept)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
