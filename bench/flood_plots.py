"""PNG plots of a flood bench run: the overload curve and the legitimate client's RTT. Optional: matplotlib is
the `bench` extra (pip install -e '.[bench]'); without it the bench still prints and writes its JSON."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.flood_scenarios import Run


def _pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(runs: Sequence[Run], overload_png: Path, rtt_png: Path) -> str:
    """Write both plots; returns what was written, or why nothing was."""
    plt = _pyplot()
    if plt is None:
        return "no PNG: matplotlib is not installed (pip install -e '.[bench]')"
    written = []
    curves = sorted({r.responder for r in runs if r.part == "overload" and r.error is None})
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        top = 0.0
        for responder in curves:
            points = sorted(
                (r.offered_per_s, r.replies_per_s)
                for r in runs
                if r.responder == responder and r.part == "overload" and r.error is None
            )
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=responder)
            top = max(top, *(p[0] for p in points))
        ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="every request answered")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="offered ARP requests/s",
            ylabel="replies/s",
            title="ARP flood: replies against offered load (25/50/100/200 % of capacity)",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        _save(plt, fig, overload_png)
        written.append(str(overload_png))
    legit = [r for r in runs if r.part == "legit" and r.error is None and r.probe and r.probe.p50_ms is not None]
    if legit:
        fig, ax = plt.subplots(figsize=(max(7, 0.55 * len(legit)), 4.5))
        labels = [f"{r.responder}\nlimit {r.protection}\n{r.sources} MAC" for r in legit]
        xs = range(len(legit))
        ax.bar([x - 0.2 for x in xs], [r.probe.p50_ms for r in legit if r.probe], width=0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], [r.probe.p99_ms for r in legit if r.probe], width=0.4, label="p99")
        for x, r in zip(xs, legit, strict=True):
            assert r.probe is not None
            ax.annotate(
                f"{100 * r.probe.answered_share:.0f}%", (x, r.probe.p99_ms or 0), ha="center", va="bottom", fontsize=7
            )
        ax.axhline(1.0, color="red", linestyle=":", linewidth=1, label="target p99 1 ms")
        ax.set_xticks(list(xs), labels, fontsize=7)
        ax.set(
            yscale="log",
            ylabel="ARP round trip (ms)",
            title="legitimate client during a flood (% answered above the bars)",
        )
        ax.legend(fontsize=8)
        _save(plt, fig, rtt_png)
        written.append(str(rtt_png))
    return ", ".join(written) if written else "no PNG: no overload or legitimate-client runs"


def _save(plt: Any, fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
