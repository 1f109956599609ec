"""Network-aware clearing (gateway.market.network_clearing) vs a uniform-price clearing of the same bids.

The network is the IEEE 9500-node feeder's location tree (substation > feeder > ~1,300 transformers > ~1,500
service points, limits from the transformer ratings) read with the project's CIM reader when the fixture is
there, else a synthetic tree of the same shape. 100,000 random bids (half buys, half sells) sit on the service
points; sell prices carry a per-location offset so that some pockets are cheap and push against their transformer.

Contenders, interleaved, same bids, pinned to one core, medians:
  * network: ``clear_network`` (HiGHS LP with the transport limits, locational prices, awards per bid id);
  * network LP, no limits: the same call on the same tree without capacities (what the LP costs by itself);
  * uniform: a numpy sort-based walk written here (buys descending, sells ascending, cumulative quantities,
    marginal bid rationed), producing the same outputs (one price, awards per bid id).

Target: network <= 10x uniform. The LP without limits is checked against the walk's welfare once.

Run: ``.venv/bin/python benchmarks/bench_network_clearing.py [--runs N] [--bids N] [--synthetic]``. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.market.network_clearing import Bids, Network, clear_network  # noqa: E402

from harness import pin_to_one_core  # noqa: E402

CIM_FILE = ROOT.parent / "shared" / "fixtures" / "cim" / "ieee9500" / "ieee9500bal_cim100.xml"
TARGET_RATIO = 10.0


# -- the network -------------------------------------------------------------------------------------------


def cim_network(path: Path) -> tuple[Network, list[str], str]:
    from gateway.protocols.cim import build_network, read_cim
    from gateway.protocols.cim.mapper import to_canonical, transport_limits

    view = build_network(read_cim([path]))
    locations, _ = to_canonical(view, owner_id="op")
    limits = transport_limits(view)
    parent = {loc.id: loc.parent_id for loc in locations}
    service_points = [loc.id for loc in locations if loc.kind.value == "service_point"]
    return Network(parent, {k: float(v) for k, v in limits.items()}), service_points, f"IEEE 9500 from {path.name}"


def synthetic_network(rng: np.random.Generator) -> tuple[Network, list[str], str]:
    """1 substation, 1 feeder (75 MVA), 1,287 transformers (25-167 kVA), 1,467 service points (unrated)."""
    parent: dict[str, str | None] = {"sub": None, "fdr": "sub"}
    caps: dict[str, float] = {"fdr": 75_000.0}
    xfs = [f"xf{i}" for i in range(1287)]
    for xf in xfs:
        parent[xf] = "fdr"
        caps[xf] = float(rng.choice([25.0, 37.5, 50.0, 75.0, 100.0, 167.0]))
    sps = [f"sp{i}" for i in range(1467)]
    owners = np.concatenate([np.arange(len(xfs)), rng.integers(0, len(xfs), len(sps) - len(xfs))])
    for sp, owner in zip(sps, owners, strict=True):
        parent[sp] = xfs[owner]
    return Network(parent, caps), sps, "synthetic tree of the IEEE 9500 shape"


def random_bids(rng: np.random.Generator, service_points: list[str], n: int) -> Bids:
    sp = np.asarray(service_points)
    at = rng.integers(0, len(sp), n)
    is_buy = np.arange(n) < n // 2
    offset = rng.normal(0.0, 0.05, len(sp))[at]  # some locations have cheap supply, some dear
    price = np.where(is_buy, rng.uniform(0.05, 0.40, n), np.clip(rng.uniform(0.02, 0.35, n) + offset, 0.0, None))
    return Bids(
        ids=[f"b{i}" for i in range(n)],
        side=np.where(is_buy, "buy", "sell"),
        location=sp[at],
        quantity_kw=rng.uniform(0.5, 10.0, n).round(3),
        price=price.round(5),
    )


# -- the uniform-price reference -----------------------------------------------------------------------------


def uniform_walk(bids: Bids) -> tuple[float, dict[str, float], float]:
    """(price, awards per bid id, welfare): buys descending, sells ascending, matched while buy >= sell."""
    side = np.asarray(bids.side)
    qty = np.asarray(bids.quantity_kw, dtype=float)
    price = np.asarray(bids.price, dtype=float)
    buy_idx = np.flatnonzero(side == "buy")
    sell_idx = np.flatnonzero(side == "sell")
    buy_idx = buy_idx[np.argsort(-price[buy_idx], kind="stable")]
    sell_idx = sell_idx[np.argsort(price[sell_idx], kind="stable")]
    cum_b = np.cumsum(qty[buy_idx])
    cum_s = np.cumsum(qty[sell_idx])
    # Breakpoints of both step curves; on each segment (start, end] the buy and sell prices are those of the
    # bids whose cumulative quantity first reaches past the start.
    starts = np.unique(np.concatenate([[0.0], cum_b, cum_s]))
    starts = starts[starts < min(cum_b[-1], cum_s[-1])]
    pb = price[buy_idx][np.searchsorted(cum_b, starts, side="right")]
    ps = price[sell_idx][np.searchsorted(cum_s, starts, side="right")]
    crossed = np.flatnonzero(pb < ps)
    k = int(crossed[0]) if len(crossed) else len(starts)
    volume = float(min(cum_b[-1], cum_s[-1])) if k == len(starts) else float(starts[k])
    x = np.zeros(len(qty))
    x[buy_idx] = np.clip(volume - (cum_b - qty[buy_idx]), 0.0, qty[buy_idx])
    x[sell_idx] = np.clip(volume - (cum_s - qty[sell_idx]), 0.0, qty[sell_idx])
    clearing = 0.5 * (pb[k - 1] + ps[k - 1]) if k else float("nan")
    welfare = float(np.dot(np.where(side == "buy", price, -price), x))
    return clearing, dict(zip(bids.ids, x.tolist(), strict=True)), welfare


# -- main ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bids", type=int, default=100_000)
    parser.add_argument("--synthetic", action="store_true", help="skip the CIM fixture")
    args = parser.parse_args()
    runs = max(3, args.runs)
    core = pin_to_one_core()
    rng = np.random.default_rng(20240611)

    started = time.perf_counter()
    if CIM_FILE.exists() and not args.synthetic:
        network, service_points, source = cim_network(CIM_FILE)
    else:
        if not args.synthetic:
            print(f"note: {CIM_FILE} not found; using a synthetic tree of the same shape")
        network, service_points, source = synthetic_network(rng)
    built = time.perf_counter() - started
    n_xf = sum(1 for loc in network.parent if loc.startswith("xf"))
    print(f"python {platform.python_version()}, pinned to core {core}, {runs} interleaved runs, medians")
    print(
        f"network: {source}: {len(network.parent)} locations ({n_xf} transformers, {len(service_points)} "
        f"service points), {len(network.capacity_kva)} limits; built in {built:.2f} s (not timed below)"
    )
    if importlib.util.find_spec("gateway.market.auction") is not None:
        print("note: gateway.market.auction exists; the reference here is the benchmark's own numpy walk")
    bids = random_bids(rng, service_points, args.bids)
    print(f"bids: {len(bids):,} ({len(bids) // 2:,} buys, {len(bids) - len(bids) // 2:,} sells) on service points")

    unlimited = Network(network.parent)
    contenders = {
        "network (limits)": lambda: clear_network(network, bids),
        "network LP, no limits": lambda: clear_network(unlimited, bids),
        "uniform (numpy walk)": lambda: uniform_walk(bids),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, object] = {}
    for _ in range(runs):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}

    net_result = outputs["network (limits)"]
    free_result = outputs["network LP, no limits"]
    price, _, walk_welfare = outputs["uniform (numpy walk)"]
    base = med["uniform (numpy walk)"]
    print()
    print(f"{'contender':<24} {'median s':>10} {'vs uniform':>11}")
    for name in contenders:
        print(f"{name:<24} {med[name]:>10.4f} {med[name] / base:>10.1f}x")
    print()
    agree = abs(free_result.welfare - walk_welfare) <= 1e-6 * max(1.0, abs(walk_welfare))
    print(
        f"check: LP without limits welfare {free_result.welfare:,.4f} vs walk {walk_welfare:,.4f} -> "
        f"{'agree' if agree else 'DISAGREE'}; uniform price {price:.5f}"
    )
    prices = np.array(list(net_result.prices.values()))
    print(
        f"network: welfare {net_result.welfare:,.4f} ({net_result.welfare / walk_welfare:.4f} of unconstrained), "
        f"{len(net_result.binding)} of {len(network.capacity_kva)} limits bind, "
        f"prices {prices.min():.5f}..{prices.max():.5f} across {len(prices)} locations"
    )
    ratio = med["network (limits)"] / base
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"ratio network/uniform = {ratio:.1f}x (target <= {TARGET_RATIO:.0f}x): {verdict}")


if __name__ == "__main__":
    main()
