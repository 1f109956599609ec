"""CIM loading: the IEEE 9500-node feeder (39.6 MB of RDF/XML, 69,307 objects) read by our reader and by cim-graph.

Contenders, side by side in the same run:
  * ours: ``read_cim`` (gateway.protocols.cim.reader), the id-indexed object model;
  * ours + network: ``read_cim`` then ``build_network`` (gateway.protocols.cim.network), when that module
    exists: what cim-graph's typed, linked object graph is comparable to;
  * cim-graph (the ``cim`` extra), profile ``cimhub_2023``: ``FeederModel`` over an ``XMLFile`` connection;
  * floor: lxml ``iterparse`` of the same bytes, clearing as it goes, no objects kept.

Every run of every contender is a fresh child process (so peak RSS is that run's own, taken from
``os.wait4``'s rusage of that child), pinned to the same single core; runs are interleaved and medians
reported. "load" is the time from file path to model in memory inside the child, imports excluded; "process"
is the child's whole life as the parent saw it (interpreter start, imports, load, exit).

Target: ours (with the network view when it exists) loads >= 5x faster than cim-graph and peaks <= 300 MB.

Run: ``.venv/bin/python benchmarks/bench_cim.py [--quick] [--runs N] [--file PATH]``. Not a test: it prints.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import pin_to_one_core

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT.parent / "shared" / "fixtures" / "cim" / "ieee9500" / "ieee9500bal_cim100.xml"
CIMGRAPH_PROFILE = "cimhub_2023"
TARGET_SPEEDUP = 5.0
TARGET_PEAK_MB = 300.0

OURS = "ours: read_cim"
OURS_NETWORK = "ours: read_cim + build_network"
CIMGRAPH = f"cim-graph ({CIMGRAPH_PROFILE})"
FLOOR = "floor: lxml iterparse, nothing kept"


# -- the child: one load, one JSON line on stdout ---------------------------------------------------------


def child(kind: str, path: str) -> dict[str, object]:
    started = time.perf_counter()
    if kind in (OURS, OURS_NETWORK):
        from gateway.protocols.cim.reader import read_cim

        build_network = None
        if kind == OURS_NETWORK:
            from gateway.protocols.cim.network import build_network
        imported = time.perf_counter()
        model = read_cim([path])
        read = time.perf_counter()
        result: dict[str, object] = {"objects": len(model.objects), "read_s": read - imported}
        if build_network is not None:
            network = build_network(model)
            result["network_s"] = time.perf_counter() - read
            result["network"] = type(network).__name__
    elif kind == CIMGRAPH:
        os.environ["CIMG_CIM_PROFILE"] = CIMGRAPH_PROFILE
        from cimgraph.databases import XMLFile
        from cimgraph.models import FeederModel

        imported = time.perf_counter()
        connection = XMLFile(filename=path)
        if not connection.roots:
            raise SystemExit(f"cim-graph could not parse {path}")
        graph = FeederModel(container=connection.cim.Feeder(), connection=connection, distributed=False).graph
        result = {"objects": sum(len(by_id) for by_id in graph.values())}
    elif kind == FLOOR:
        from lxml import etree

        imported = time.perf_counter()
        count = 0
        for _, elem in etree.iterparse(path, events=("end",), resolve_entities=False, no_network=True):
            if elem.getparent() is not None and elem.getparent().getparent() is None:
                count += 1
                elem.clear()
                while elem.getprevious() is not None:
                    del elem.getparent()[0]
        result = {"objects": count}
    else:
        raise SystemExit(f"unknown contender {kind!r}")
    result["import_s"] = imported - started
    result["load_s"] = time.perf_counter() - imported
    return result


# -- the parent -------------------------------------------------------------------------------------------


@dataclass
class Samples:
    load_s: list[float] = field(default_factory=list)
    process_s: list[float] = field(default_factory=list)
    import_s: list[float] = field(default_factory=list)
    network_s: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    objects: set[int] = field(default_factory=set)


def run_once(kind: str, path: Path, samples: Samples) -> None:
    """One fresh child process; its own peak RSS comes from wait4's rusage for that child alone."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, str(path)], stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{kind}: child exited with {process.returncode}:\n{tail}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    samples.load_s.append(result["load_s"])
    samples.import_s.append(result["import_s"])
    if "network_s" in result:
        samples.network_s.append(result["network_s"])
    samples.process_s.append(elapsed)
    samples.peak_mb.append(usage.ru_maxrss / 1024)  # KiB on Linux
    samples.objects.add(result["objects"])


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def version_of(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per contender (a smoke run)")
    parser.add_argument("--runs", type=int, default=3, help="runs per contender, medians reported (default 3)")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="the RDF/XML file to load")
    parser.add_argument("--child", nargs=2, metavar=("CONTENDER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    runs = 1 if args.quick else max(args.runs, 3)
    path: Path = args.file
    if not path.exists():
        print(f"SKIP: {path} is absent (the IEEE 9500 fixture lives in ../shared in development)")
        return 0

    core = pin_to_one_core()
    import lxml

    print(
        f"bench_cim: Python {platform.python_version()}, lxml {lxml.__version__},"
        f" cim-graph {version_of('cim-graph')}, pinned to core {core}"
    )
    print(f"file: {path.name}, {path.stat().st_size / 1e6:.1f} MB; {runs} run(s) per contender, interleaved")

    notes: list[str] = []
    contenders = [OURS]
    if available("gateway.protocols.cim.network"):
        contenders.append(OURS_NETWORK)
    else:
        notes.append("gateway.protocols.cim.network is not there yet: the network view was not measured")
    if available("cimgraph"):
        contenders.append(CIMGRAPH)
    else:
        notes.append("cim-graph is not installed (pip install '.[cim]'): no comparison")
    contenders.append(FLOOR)

    samples = {kind: Samples() for kind in contenders}
    for _ in range(runs):
        for kind in list(contenders):
            try:
                run_once(kind, path, samples[kind])
            except RuntimeError as exc:
                if kind != OURS_NETWORK:
                    raise
                notes.append(f"the network view failed, left out: {str(exc).splitlines()[-1]}")
                contenders.remove(kind)
    samples = {kind: samples[kind] for kind in contenders}

    median = statistics.median
    reference = median(samples[CIMGRAPH].load_s) if CIMGRAPH in samples else None
    reference_mb = median(samples[CIMGRAPH].peak_mb) if CIMGRAPH in samples else None
    reference_process = median(samples[CIMGRAPH].process_s) if CIMGRAPH in samples else None
    print()
    print(
        f"  {'contender':<36} {'load s':>7} {'spread':>7} {'import s':>9} {'process s':>10} {'peak MB':>8}"
        f" {'objects':>8} {'faster':>7} {'(proc)':>7} {'RSS':>6}"
    )
    for kind, s in samples.items():
        load = median(s.load_s)
        spread = (max(s.load_s) - min(s.load_s)) / load
        faster = f"{reference / load:.2f}x" if reference else "-"
        faster_process = f"{reference_process / median(s.process_s):.2f}x" if reference_process else "-"
        rss = f"{median(s.peak_mb) / reference_mb:.2f}x" if reference_mb else "-"
        objects = ",".join(f"{n:,}" for n in sorted(s.objects))
        print(
            f"  {kind:<36} {load:>7.2f} {spread:>6.0%} {median(s.import_s):>9.2f} {median(s.process_s):>10.2f}"
            f" {median(s.peak_mb):>8.0f} {objects:>8} {faster:>7} {faster_process:>7} {rss:>6}"
        )
        if s.network_s:
            read = load - median(s.network_s)
            print(f"  {'':<36} (read {read:.2f} s + network {median(s.network_s):.2f} s)")
    print(
        "  faster: cim-graph's median load time / this one's (imports excluded); (proc): the same for whole"
        " processes;\n  RSS: this one's median peak RSS / cim-graph's. Targets are judged on load time."
    )
    for note in notes:
        print(f"note: {note}")
    print()

    ok = True
    judged = [kind for kind in (OURS, OURS_NETWORK) if kind in samples]
    for kind in judged:
        load, peak = median(samples[kind].load_s), median(samples[kind].peak_mb)
        checks = [f"peak {peak:.0f} MB (target <= {TARGET_PEAK_MB:.0f} MB)"]
        passed = peak <= TARGET_PEAK_MB
        if reference is not None:
            checks.insert(0, f"{reference / load:.2f}x faster than cim-graph (target >= {TARGET_SPEEDUP:.0f}x)")
            passed = passed and reference / load >= TARGET_SPEEDUP
        else:
            checks.insert(0, "speed vs cim-graph not checked (not installed)")
        target = kind == judged[-1]  # the network view when there is one: that is what compares with cim-graph
        label = ("PASS" if passed else "FAIL") if target else ("pass" if passed else "fail") + " (info)"
        print(f"{label}: {kind}: {load:.2f} s, " + "; ".join(checks))
        ok = ok and (passed or not target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
