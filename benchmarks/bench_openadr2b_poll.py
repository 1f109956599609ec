"""VTN oadrPoll throughput from concurrent VENs on loopback: our VTN (`tgw serve`) vs openleadr 0.5.36's
OpenADRServer, side by side in one run, same request bytes, same machine.

Each server runs in its own process pinned to one core; the load generator (aiohttp, CONCURRENCY clients in one
event loop) runs on the other core. Two ceilings run beside them: a bare FastAPI endpoint returning the same
answer bytes, and a raw ASGI app on uvicorn (what uvicorn plus this one-core load generator can reach at all).
Plain HTTP, no signatures: the figure is the VTN's own cost per poll (decode and schema check, identify the
VEN, look for news, answer). Rounds alternate between the servers and the medians are compared. Target
(issue 3): ours >= 3x openleadr.

    python benchmarks/bench_openadr2b_poll.py [--seconds 4] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
PATH = "/OpenADR2/Simple/2.0b"
VEN = "ven-bench"

OPENLEADR_VTN = textwrap.dedent(
    """
    import asyncio, logging, sys
    from openleadr import OpenADRServer
    logging.getLogger("openleadr").setLevel(logging.ERROR)

    async def on_create_party_registration(info):
        return "ven-bench", "reg-1"

    async def main():
        server = OpenADRServer(vtn_id="VTN", http_port=int(sys.argv[1]), show_fingerprint=False,
                               verify_message_signatures=False)
        server.add_handler("on_create_party_registration", on_create_party_registration)
        await server.run()
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


BARE_FASTAPI = textwrap.dedent(
    """
    import sys
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI()
    BODY = open(sys.argv[2], "rb").read()

    @app.post("/OpenADR2/Simple/2.0b/{service}")
    async def answer(request: Request, service: str) -> Response:
        await request.body()
        return Response(BODY, media_type="application/xml")

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


RAW_ASGI = textwrap.dedent(
    """
    import sys
    import uvicorn

    BODY = open(sys.argv[2], "rb").read()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/xml")]})
        await send({"type": "http.response.body", "body": BODY})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server for {url} exited early ({process.returncode})")
        try:
            httpx.post(url, content=b"", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start")


def poll_bytes() -> bytes:
    from openleadr.messaging import create_message

    return create_message("oadrPoll", ven_id=VEN).encode()


def registration_bytes() -> bytes:
    from openleadr.messaging import create_message

    return create_message(
        "oadrCreatePartyRegistration",
        request_id="r1",
        ven_name=VEN,
        ven_id=None,
        http_pull_model=True,
        xml_signature=False,
        report_only=False,
        profile_name="2.0b",
        transport_name="simpleHttp",
        transport_address=None,
    ).encode()


def start_ours(folder: Path, core: int) -> tuple[subprocess.Popen[bytes], str]:
    from gateway.ingest import Ingestor
    from gateway.model import Envelope
    from gateway.store import Store

    url = f"sqlite:///{folder / 'bench.db'}"
    store = Store(url)
    Ingestor(store).ingest_sync(
        [
            Envelope.model_validate(
                {"payload": {"object_type": "party", "id": VEN, "name": "Bench", "roles": ["prosumer"]}}
            )
        ],
        protocol="bench",
        peer="seed",
    )
    store.close()
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
            "--openadr-insecure",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    return process, f"http://127.0.0.1:{port}{PATH}"


def start_bare(folder: Path, core: int, answer: bytes, code: str = BARE_FASTAPI) -> tuple[subprocess.Popen[bytes], str]:
    """A ceiling: an endpoint that reads the body and returns fixed bytes (FastAPI, or uvicorn with a raw ASGI
    app: what uvicorn and this load generator can do at all on these cores)."""
    script = folder / f"bare_{abs(hash(code))}.py"
    script.write_text(code)
    (folder / "answer.xml").write_bytes(answer)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port), str(folder / "answer.xml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    return process, f"http://127.0.0.1:{port}{PATH}"


def start_openleadr(folder: Path, core: int) -> tuple[subprocess.Popen[bytes], str]:
    script = folder / "openleadr_vtn.py"
    script.write_text(OPENLEADR_VTN)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    return process, f"http://127.0.0.1:{port}{PATH}"


def hammer_wrk(url: str, body: bytes, seconds: float, concurrency: int, folder: Path, core: int) -> tuple[float, int]:
    """The same load from wrk (C, one thread on the client core): a load generator that is not itself the limit."""
    script = folder / "post.lua"
    (folder / "body.xml").write_bytes(body)
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/xml"\n'
        f'local f = io.open("{folder / "body.xml"}", "rb"); wrk.body = f:read("*a"); f:close()\n'
        "function done(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )
    done = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(script), f"{url}/OadrPoll"],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        check=True,
    )
    rate = float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("Requests/sec:")))
    failures = int(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("non2xx")))
    return rate, failures


async def hammer(url: str, body: bytes, seconds: float, concurrency: int) -> tuple[float, int]:
    """Requests per second over ``seconds`` with ``concurrency`` clients in flight; also counts non-200s."""
    done = 0
    failures = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"content-type": "application/xml"}) as session:

        async def client() -> None:
            nonlocal done, failures
            while time.perf_counter() < stop:
                async with session.post(f"{url}/OadrPoll", data=body) as answer:
                    await answer.read()
                    if answer.status != 200:
                        failures += 1
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return done / elapsed, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--load",
        choices=["aiohttp", "wrk"],
        default="wrk" if shutil.which("wrk") else "aiohttp",
        help="load generator (wrk when installed: apt install wrk)",
    )
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = cores[-1], cores[0]
    os.sched_setaffinity(0, {client_core})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from gateway.protocols.openadr2b import codec
        from gateway.protocols.openadr2b.messages import EiResponse, OadrMessage, Payload

        ok = codec.encode(OadrMessage(payload=Payload.RESPONSE, response=EiResponse(), ven_id=VEN))
        servers = {
            "openleadr OpenADRServer": start_openleadr(folder, server_core),
            "tgw VTN": start_ours(folder, server_core),
            "bare FastAPI (ceiling)": start_bare(folder, server_core, ok),
            "raw ASGI on uvicorn (ceiling)": start_bare(folder, server_core, ok, RAW_ASGI),
        }
        try:
            for _, url in servers.values():
                wait_until_up(f"{url}/OadrPoll", servers["tgw VTN"][0])
            for name, (_, url) in list(servers.items())[:2]:
                answer = httpx.post(
                    f"{url}/EiRegisterParty",
                    content=registration_bytes(),
                    headers={"content-type": "application/xml"},  # openleadr answers 500 without it
                    timeout=10,
                )
                if answer.status_code != 200 or b"200" not in answer.content:
                    raise SystemExit(f"{name} refused the registration: {answer.text[:1500]}")
            body = poll_bytes()
            samples: dict[str, list[float]] = {name: [] for name in servers}

            def load(url: str, seconds: float) -> tuple[float, int]:
                if args.load == "wrk":
                    return hammer_wrk(url, body, seconds, args.concurrency, folder, client_core)
                return asyncio.run(hammer(url, body, seconds, args.concurrency))

            for _process, url in servers.values():  # warm-up
                load(url, 1.0)
            for _ in range(args.rounds):
                for name, (_, url) in servers.items():
                    rate, failures = load(url, args.seconds)
                    if failures:
                        raise SystemExit(f"{name}: {failures} polls were not answered with HTTP 200")
                    samples[name].append(rate)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=10)
    base = statistics.median(samples["openleadr OpenADRServer"])
    print(
        f"oadrPoll, {args.concurrency} concurrent clients ({args.load}), {args.rounds} rounds x {args.seconds:g} s, "
        f"server on core {server_core}, clients on core {client_core}"
    )
    for name, rates in samples.items():
        median = statistics.median(rates)
        print(
            f"  {name:<26} {median:>9,.0f} polls/s  ({median / base:.2f}x)  rounds: "
            + ", ".join(f"{r:,.0f}" for r in rates)
        )
    ratio = statistics.median(samples["tgw VTN"]) / base
    print(f"target >= 3x openleadr: {'PASS' if ratio >= 3 else 'MISS'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
