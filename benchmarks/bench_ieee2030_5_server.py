"""IEEE 2030.5 utility server under load: authenticated GET DERControlList and POST Response from concurrent
devices over keep-alive mutual TLS, side by side with a bare FastAPI endpoint on the same uvicorn with the same
TLS settings (client certificates required) returning the same bytes; then the same polls with 100,000
registered EndDevices.

Each server runs in its own process pinned to one core (`tgw serve --tls-cert --tls-key --tls-client-ca`); the
load generator (aiohttp, one connection per device, each device presenting its own client certificate, all in
one event loop) runs on the other core. A raw ASGI app on the same uvicorn and TLS settings is the ceiling of
uvicorn plus this generator. A POST is a DERControlResponse (status 1, received) to the control's replyTo with a
distinct createdDateTime per request, so each one is a new canonical Response stored durably (SQLite file, WAL,
fsync) before the 201; the duplicate case repeats one createdDateTime per device (found stored, not written).
For context only (not the target's peer), FastAPI storing each POST's body as one SQLite row with a commit per
request shows what that durability costs written the plain way.

Targets (issue): GET and POST >= 50% of the bare endpoint; with 100,000 EndDevices the GET p99 within 2x of the
100-device case and the server's peak RSS (VmHWM) <= 1 GB.

    python benchmarks/bench_ieee2030_5_server.py [--seconds 4] [--rounds 3] [--concurrency 32]
        [--scale 100000 | --scale 0 to skip the large case]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gateway.api  # noqa: E402, F401  (first: identity imported first is a circular import)
from gateway.pki import CertificateAuthority, Issued  # noqa: E402
from gateway.protocols.ieee2030_5 import codec  # noqa: E402
from gateway.protocols.ieee2030_5 import models as m  # noqa: E402
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate, sfdi_of_lfdi  # noqa: E402

MEDIA_TYPE = "application/sep+xml"
PARTY = "bench-owner"
SITE = "bench-site"
CONTROL = "bench-curtail"
BATCH = 5000

BARE_FASTAPI = textwrap.dedent(
    """
    import sys
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from gateway.api.tls import server_tls_options

    app = FastAPI()
    BODY = open(sys.argv[2], "rb").read()

    @app.get("/edev/{sfdi}/derp/{program}/derc")
    async def controls(request: Request, sfdi: str, program: str) -> Response:
        return Response(BODY, media_type="application/sep+xml")

    @app.post("/edev/{sfdi}/rsps/{program}/rsp")
    async def respond(request: Request, sfdi: str, program: str) -> Response:
        await request.body()
        return Response(status_code=201, headers={"Location": f"/edev/{sfdi}/rsps/{program}/rsp/0"})

    tls = server_tls_options(sys.argv[3], sys.argv[4], sys.argv[5], require_client=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **tls)
    """
)

DURABLE_FASTAPI = textwrap.dedent(
    """
    import sqlite3
    import sys
    import threading
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import Response
    from gateway.api.tls import server_tls_options

    app = FastAPI()
    DATABASE = sys.argv[2] + ".db"
    setup = sqlite3.connect(DATABASE)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE IF NOT EXISTS posted (id INTEGER PRIMARY KEY, path TEXT NOT NULL, body BLOB NOT NULL)")
    setup.commit()
    setup.close()
    local = threading.local()

    def store(path, body):
        if not hasattr(local, "db"):
            local.db = sqlite3.connect(DATABASE, timeout=30)
            local.db.execute("PRAGMA synchronous=FULL")
        with local.db:  # one durable commit per request, the way a plain FastAPI service stores what it accepts
            return local.db.execute("INSERT INTO posted (path, body) VALUES (?, ?)", (path, body)).lastrowid

    @app.post("/edev/{sfdi}/rsps/{program}/rsp")
    async def respond(request: Request, sfdi: str, program: str) -> Response:
        row = await run_in_threadpool(store, request.url.path, await request.body())
        return Response(status_code=201, headers={"Location": f"/edev/{sfdi}/rsps/{program}/rsp/{row}"})

    tls = server_tls_options(sys.argv[3], sys.argv[4], sys.argv[5], require_client=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **tls)
    """
)
"""Context for the POST figure, not the target's peer: FastAPI storing each POST's body as one row in SQLite (WAL,
synchronous=FULL, a commit per request), the durability tgw gives a Response, without its checks or indexes."""

RAW_ASGI = textwrap.dedent(
    """
    import sys
    import uvicorn
    from gateway.api.tls import server_tls_options

    BODY = open(sys.argv[2], "rb").read()
    GET = [(b"content-type", b"application/sep+xml")]
    POST = [(b"location", b"/edev/1/rsps/p/rsp/0")]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 200, "headers": GET})
            await send({"type": "http.response.body", "body": BODY})
        else:
            await send({"type": "http.response.start", "status": 201, "headers": POST})
            await send({"type": "http.response.body", "body": b""})

    tls = server_tls_options(sys.argv[3], sys.argv[4], sys.argv[5], require_client=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **tls)
    """
)


@dataclass
class DeviceCert:
    issued: Issued
    lfdi: str
    sfdi: int
    context: ssl.SSLContext


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    database: Path | None = None  # tgw's SQLite file: what the POSTs stored


def stored_responses(database: Path) -> tuple[int, int]:
    """(canonical Responses in the log, commits that wrote them): rows of one commit share its stored_at."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        count, commits = conn.execute(
            "SELECT count(*), count(DISTINCT stored_at) FROM messages WHERE kind = 'response'"
        ).fetchone()
    return int(count), int(commits)


# -- set-up ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_context(ca: CertificateAuthority, issued: Issued) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.load_cert_chain(str(issued.cert), str(issued.key))
    return context


def seed(url: str, devices: list[DeviceCert], total: int) -> float:
    """A party, a site, ``total`` resources carrying an LFDI (the measured devices' real ones first, random ones
    for the rest) and one control at the site, written straight through Store.append_many in batches."""
    from gateway.model import Control, Location, Party, Resource, received
    from gateway.store import Store

    started = time.perf_counter()
    store = Store(url)
    now = datetime.now(UTC).replace(microsecond=0)
    head = [
        Party(id=PARTY, name="Bench owner", roles=["prosumer"]),
        Location(id=SITE, name="Bench site", kind="service_point"),
    ]
    store.append_many(received(head, protocol="bench", peer="seed"))
    lfdis = [d.lfdi for d in devices] + [secrets.token_hex(20).upper() for _ in range(total - len(devices))]
    for first in range(0, total, BATCH):
        resources = [
            Resource(
                id=f"der-{n}",
                name=f"DER {n}",
                kind="pv",
                owner_id=PARTY,
                location_id=SITE,
                ratings={"max_kw": "5"},
                identities={"lfdi": lfdi},
            )
            for n, lfdi in enumerate(lfdis[first : first + BATCH], start=first)
        ]
        store.append_many(received(resources, protocol="bench", peer="seed"))
    control = Control.model_validate(
        {
            "id": CONTROL,
            "targets": {"location_ids": [SITE]},
            "kind": "limit",
            "signal": "real_power",
            "unit": "percent",
            "periods": [{"span": {"start": (now + timedelta(hours=1)).isoformat(), "duration": "PT1H"}, "value": "50"}],
        }
    )
    store.append_many(received([control], protocol="bench", peer="seed"))
    store.close()
    return time.perf_counter() - started


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited early ({process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def start_tgw(name: str, url: str, pki: dict[str, str], core: int) -> tuple[Server, int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--port",
            str(port),
            "--database-url",
            url,
            "--market-tick",
            "0",
            "--tls-cert",
            pki["cert"],
            "--tls-key",
            pki["key"],
            "--tls-client-ca",
            pki["ca"],
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    return Server(name, process, f"https://127.0.0.1:{port}", Path(url.removeprefix("sqlite:///"))), port


def start_script(name: str, code: str, folder: Path, body: bytes, pki: dict[str, str], core: int) -> Server:
    script = folder / f"{name.split()[0].lower()}_{abs(hash(code))}.py"
    script.write_text(code)
    (folder / "answer.xml").write_bytes(body)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port), str(folder / "answer.xml"), pki["cert"], pki["key"], pki["ca"]],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    wait_for_port(port, process)
    return Server(name, process, f"https://127.0.0.1:{port}")


def first_answer(server: Server, port: int, device: DeviceCert, path: str, launched: float) -> tuple[float, float]:
    """Seconds from launching the server to its port listening, and to its first answer to a device (which loads
    the index of devices and controls, if starting up has not)."""
    wait_for_port(port, server.process)
    listening = time.perf_counter() - launched
    with httpx.Client(base_url=server.base, verify=device.context, timeout=300) as client:
        client.get(path).raise_for_status()
    return listening, time.perf_counter() - launched


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]


# -- what the devices ask ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Per device: the DERControlList path, the replyTo path and the Response body template."""

    derc: list[str]
    reply: list[str]
    template: list[bytes]
    program: str
    answer: bytes


def discover(base: str, devices: list[DeviceCert]) -> Plan:
    """Follow the links as a device would: the program that carries the control, its replyTo and mRID."""
    derc: list[str] = []
    reply: list[str] = []
    template: list[bytes] = []
    program = ""
    answer = b""
    for device in devices:
        with httpx.Client(base_url=base, verify=device.context, timeout=120) as client:
            programs = codec.decode(client.get(f"/edev/{device.sfdi}/derp?l=20").raise_for_status().content)
            for item in programs.DERProgram or []:
                path = f"{item.DERControlListLink.href}?l=10"
                answered = client.get(path).raise_for_status()
                listed = codec.decode(answered.content)
                if listed.DERControl:
                    control = listed.DERControl[0]
                    break
            else:
                raise SystemExit(f"device {device.sfdi} sees no DERControl")
        derc.append(path)
        reply.append(control.replyTo)
        program = path.split("/")[4]
        answer = answer or answered.content
        body = codec.encode(
            m.DERControlResponse(
                createdDateTime=1_111_111_111, endDeviceLFDI=device.lfdi, status=1, subject=control.mRID
            )
        )
        template.append(body.replace(b"1111111111", b"%d"))
    return Plan(derc, reply, template, program, answer)


async def hammer(
    base: str,
    devices: list[DeviceCert],
    plan: Plan,
    method: str,
    seconds: float,
    *,
    duplicate: bool = False,
    clock: list[int],
) -> tuple[float, int, list[float]]:
    """Requests/s over ``seconds``, one keep-alive connection per device; non-2xx count; latencies (s)."""
    sessions = [
        aiohttp.ClientSession(
            base_url=base, connector=aiohttp.TCPConnector(ssl=d.context, limit=1), headers={"content-type": MEDIA_TYPE}
        )
        for d in devices
    ]
    done = 0
    failures = 0
    answered = 0  # every expected status, the first request of each connection included
    latencies: list[float] = []
    expected = 200 if method == "GET" else 201

    async def one(n: int) -> None:
        nonlocal failures, answered
        session = sessions[n]
        if method == "GET":
            async with session.get(plan.derc[n]) as answer:
                await answer.read()
        else:
            clock[0] += 1
            stamp = clock[0] if not duplicate else 1_000_000_000 + n
            async with session.post(plan.reply[n], data=plan.template[n] % stamp) as answer:
                await answer.read()
        if answer.status != expected:
            failures += 1
        else:
            answered += 1

    async def client(n: int, stop: float) -> None:
        nonlocal done
        while (started := time.perf_counter()) < stop:
            await one(n)
            latencies.append(time.perf_counter() - started)
            done += 1

    try:
        await asyncio.gather(*(one(n) for n in range(len(devices))))  # handshakes, first answers
        started = time.perf_counter()
        await asyncio.gather(*(client(n, started + seconds) for n in range(len(devices))))
        elapsed = time.perf_counter() - started
    finally:
        for session in sessions:
            await session.close()
    return done / elapsed, failures, latencies, answered


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(server: Server, devices: list[DeviceCert], plan: Plan, method: str, seconds: float, **kw: object) -> tuple:
    """(requests/s, latencies, what was stored): for a POST to tgw, checks that each 201 stored a new Response (a
    duplicate: none beyond the first time each device posts it) and gives (Responses stored, commits)."""
    before = stored_responses(server.database) if server.database and method == "POST" else None
    rate, failures, latencies, answered = asyncio.run(hammer(server.base, devices, plan, method, seconds, **kw))  # type: ignore[arg-type]
    if failures:
        raise SystemExit(f"{server.name}: {failures} {method}s were not answered {200 if method == 'GET' else 201}")
    if before is None or server.database is None:
        return rate, latencies, None
    after = stored_responses(server.database)
    stored, commits = after[0] - before[0], after[1] - before[1]
    if not kw.get("duplicate") and stored != answered:
        raise SystemExit(f"{server.name}: {answered} POSTs answered 201 but {stored} Responses stored")
    if kw.get("duplicate") and stored > len(devices):
        raise SystemExit(f"{server.name}: {stored} Responses stored for duplicate POSTs")
    return rate, latencies, (stored, commits)


# -- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32, help="devices, one connection each")
    parser.add_argument("--small", type=int, default=100, help="registered EndDevices in the base case")
    parser.add_argument("--scale", type=int, default=100_000, help="registered EndDevices in the large case (0: skip)")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = cores[-1], cores[0]
    os.sched_setaffinity(0, {client_core})
    clock = [int(time.time()) - 86_400]
    servers: list[Server] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "pki").mkdir()
            ca = CertificateAuthority(folder / "pki")
            issued = ca.issue("localhost", server=True)
            pki = {"cert": str(issued.cert), "key": str(issued.key), "ca": str(ca.ca_file)}
            devices = []
            for n in range(args.concurrency):
                cert = ca.issue(f"der-{n}")
                lfdi = lfdi_of_certificate(cert.der)
                devices.append(DeviceCert(cert, lfdi, sfdi_of_lfdi(lfdi), client_context(ca, cert)))

            small_url = f"sqlite:///{folder / 'small.db'}"
            seed(small_url, devices, args.small)
            launched = time.perf_counter()
            tgw, port = start_tgw(f"tgw, {args.small:,} EndDevices", small_url, pki, server_core)
            servers.append(tgw)
            startup = {tgw.name: first_answer(tgw, port, devices[0], f"/edev/{devices[0].sfdi}", launched)}
            plan = discover(tgw.base, devices)
            bare = start_script("bare FastAPI", BARE_FASTAPI, folder, plan.answer, pki, server_core)
            raw = start_script("raw ASGI", RAW_ASGI, folder, plan.answer, pki, server_core)
            durable = start_script("FastAPI + SQLite commit", DURABLE_FASTAPI, folder, plan.answer, pki, server_core)
            servers += [bare, raw, durable]

            big: Server | None = None
            seeded = 0.0
            if args.scale:
                big_url = f"sqlite:///{folder / 'big.db'}"
                seeded = seed(big_url, devices, args.scale)
                launched = time.perf_counter()
                big, port = start_tgw(f"tgw, {args.scale:,} EndDevices", big_url, pki, server_core)
                servers.append(big)
                startup[big.name] = first_answer(big, port, devices[0], f"/edev/{devices[0].sfdi}", launched)
                discover(big.base, devices)  # the same paths and replyTo on the large server

            get_servers = [tgw, bare, raw] + ([big] if big else [])
            post_servers = [tgw, bare, raw, durable]
            rates: dict[tuple[str, str], list[float]] = {}
            lats: dict[tuple[str, str], list[float]] = {}
            writes: dict[tuple[str, str], list[int]] = {}  # [Responses stored, commits] over the measured rounds
            cases: list[tuple[Server, str, bool]] = [(s, "GET", False) for s in get_servers]
            cases += [(s, "POST", False) for s in post_servers] + [(tgw, "POST", True)]
            if big is not None:
                cases.append((big, "POST", False))
            for server, method, dup in cases:  # warm-up
                run(server, devices, plan, method, 1.0, duplicate=dup, clock=clock)
            for _ in range(args.rounds):
                for server, method, dup in cases:
                    key = (server.name, method + (" duplicate" if dup else ""))
                    rate, latencies, wrote = run(
                        server, devices, plan, method, args.seconds, duplicate=dup, clock=clock
                    )
                    rates.setdefault(key, []).append(rate)
                    lats.setdefault(key, []).extend(latencies)
                    if wrote is not None:
                        total = writes.setdefault(key, [0, 0])
                        total[0] += wrote[0]
                        total[1] += wrote[1]
            # single-device latency, no queueing: the cost of one request
            quiet: dict[str, list[float]] = {}
            for server in [tgw] + ([big] if big else []):
                for path in (plan.derc[0], "/edev"):
                    _, latencies, _ = run(
                        server, devices[:1], Plan([path], [], [], "", b""), "GET", args.seconds / 2, clock=clock
                    )
                    quiet[f"{server.name} GET {path.split('?')[0]}"] = latencies
            memory = {s.name: peak_rss_mb(s.process.pid) for s in servers}
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            server.process.wait(timeout=20)

    print(
        f"IEEE 2030.5 server, {args.concurrency} devices on keep-alive mutual TLS (aiohttp, own certificate each), "
        f"{args.rounds} rounds x {args.seconds:g} s, server on core {server_core}, clients on core {client_core}"
    )
    print(f"  GET /edev/<sfdi>/derp/{plan.program}/derc?l=10 ({len(plan.answer)} bytes)")
    print(f"  POST <replyTo> DERControlResponse ({len(plan.template[0] % clock[0])} bytes), status 1")
    header = (
        f"  {'peer':<28} {'request':<15} {'req/s median':>12} {'vs bare':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'RSS MB':>7}  rounds"
    )
    print(header)
    for (name, method), values in rates.items():
        bare_key = ("bare FastAPI", method.split()[0])
        median = statistics.median(values)
        ratio = median / statistics.median(rates[bare_key])
        latency = lats[(name, method)]
        print(
            f"  {name:<28} {method:<15} {median:>12,.0f} {ratio:>7.2f}x {quantile(latency, 0.5) * 1000:>7.2f} "
            f"{quantile(latency, 0.99) * 1000:>7.2f} {memory[name][0]:>7,.0f}  "
            + ", ".join(f"{r:,.0f}" for r in values)
        )
    for (name, method), (stored, commits) in writes.items():
        if commits:
            print(
                f"  {name} {method}: {stored:,} new Responses stored in {commits:,} commits "
                f"({stored / commits:.1f} a commit)"
            )
        else:
            print(f"  {name} {method}: no new Response stored (each one found stored already)")
    for method in ("GET", "POST"):
        raw, bare = statistics.median(rates[("raw ASGI", method)]), statistics.median(rates[("bare FastAPI", method)])
        if raw < 1.3 * bare:
            print(f"  note: {method} bare FastAPI is {bare / raw:.0%} of raw ASGI: near this load generator's ceiling")
    for name, (listening, answered) in startup.items():
        print(f"  {name}: listening {listening:.2f} s after launch, first answer to a device {answered:.2f} s")
    print("  one device at a time (no queueing):")
    for name, latency in quiet.items():
        print(
            f"    {name:<50} p50 {quantile(latency, 0.5) * 1000:6.2f} ms  p99 {quantile(latency, 0.99) * 1000:6.2f} ms"
        )
    print(
        "  server memory (MB): "
        + ", ".join(f"{n}: peak {hwm:,.0f} / now {rss:,.0f}" for n, (hwm, rss) in memory.items())
    )
    get_ratio = statistics.median(rates[(tgw.name, "GET")]) / statistics.median(rates[("bare FastAPI", "GET")])
    post_ratio = statistics.median(rates[(tgw.name, "POST")]) / statistics.median(rates[("bare FastAPI", "POST")])
    print(f"target GET >= 50% of bare: {'PASS' if get_ratio >= 0.5 else 'MISS'} ({get_ratio:.0%})")
    print(f"target POST >= 50% of bare: {'PASS' if post_ratio >= 0.5 else 'MISS'} ({post_ratio:.0%})")
    durable_ratio = statistics.median(rates[(tgw.name, "POST")]) / statistics.median(
        rates[("FastAPI + SQLite commit", "POST")]
    )
    print(f"  (context: tgw POST is {durable_ratio:.2f}x FastAPI storing each POST with one SQLite commit)")
    if big is not None:
        print(f"{args.scale:,} EndDevices: seeded (Store.append_many) in {seeded:.1f} s")
        for path in (plan.derc[0].split("?")[0], "/edev"):
            small_p99 = quantile(quiet[f"{tgw.name} GET {path}"], 0.99)
            big_p99 = quantile(quiet[f"{big.name} GET {path}"], 0.99)
            ratio = big_p99 / small_p99
            print(f"target p99 GET {path} within 2x: {'PASS' if ratio <= 2 else 'MISS'} ({ratio:.2f}x)")
        under_load = quantile(lats[(big.name, "GET")], 0.99) / quantile(lats[(tgw.name, "GET")], 0.99)
        print(f"  (p99 under {args.concurrency}-device load: {under_load:.2f}x)")
        hwm = memory[big.name][0]
        print(f"target RSS <= 1 GB: {'PASS' if hwm <= 1024 else 'MISS'} ({hwm:,.0f} MB peak)")


if __name__ == "__main__":
    main()
