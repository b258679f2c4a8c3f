"""A report folder for one or more analysed sessions: the paper's four figures, Table 1, report.md.

Files (PNG and SVG for each figure):

- fig1: probability of the most likely action at each decision step, every probe architecture one
  thin line, the session's controller in colour against the untrained (random) controller in grey;
- fig2: validation perplexity of the sampled architectures on the shared weights, trained vs random
  controller, box plots per session;
- fig3: final controller hidden states, one heatmap per session (rows: architectures, columns:
  hidden units), one symmetric diverging scale for all, so solid columns (collapse) compare;
- fig4: the per-step lines of fig1 without the reference, sessions side by side (the paper compares
  supervised and unsupervised this way);
- table1: the paper's Table 1 layout, ours beside the paper's value per measure;
- table1.json: a list with each analysis's ``to_dict(figures=False)``: the numbers, not the arrays
  (``analyze --format json`` gives those), so it stays small enough to read and diff;
- report.md: what was analysed, Table 1 (rho to 3 decimals, the same numbers as table1.json),
  p-values, collapse indices, the Fig. 2 summary, links to the figures.

Drawn with matplotlib's object API on Agg canvases (no pyplot, no global backend switch).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .analysis import MEASURE_LABELS, Analysis
from .diagnostics import TABLE1_COLUMNS

COLORS = {"random": "tab:green", "unsupervised": "tab:orange", "supervised": "tab:blue"}
REFERENCE = "0.6"  # the untrained controller, in grey
FIGURES = ("fig1", "fig2", "fig3", "fig4", "table1")


def write_report(analyses: Sequence[Analysis], out_dir: Path) -> Path:
    """Write the figures, table1.json and report.md into ``out_dir``; returns report.md's path."""
    if not analyses:
        raise ValueError("a report needs at least one analysis")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, draw in zip(FIGURES, (fig1, fig2, fig3, fig4, table1_figure)):
        _save(draw(analyses), out_dir / name)
    summary = [a.to_dict(figures=False) for a in analyses]
    (out_dir / "table1.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    path = out_dir / "report.md"
    path.write_text(markdown(analyses))
    return path


# -- figures ----------------------------------------------------------------------------------
def fig1(analyses: Sequence[Analysis]) -> Figure:
    """Max action probability per step: trained (colour) vs random (grey) controller."""
    fig, axes = _panels(len(analyses), "Fig. 1: probability of the most likely action at each step")
    for ax, a in zip(axes, analyses):
        _step_lines(ax, a.random.max_probs, REFERENCE, "random controller", style="--")
        _step_lines(ax, a.trained.max_probs, _color(a), f"{a.controller} (trained)")
        ax.legend(loc="upper right", fontsize=7)
        _title(ax, a)
    return fig


def fig2(analyses: Sequence[Analysis]) -> Figure:
    """Perplexity distributions of sampled architectures, trained vs random, per session."""
    fig = Figure(figsize=(max(4.0, 2.2 * len(analyses)), 3.6), layout="constrained")
    ax = fig.add_subplot()
    data, labels, colors = [], [], []
    for a in analyses:
        for which, probes, color in (("trained", a.trained, _color(a)), ("random", a.random, REFERENCE)):
            finite = probes.ppl[np.isfinite(probes.ppl)]
            diverged = len(probes.ppl) - len(finite)
            data.append(finite if len(finite) else np.array([np.nan]))
            labels.append(f"{a.controller}\n{which}" + (f"\n({diverged} diverged)" if diverged else ""))
            colors.append(color)
    boxes = ax.boxplot(data, patch_artist=True, widths=0.6)
    for patch, color in zip(boxes["boxes"], colors):
        patch.set_facecolor(color)
        patch.set_alpha(0.6)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
    values = np.concatenate([d[np.isfinite(d)] for d in data])
    if values.size and values.min() > 0 and values.max() / values.min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel("validation perplexity")
    ax.set_title("Fig. 2: sampled architectures on the shared weights", fontsize=10)
    return fig


def fig3(analyses: Sequence[Analysis]) -> Figure:
    """Final hidden states, one heatmap per session, on one symmetric colour scale."""
    fig, axes = _panels(len(analyses), "Fig. 3: final controller hidden state (row: architecture)",
                        sharey=False, height=3.4)
    limit = max(float(np.abs(a.trained.hidden).max()) for a in analyses) or 1.0
    image = None
    for ax, a in zip(axes, analyses):
        image = ax.imshow(a.trained.hidden, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                          interpolation="nearest")
        ax.set_xlabel("hidden unit")
        ax.set_ylabel("architecture")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _title(ax, a)
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    return fig


def fig4(analyses: Sequence[Analysis]) -> Figure:
    """Max action probability per step across architectures, sessions side by side."""
    fig, axes = _panels(len(analyses), "Fig. 4: most likely action's probability per step, across architectures")
    for ax, a in zip(axes, analyses):
        _step_lines(ax, a.trained.max_probs, _color(a), a.controller)
        _title(ax, a)
    return fig


def table1_figure(analyses: Sequence[Analysis]) -> Figure:
    """The paper's Table 1 layout: one row per session with ours, one with the paper's."""
    header = ["controller", "session", "", *(MEASURE_LABELS[m] for m in TABLE1_COLUMNS)]
    rows = []
    for a in analyses:
        paper = a.paper or {}
        rows.append([a.controller, a.session, "ours", *(_fmt(a.spearman[m]["rho"]) for m in TABLE1_COLUMNS)])
        rows.append(["", "", "paper", *(_fmt(paper.get(m)) for m in TABLE1_COLUMNS)])
    fig = Figure(figsize=(11, 0.6 + 0.3 * (len(rows) + 1)), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(header))))
    ax.set_title("Table 1: Spearman rho between hidden-state distance and each similarity measure", fontsize=10)
    return fig


def _panels(count: int, title: str, sharey: bool = True, height: float = 3.2) -> tuple[Figure, list]:
    fig = Figure(figsize=(max(4.5, 4.2 * count), height), layout="constrained")
    axes = fig.subplots(1, count, sharey=sharey, squeeze=False)[0]
    fig.suptitle(title, fontsize=10)
    return fig, list(axes)


def _step_lines(ax, max_probs: np.ndarray, color: str, label: str, style: str = "-") -> None:
    """One thin line per architecture and a bold mean line; steps count from 1 as in the paper."""
    steps = np.arange(1, max_probs.shape[1] + 1)
    ax.plot(steps, max_probs.T, color=color, alpha=0.12, linewidth=0.8)
    ax.plot(steps, max_probs.mean(axis=0), color=color, linewidth=2.0, label=label, linestyle=style)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("decision step")
    ax.set_ylabel("max action probability")


def _title(ax, a: Analysis) -> None:
    ax.set_title(f"{a.controller}, epoch {a.epoch}\n{a.session}", fontsize=8)


def _color(a: Analysis) -> str:
    return COLORS.get(a.controller, "tab:purple")


def _save(fig: Figure, stem: Path) -> None:
    fig.savefig(stem.with_suffix(".png"), dpi=120, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight", metadata={"Date": None})


# -- report.md --------------------------------------------------------------------------------
def markdown(analyses: Sequence[Analysis]) -> str:
    """report.md: what was analysed, Table 1 with p-values, collapse indices, Fig. 2, figures."""
    lines = ["# enas-tui report", "",
             f"{len(analyses)} session(s); each analysis samples n architectures from the session's controller "
             "(and from an untrained *random* controller on the same shared weights) and scores each on "
             "the first validation minibatches.", "",
             "| session | controller | epoch | checkpoint | n | seed | validation minibatches |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {a.session} | {a.controller} | {a.epoch} | {a.checkpoint} | {a.n} | {a.seed} | {a.valid_batches} |"
              for a in analyses]
    labels = [MEASURE_LABELS[m] for m in TABLE1_COLUMNS]
    lines += ["", "## Table 1", "",
              "Spearman rho between the L2 distance of the final controller hidden states and each "
              "similarity measure, over all pairs; *paper* is the value in Adam & Lorraine's Table 1.", "",
              "| session | controller | row | " + " | ".join(labels) + " |",
              "|---|---|---|" + "---|" * len(labels)]
    for a in analyses:
        paper = a.paper or {}
        lines.append(_md_row(a, "ours", [_fmt(a.spearman[m]["rho"]) for m in TABLE1_COLUMNS]))
        lines.append(_md_row(a, "p", [_p(a.spearman[m]["p"]) for m in TABLE1_COLUMNS]))
        lines.append(_md_row(a, "paper", [_fmt(paper.get(m)) for m in TABLE1_COLUMNS]))
    lines += ["", "## Collapse index", "",
              "Mean over columns of the across-architecture standard deviation (near 0: every architecture "
              "gives the same row, the paper's collapsed controller).", "",
              "| session | controller | hidden | max prob | random ctrl: hidden | random ctrl: max prob |",
              "|---|---|---|---|---|---|"]
    for a in analyses:
        ci, cr = a.collapse_index, a.collapse_index_random
        lines.append(f"| {a.session} | {a.controller} | {ci['hidden']:.4f} | {ci['max_prob']:.4f} | "
                     f"{cr['hidden']:.4f} | {cr['max_prob']:.4f} |")
    lines += ["", "## Fig. 2 summary", "",
              "Validation perplexity of the sampled architectures (finite values; diverged ones counted).", "",
              "| session | controller | sampled by | median | q25 | q75 | min | max | diverged |",
              "|---|---|---|---|---|---|---|---|---|"]
    for a in analyses:
        for which, s in a.fig2.items():
            cells = [_fmt(s[k], 2) for k in ("median", "q25", "q75", "min", "max")]
            lines.append(f"| {a.session} | {a.controller} | {which} | " + " | ".join(cells) + f" | {s['nonfinite']} |")
    lines += ["", "## Figures", ""]
    captions = {"fig1": "Fig. 1: most likely action's probability per step, trained vs random controller",
                "fig2": "Fig. 2: perplexity of sampled architectures, trained vs random controller",
                "fig3": "Fig. 3: final controller hidden states",
                "fig4": "Fig. 4: most likely action's probability per step across architectures",
                "table1": "Table 1"}
    for name in FIGURES:
        lines += [f"![{captions[name]}]({name}.png) ([SVG]({name}.svg))", ""]
    lines += ["table1.json holds these numbers unrounded.", ""]
    return "\n".join(lines)


def _md_row(a: Analysis, row: str, cells: list[str]) -> str:
    return f"| {a.session} | {a.controller} | {row} | " + " | ".join(cells) + " |"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"
