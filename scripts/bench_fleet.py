#!/usr/bin/env python3
"""Fleet benchmarks: many targets in one run of pgtls-doctor.

1. Throughput: 1,000 targets against one local PostgreSQL server (TLS, scram-sha-256,
   max_connections raised), diagnoses per second, against `pgbench -n -C -f select1.sql
   -c C -j 2` making 1,000 connections at the same C (full diagnosis, and --check).
2. Overlap: 1,000 targets spread over 50 slow servers (a proxy per port in front of the
   real server that delays every chunk it forwards by 100 ms). Overlap = the sum of single
   runs (extrapolated from 20 of them) over the fleet's wall time, against the concurrency.
3. Memory: 10,000 targets against 100 local listeners that complete the negotiation
   (answer the SSLRequest with 'N' and the StartupMessage with a FATAL ErrorResponse):
   the doctor's peak RSS (VmHWM, sampled while it runs).

Writes its section of docs/performance.md (between the fleet markers); the rest of the
file is left as it is. Usage: scripts/bench_fleet.py [--concurrency C]. Run as root.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the server and PKI helpers)

ROOT = bench.ROOT
BEGIN, END = "<!-- begin bench_fleet.py -->", "<!-- end bench_fleet.py -->"


def timed(cmd, env, out=subprocess.DEVNULL):
    """Wall seconds and peak RSS in MiB (VmHWM sampled every 5 ms) of one command."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)
    return time.perf_counter() - start, peak / 1024, p.returncode


class Loop:
    """An asyncio loop on a thread of its own, for the slow proxies and the listeners."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


async def slow_proxy(upstream_port, delay):
    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    return server.sockets[0].getsockname()[1]


def fatal(message):
    fields = b"SFATAL\0VFATAL\0C28000\0M" + message.encode() + b"\0\0"
    return b"E" + (len(fields) + 4).to_bytes(4, "big") + fields


async def negotiating_listener():
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readexactly(4)
                body = await reader.readexactly(int.from_bytes(head, "big") - 4)
                if body[:4] == (80877103).to_bytes(4, "big"):
                    writer.write(b"N")
                else:
                    writer.write(fatal("no pg_hba.conf entry (benchmark listener)"))
                    await writer.drain()
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    return server.sockets[0].getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--pgbench-c", type=int, default=8)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "performance.md"))
    args = ap.parse_args()
    c = args.pgbench_c
    doctor = os.path.join(ROOT, "target", "release", "pgtls-doctor")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    bindir = bench.pg_bin()
    d = tempfile.mkdtemp(prefix="pgtls-fleet-bench-", dir="/tmp")
    os.chmod(d, 0o755)
    port = bench.free_port()
    bench.make_pki(d)
    data = bench.start_server(d, port, extra="max_connections = 400\n")
    lines = []
    try:
        home = tempfile.mkdtemp(prefix="pgtls-fleet-home-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(HOME=home, PGPASSWORD="bench-pw", PGCONNECT_TIMEOUT="10")
        conn = f"host=localhost port={port} user=bench dbname=bench sslmode=verify-full sslrootcert={d}/ca.crt"
        targets = os.path.join(d, "targets-1000.txt")
        with open(targets, "w") as f:
            f.write((conn + "\n") * 1000)
        with open(f"{d}/select1.sql", "w") as f:
            f.write("select 1;\n")
        pgbench = [f"{bindir}/pgbench", "-n", "-C", "-f", f"{d}/select1.sql", "-c", str(c), "-j", "2",
                   "-t", str(1000 // c), "-h", "localhost", "-p", str(port), "-U", "bench", "bench"]
        env_pgbench = dict(env, PGSSLMODE="verify-full", PGSSLROOTCERT=f"{d}/ca.crt")
        fleet = lambda *extra: [doctor, "--targets", targets, "--format", "ndjson",
                                "--concurrency", str(c), "--per-server", str(c), *extra]
        runs = {"pgbench": [], "full": [], "check": []}
        for _ in range(3):
            runs["pgbench"].append(1000 / timed(pgbench, env_pgbench)[0])
            runs["full"].append(1000 / timed(fleet(), env)[0])
            runs["check"].append(1000 / timed(fleet("--check"), env)[0])
        rate = {k: statistics.median(v) for k, v in runs.items()}
        lines += [
            f"### 1,000 targets against one server (C = {c})",
            "",
            f"`pgbench -n -C -f select1.sql -c {c} -j 2 -t {1000 // c}` (verify-full, scram-sha-256: "
            f"{c} connections at a time) against `pgtls-doctor --targets FILE --concurrency {c} "
            f"--per-server {c}` (the full diagnosis holds its TLS and plaintext connections together: "
            f"up to {2 * c} connections; `--check` holds one). Medians of 3 interleaved runs.",
            "",
            "| command | per second | vs pgbench |",
            "|---|---:|---:|",
            f"| pgbench connections | {rate['pgbench']:.0f} | 1.00x |",
            f"| full diagnoses | {rate['full']:.0f} | {rate['full'] / rate['pgbench']:.2f}x |",
            f"| `--check` diagnoses | {rate['check']:.0f} | {rate['check'] / rate['pgbench']:.2f}x |",
            "",
        ]

        loop = Loop()
        proxies = [loop.run(slow_proxy(port, 0.1)) for _ in range(50)]
        slow_targets = os.path.join(d, "targets-slow.txt")
        with open(slow_targets, "w") as f:
            for i in range(1000):
                f.write(f"host=localhost port={proxies[i % 50]} user=bench dbname=bench "
                        f"sslmode=verify-full sslrootcert={d}/ca.crt\n")
        singles = []
        for i in range(20):
            one = f"host=localhost port={proxies[i % 50]} user=bench dbname=bench sslmode=verify-full sslrootcert={d}/ca.crt"
            singles.append(timed([doctor, one, "--format", "json"], env)[0])
        summed = statistics.mean(singles) * 1000
        k = args.concurrency
        wall, _, code = timed([doctor, "--targets", slow_targets, "--format", "ndjson",
                               "--concurrency", str(k), "--timeout", "30"], env)
        overlap = summed / wall
        lines += [
            "### 1,000 targets over 50 slow servers",
            "",
            "Each server is a proxy in front of the local server that delays every chunk it "
            "forwards, either way, by 100 ms. The sum of single runs is the mean of 20 "
            "single-target runs times 1,000.",
            "",
            "| single run (mean of 20) | sum of 1,000 | fleet wall | overlap | concurrency | overlap / concurrency | exit |",
            "|---:|---:|---:|---:|---:|---:|---|",
            f"| {statistics.mean(singles):.2f} s | {summed:.0f} s | {wall:.1f} s | {overlap:.1f} | {k} | "
            f"{overlap / k:.2f} | {code} |",
            "",
        ]

        listeners = [loop.run(negotiating_listener()) for _ in range(100)]
        many = os.path.join(d, "targets-10000.txt")
        with open(many, "w") as f:
            for i in range(10000):
                f.write(f"host=127.0.0.1 port={listeners[i % 100]} user=u{i} dbname=app\n")
        mem = []
        for fmt in ("ndjson", "text"):
            wall, peak, code = timed([doctor, "--targets", many, "--format", fmt, "--concurrency", str(k)], env)
            mem.append((fmt, wall, peak, code))
        lines += [
            "### 10,000 targets against 100 local listeners",
            "",
            "Each listener answers the SSLRequest with 'N' and the StartupMessage with a FATAL "
            f"ErrorResponse. `--concurrency {k}`; peak RSS is the doctor's VmHWM, sampled every 5 ms.",
            "",
            "| format | wall | targets per second | peak RSS | exit |",
            "|---|---:|---:|---:|---|",
        ]
        for fmt, wall, peak, code in mem:
            lines.append(f"| {fmt} | {wall:.1f} s | {10000 / wall:.0f} | {peak:.1f} MiB | {code} |")
        lines.append("")
    finally:
        bench.stop_server(data)
    design = [
        "The engine: each diagnosis is a tokio task; `--concurrency` bounds them overall and "
        "`--per-server` per address and port (a task waiting for a busy server holds no overall "
        "slot). Within one diagnosis the TLS and plaintext connections run together; the "
        "password waits on each until the verdict that permits it is known. The targets file is "
        "read on a blocking thread a few lines ahead of the probes, and text and NDJSON results "
        "are written as they complete, so memory does not grow with the number of targets in "
        "those formats (JSON, JUnit and Prometheus keep every report for their one document).",
        "",
    ]
    section = "\n".join([BEGIN, "## Fleets (scripts/bench_fleet.py)", "",
                         f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores.", ""] + design + lines + [END])
    text = open(args.out).read() if os.path.exists(args.out) else "# Performance\n"
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(section)


if __name__ == "__main__":
    main()
