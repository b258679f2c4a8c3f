"""A report folder for one or more analysed sessions: the paper's four figures, Table 1, report.md.

Files (PNG at 300 dpi and SVG for each figure):

- fig1: probability of the most likely action at each decision step, every probe architecture one
  thin line, the session's controller in colour against the untrained (random setting's)
  controller in grey;
- fig2: validation perplexity of the sampled architectures, each controller's samples on its own
  run's shared weights (box plots). With a random session in the report that session's box is
  the reference, as in the paper; a session without one gets a grey box for the untrained
  controller on *its* weights, labelled so;
- fig3: final controller hidden states, one heatmap per session (rows: architectures, columns:
  hidden units), each on its own symmetric colour scale printed on its colour bar, so a
  low-magnitude controller does not look solid because another session is larger; collapse is
  read from the scale-free index in each panel's title;
- fig4: the per-step lines of fig1 without the reference, sessions side by side (the paper compares
  supervised and unsupervised this way);
- table1: the paper's Table 1 layout, ours (with p-values and n) beside the paper's value;
- table1_seeds (when a controller has several runs): each column's mean ± 95% interval over seeds,
  the seeds' values and the paper's value;
- embedding: the embedding map (the paper's section 3.4; embedding.plot_embedding), each session's
  probe set on one shared pair of axes, coloured by each architecture's validation perplexity;
- cell_shape: depth and width of the sampled cells over each search, from the live probe sets in
  the session log (cell_shape.plot_shape_history), against uniform sampling and the derived cell;
- retrain (with retrained cells): each retrained cell's whole-split validation perplexity per
  epoch, its switch to averaged SGD and its test perplexity marked at the epoch whose weights
  were tested;
- table1.json: a list with each analysis's ``to_dict(figures=False)``: the numbers, not the arrays
  (``analyze --format json`` gives those); summary.json: the intervals, the retrained cells and the
  paper's claims;
- report.md: what was analysed and how, Table 1 and the other readings, collapse indices, the
  Fig. 2 summary, the summary over seeds, the retrained cells' table, the claims, how these
  numbers relate to the dashboard's, links to the figures.

Drawn with matplotlib's object API on Agg canvases (no pyplot, no global backend switch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import cell_shape, diagnostics, embedding
from .analysis import Analysis, pair_fig2
from .search_space import Architecture
from .replication import Table1Summary, aggregate, claims, format_claims, retrain_verdict
from .retrain.outcome import RetrainOutcome

COLORS = {"random": "tab:green", "unsupervised": "tab:orange", "supervised": "tab:blue"}
REFERENCE = "0.55"  # the untrained controller, in grey
DPI = 300
FIGURES = ("fig1", "fig2", "fig3", "fig4", "table1", "embedding", "cell_shape")
CAPTIONS = {"fig1": "Fig. 1: most likely action's probability per step, trained vs untrained controller",
            "fig2": "Fig. 2: perplexity of sampled architectures, each controller on its own run's weights",
            "fig3": "Fig. 3: final controller hidden states (each panel on its own colour scale)",
            "fig4": "Fig. 4: most likely action's probability per step across architectures",
            "table1": "Table 1",
            "embedding": "Embedding map (section 3.4): final hidden states on their first two principal "
                         "components, coloured by validation perplexity; one pair of axes for every panel",
            "cell_shape": "Cell shape over the search: depth and width of the sampled cells per live probe set "
                          "(median, quartiles), uniform sampling and the derived cell",
            "table1_seeds": "Table 1 over seeds: mean ± 95% interval",
            "retrain": "Retrained cells: whole-split validation perplexity per epoch, test perplexity marked"}


def write_report(analyses: Sequence[Analysis], out_dir: Path,
                 readings: dict[str, str | None] | None = None, retrains: Sequence[RetrainOutcome] = ()) -> Path:
    """Write the figures, table1.json, summary.json and report.md into ``out_dir``; returns report.md.

    Analyses are paired for Fig. 2 first (analysis.pair_fig2): with a random session among them,
    each trained session's reference is that session's samples on its own weights. ``retrains``
    (finished retrain sessions' outcomes) add their curves, their table and claim (f).
    """
    if not analyses:
        raise ValueError("a report needs at least one analysis")
    analyses = pair_fig2(analyses)
    shown = diagnostics.resolve_readings(readings)
    summary = aggregate(analyses, readings=readings, retrains=retrains)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(figure_names(summary))
    drawers = {"fig1": fig1, "fig2": fig2, "fig3": fig3, "fig4": fig4, "embedding": embedding_figure,
               "cell_shape": cell_shape_figure,
               "table1": lambda a: table1_figure(a, shown), "table1_seeds": lambda a: table1_seeds_figure(summary),
               "retrain": lambda a: retrain_figure(summary.retrains)}
    for name in names:
        _save(drawers[name](analyses), out_dir / name)
    (out_dir / "table1.json").write_text(
        json.dumps([a.to_dict(figures=False) for a in analyses], indent=2, allow_nan=False) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(_finite(summary_dict(summary)), indent=2, allow_nan=False) + "\n")
    path = out_dir / "report.md"
    path.write_text(markdown(analyses, shown, summary, names))
    return path


def figure_names(summary: Table1Summary) -> tuple[str, ...]:
    """The figures a report has: the paper's, plus Table 1 over seeds when a controller has several
    runs, plus the retrain curves when there are retrained cells."""
    return (FIGURES + (("table1_seeds",) if summary.seeds > 1 else ())
            + (("retrain",) if summary.has_retrains else ()))


def summary_dict(summary: Table1Summary) -> dict:
    """summary.json: per controller, every interval (mean, half_width, n); the retrained cells and,
    per trained controller, the interval of random's test ppl minus its own; and the claims."""
    return {"confidence": summary.confidence, "shown": summary.shown,
            "controllers": {name: asdict(c) for name, c in summary.controllers.items()},
            "retrains": [r.to_dict() for r in summary.retrains],
            "retrain_gaps": {name: asdict(gap) for name, gap in summary.retrain_gaps.items()},
            "retrain_verdict": retrain_verdict(summary),
            "claims": [{"key": c.key, "statement": c.statement, "outcome": c.outcome, "detail": c.detail,
                        "rule": c.rule} for c in claims(summary)]}


def _finite(value):
    """JSON's numbers: a non-finite float (a retrain whose checks all diverged) becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# -- figures ----------------------------------------------------------------------------------
def fig1(analyses: Sequence[Analysis]) -> Figure:
    """Max action probability per step: trained (colour) vs untrained (grey) controller."""
    fig, axes = _panels(len(analyses), "Fig. 1: probability of the most likely action at each step")
    for ax, a in zip(axes, analyses):
        _step_lines(ax, a.random.max_probs, REFERENCE, "untrained controller", style="--")
        _step_lines(ax, a.trained.max_probs, _color(a), f"{a.controller}")
        ax.legend(loc="upper right", fontsize=8)
        _title(ax, a)
    return fig


def fig2(analyses: Sequence[Analysis]) -> Figure:
    """Perplexity distributions: each session's samples on its own weights, with its reference."""
    present = {a.session for a in analyses}
    data, labels, colors = [], [], []
    for a in analyses:
        _box(data, labels, colors, a.trained.ppl, f"{a.controller}\nseed {a.run_seed} (…{a.session[-4:]})", _color(a))
        ref = a.reference
        assert ref is not None
        if ref.session is None or ref.session not in present:  # no random session drawn beside it
            _box(data, labels, colors, ref.ppl, f"{ref.label}\n({a.controller} run)", REFERENCE)
    fig = Figure(figsize=(max(5.0, 1.7 * len(data)), 4.2), layout="constrained")
    ax = fig.add_subplot()
    boxes = ax.boxplot(data, patch_artist=True, widths=0.6)
    for patch, color in zip(boxes["boxes"], colors):
        patch.set_facecolor(color)
        patch.set_alpha(0.6)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    values = np.concatenate([d[np.isfinite(d)] for d in data])
    if values.size and values.min() > 0 and values.max() / values.min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel("validation perplexity", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Fig. 2: sampled architectures, each controller on its own run's shared weights", fontsize=10)
    return fig


def _box(data: list, labels: list, colors: list, ppl: np.ndarray, label: str, color: str) -> None:
    finite = ppl[np.isfinite(ppl)]
    diverged = len(ppl) - len(finite)
    data.append(finite if len(finite) else np.array([np.nan]))
    labels.append(label.replace("untrained controller on this run's weights", "untrained controller\non these weights")
                  + (f"\n({diverged} diverged)" if diverged else ""))
    colors.append(color)


def fig3(analyses: Sequence[Analysis]) -> Figure:
    """Final hidden states, one heatmap per session, each on its own symmetric colour scale."""
    fig, axes = _panels(len(analyses), "Fig. 3: final controller hidden state (row: architecture); "
                                       "each panel has its own colour scale", sharey=False, height=3.8)
    for ax, a in zip(axes, analyses):
        hidden = np.asarray(a.trained.hidden, dtype=np.float64)
        limit = float(np.abs(hidden).max()) or 1.0
        image = ax.imshow(hidden, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
        ax.set_xlabel("hidden unit", fontsize=9)
        ax.set_ylabel("architecture", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{a.controller}, epoch {a.epoch}: collapse index {a.collapse_index['hidden']:.3f}\n"
                     f"{a.session}", fontsize=8)
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label(f"hidden value (this panel: ±{limit:.3g})", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig


def fig4(analyses: Sequence[Analysis]) -> Figure:
    """Max action probability per step across architectures, sessions side by side."""
    fig, axes = _panels(len(analyses), "Fig. 4: most likely action's probability per step, across architectures")
    for ax, a in zip(axes, analyses):
        _step_lines(ax, a.trained.max_probs, _color(a), a.controller)
        _title(ax, a)
    return fig


def embedding_figure(analyses: Sequence[Analysis]) -> Figure:
    """The embedding map of each session's probe set (embedding.plot_embedding), on shared axes."""
    projections = [embedding.project(a.trained.hidden) for a in analyses]
    limit = embedding.map_limit(projections)
    fig, axes = _panels(len(analyses), "Embedding map: final hidden states on their first two principal "
                                       "components (units of the RMS state norm; shared axes)",
                        sharey=False, height=4.2)
    for ax, a, p in zip(axes, analyses, projections):
        ppl = np.asarray(a.trained.ppl, dtype=np.float64)
        values = np.log10(np.where(np.isfinite(ppl) & (ppl > 0), ppl, np.nan))
        scatter = embedding.plot_embedding(ax, p, values, "log10 validation ppl",
                                           title=f"{a.controller}, epoch {a.epoch}", limit=limit)
        ax.tick_params(labelsize=8)
        ax.xaxis.label.set_size(9)
        ax.yaxis.label.set_size(9)
        ax.title.set_size(8)
        if np.isfinite(values).any():
            bar = fig.colorbar(scatter, ax=ax, shrink=0.85)
            bar.set_label("log10 validation perplexity", fontsize=8)
            bar.ax.tick_params(labelsize=7)
    return fig


def cell_shape_figure(analyses: Sequence[Analysis]) -> Figure:
    """Depth and width of the sampled cells over each search, beside uniform sampling's."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    runs, derived = [], []
    for a in analyses:
        history = (a.search or {}).get("history")
        if history:
            runs.append((a.controller, cell_shape.ShapeHistory(
                np.asarray(history["epochs"]), np.asarray(history["steps"]),
                np.asarray(history["depth"], dtype=np.float64).reshape(-1, 3),
                np.asarray(history["width"], dtype=np.float64).reshape(-1, 3))))
        arch = (a.search or {}).get("derived")
        derived.append((a.controller, Architecture.parse(arch) if arch else None))
    nodes = Architecture.parse(analyses[0].trained.archs[0]).num_nodes
    cell_shape.plot_shape_history(axes, runs, cell_shape.uniform_reference(nodes), derived, colors=COLORS)
    for ax in axes:
        ax.tick_params(labelsize=8)
        ax.xaxis.label.set_size(9)
        ax.yaxis.label.set_size(9)
    if not runs:
        axes[0].set_title("no live probe sets recorded in the session logs", fontsize=8)
    fig.suptitle("Cell shape over the search (Shu et al.: do searches drift to wide, shallow cells?)", fontsize=10)
    return fig


def table1_figure(analyses: Sequence[Analysis], shown: dict[str, str] | None = None) -> Figure:
    """The paper's Table 1 layout: per session ours (rho), its p-value, and the paper's value."""
    shown = shown or diagnostics.resolve_readings()
    columns = diagnostics.TABLE1_COLUMNS
    header = ["controller", "session", "", *(diagnostics.MEASURE_LABELS[shown[c]] for c in columns)]
    rows = []
    for a in analyses:
        paper, row = a.paper or {}, a.row(shown)
        pairs = a.n * (a.n - 1) // 2
        rows.append([a.controller, a.session, f"ours (n {a.n}, {pairs:,} pairs)",
                     *(_fmt(row[c]["rho"]) for c in columns)])
        rows.append(["", "", "p", *(_p(row[c]["p"]) for c in columns)])
        rows.append(["", "", "paper", *(_fmt(paper.get(c)) for c in columns)])
    fig = Figure(figsize=(12, 0.6 + 0.22 * (len(rows) + 1)), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(header))))
    ax.set_title("Table 1: Spearman rho between hidden-state distance and each similarity measure "
                 "(n architectures per probe set; p: two-sided p-value)", fontsize=10)
    return fig


def table1_seeds_figure(summary: Table1Summary) -> Figure:
    """One panel per Table 1 column: each controller's mean ± interval over seeds, and the paper's value."""
    columns = diagnostics.TABLE1_COLUMNS
    fig = Figure(figsize=(3.4 * len(columns), 3.6), layout="constrained")
    axes = fig.subplots(1, len(columns), sharey=True, squeeze=False)[0]
    fig.suptitle(f"Table 1 over seeds: Spearman rho, mean ± {summary.confidence:.0%} interval (Student t); "
                 "dots: seeds, x: the paper", fontsize=10)
    names = list(summary.controllers)
    for ax, column in zip(axes, columns):
        measure = summary.shown[column]
        for x, name in enumerate(names):
            cell = summary.controllers[name].spearman.get(measure)
            if cell is not None and cell.mean is not None:
                err = None if cell.half_width is None else [[cell.half_width], [cell.half_width]]
                ax.errorbar([x], [cell.mean], yerr=err, fmt="o", color=COLORS.get(name, "tab:purple"),
                            capsize=4, markersize=6)
                ax.annotate(f"n={cell.n}", (x, cell.mean), textcoords="offset points", xytext=(6, -3), fontsize=7)
            paper = diagnostics.PAPER_TABLE1.get(name, {}).get(column)
            if paper is not None:
                ax.plot([x], [paper], marker="x", color="tab:red", markersize=8, linestyle="none")
        ax.axhline(0.0, color="0.7", linewidth=0.8)
        ax.set_ylim(-1.05, 1.05)  # rho's range; a wider interval (few seeds) runs off the panel
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(diagnostics.MEASURE_LABELS[measure], fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    axes[0].set_ylabel("Spearman rho", fontsize=9)
    return fig


def retrain_figure(retrains: Sequence[RetrainOutcome]) -> Figure:
    """Each retrained cell's whole-split validation ppl per epoch (a line), its NT-ASGD switch (a
    hollow circle: averaging from the next epoch) and its test ppl (a star at the epoch whose
    weights were tested), coloured by the controller whose search derived the cell."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    styles = ("-", "--", ":", "-.")
    seeds = sorted({r.run_seed for r in retrains})
    for r in retrains:
        color = COLORS.get(r.controller or "", "tab:purple")
        epochs = np.arange(1, len(r.curve) + 1)
        curve = np.array([np.nan if v is None else v for v in r.curve], dtype=np.float64)
        label = f"{r.controller or '--arch'} seed {r.run_seed}: test {_fmt(r.test_ppl, 1)}"
        ax.plot(epochs, curve, color=color, linestyle=styles[seeds.index(r.run_seed) % len(styles)],
                linewidth=1.6, marker=".", markersize=5, label=label)
        if r.switch_epoch is not None and r.switch_epoch <= len(curve):
            ax.plot([r.switch_epoch], [curve[r.switch_epoch - 1]], "o", color=color, fillstyle="none", markersize=7)
        if math.isfinite(r.test_ppl):
            ax.plot([r.best_epoch], [r.test_ppl], "*", color=color, markersize=12, markeredgecolor="black",
                    markeredgewidth=0.5)
    values = np.array([v for r in retrains for v in [*r.curve, r.test_ppl] if v is not None and math.isfinite(v)])
    if values.size and values.min() > 0 and values.max() / values.min() > 5:
        ax.set_yscale("log")
    ax.set_xlim(0.5, max([len(r.curve) for r in retrains] + [r.best_epoch for r in retrains] + [1]) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch", fontsize=9)
    ax.set_ylabel("perplexity", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="upper right", title="line: validation · ★ test · ○ switch to ASGD",
              title_fontsize=7)
    ax.set_title("Retrained cells: each search's derived cell trained from scratch, the same budget", fontsize=10)
    return fig


def _panels(count: int, title: str, sharey: bool = True, height: float = 3.4) -> tuple[Figure, list]:
    """A grid of at most three panels a row (several seeds fill several rows)."""
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(max(4.8, 4.6 * cols), height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharey=sharey, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig, list(axes[:count])


def _step_lines(ax, max_probs: np.ndarray, color: str, label: str, style: str = "-") -> None:
    """One thin line per architecture and a bold mean line; steps count from 1 as in the paper."""
    steps = np.arange(1, max_probs.shape[1] + 1)
    ax.plot(steps, max_probs.T, color=color, alpha=0.12, linewidth=0.8)
    ax.plot(steps, max_probs.mean(axis=0), color=color, linewidth=2.0, label=label, linestyle=style)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("decision step", fontsize=9)
    ax.set_ylabel("max action probability", fontsize=9)
    ax.tick_params(labelsize=8)


def _title(ax, a: Analysis) -> None:
    ax.set_title(f"{a.controller}, epoch {a.epoch} (probe: {a.probe_mode}, {a.probe_state})\n{a.session}",
                 fontsize=8)


def _color(a: Analysis) -> str:
    return COLORS.get(a.controller, "tab:purple")


def _save(fig: Figure, stem: Path) -> None:
    fig.savefig(stem.with_suffix(".png"), dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight", metadata={"Date": None})


# -- report.md --------------------------------------------------------------------------------
def markdown(analyses: Sequence[Analysis], shown: dict[str, str] | None = None,
             summary: Table1Summary | None = None, figures: Sequence[str] = FIGURES) -> str:
    """report.md: what was analysed and how, Table 1 with p-values and the other readings, collapse
    indices, Fig. 2, the summary over seeds and the claims, the dashboard note, the figures."""
    shown = shown or diagnostics.resolve_readings()
    summary = summary or aggregate(analyses)
    lines = ["# enas-tui report", "",
             f"{len(analyses)} session(s); each analysis samples n architectures from the session's controller "
             "(and from the untrained controller of the `random` setting, for Fig. 1) and scores each on the "
             "first validation minibatches with the run's shared weights.", "",
             "| session | controller | epoch | checkpoint | run seed | n | probe seed | probe mode | probe state "
             "| validation minibatches | supervised loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in analyses:
        loss = (f"{a.loss.get('supervised_reduction', '?')}, weight {a.loss.get('supervised_weight', '?')}"
                if a.controller == "supervised" else "-")
        lines.append(f"| {a.session} | {a.controller} | {a.epoch} | {a.checkpoint} | {a.run_seed} | {a.n} | {a.seed} "
                     f"| {a.probe_mode} | {a.probe_state} | {a.valid_batches} | {loss} |")
    columns = diagnostics.TABLE1_COLUMNS
    labels = [diagnostics.MEASURE_LABELS[shown[c]] for c in columns]
    lines += ["", "## Table 1", "",
              "Spearman rho between the L2 distance of the final controller hidden states and each "
              "similarity measure, over all n(n-1)/2 pairs; *paper* is the value in Adam & Lorraine's Table 1. "
              "Each column shows the reading named in its header (README, \"The paper's measurements\").", "",
              "| session | controller | row | " + " | ".join(labels) + " |",
              "|---|---|---|" + "---|" * len(labels)]
    for a in analyses:
        paper, row = a.paper or {}, a.row(shown)
        lines.append(_md_row(a, "ours", [_fmt(row[c]["rho"]) for c in columns]))
        lines.append(_md_row(a, "p", [_p(row[c]["p"]) for c in columns]))
        lines.append(_md_row(a, "paper", [_fmt(paper.get(c)) for c in columns]))
    others = diagnostics.other_measures(shown)
    lines += ["", "## Other readings", "",
              "The same correlation for the readings not shown in Table 1. They measure something other "
              "than the paper's columns, so they have no paper value.", "",
              "| session | controller | row | " + " | ".join(diagnostics.MEASURE_LABELS[m] for m in others) + " |",
              "|---|---|---|" + "---|" * len(others)]
    for a in analyses:
        lines.append(_md_row(a, "ours", [_fmt(a.spearman.get(m, {}).get("rho")) for m in others]))
        lines.append(_md_row(a, "p", [_p(a.spearman.get(m, {}).get("p")) for m in others]))
    lines += ["", "## Collapse index", "",
              "Scale-free: sqrt(mean_i ||h_i - mean h||^2) / sqrt(mean_i ||h_i||^2) over the n rows "
              "(architectures), in [0, 1]; 0 when every architecture gives the same row, the paper's collapsed "
              "controller. *untrained* is the `random` setting's controller.", "",
              "| session | controller | hidden | max prob | untrained ctrl: hidden | untrained ctrl: max prob |",
              "|---|---|---|---|---|---|"]
    for a in analyses:
        ci, cr = a.collapse_index, a.collapse_index_random
        lines.append(f"| {a.session} | {a.controller} | {ci['hidden']:.4f} | {ci['max_prob']:.4f} | "
                     f"{cr['hidden']:.4f} | {cr['max_prob']:.4f} |")
    lines += ["", "## Fig. 2 summary", "",
              "Validation perplexity of the sampled architectures (finite values; diverged ones counted). "
              "*sampled by* is this session's controller on its own weights, or the reference the paper "
              "compares it with: a random session's samples on that session's own weights when one is in "
              "this report, else the untrained controller on this run's weights (labelled so).", "",
              "| session | controller | sampled by | median | q25 | q75 | min | max | diverged |",
              "|---|---|---|---|---|---|---|---|---|"]
    for a in analyses:
        assert a.reference is not None
        for which, s in a.fig2.items():
            who = "this controller" if which == "trained" else a.reference.label
            cells = [_fmt(s[k], 2) for k in ("median", "q25", "q75", "min", "max")]
            lines.append(f"| {a.session} | {a.controller} | {who} | " + " | ".join(cells) + f" | {s['nonfinite']} |")
    lines += ["", "## Cell shape and the embedding map", "",
              "Depth (longest path from node 0) and width (number of leaves) of the probe set's cells, median "
              "[quartiles], beside uniform sampling, where every controller starts; the embedding map's share of "
              "the variance on its first two principal components and its spread (the collapse index).", "",
              "| session | controller | depth | width | uniform depth | uniform width | derived cell | PC1 | PC2 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for a in analyses:
        s, e = a.cell_shape, a.embedding["trained"]
        d = s["derived"]
        lines.append(f"| {a.session} | {a.controller} | {_q(s['trained'], 'depth')} | {_q(s['trained'], 'width')} "
                     f"| {_q(s['uniform'], 'depth')} | {_q(s['uniform'], 'width')} | "
                     + (f"depth {d['depth']}, width {d['width']}" if d else "-")
                     + f" | {e['explained'][0]:.0%} | {e['explained'][1]:.0%} |")
    if summary.seeds > 1:
        lines += _md_seeds(summary)
    if summary.has_retrains:
        lines += _md_retrains(summary)
    if len(analyses) > 1 or summary.has_retrains:
        found = claims(summary)
        rules = [f"({c.key}) {c.rule}" for c in found]
        lines += ["", "## The paper's claims", "", "```", format_claims(found).rstrip(), "```", "",
                  "Rules: " + "; ".join(rules) + "."]
    lines += ["", "## These numbers and the dashboard's", ""] + _md_live(analyses)
    lines += ["", "## Figures", ""]
    for name in figures:
        lines += [f"![{CAPTIONS[name]}]({name}.png) ([SVG]({name}.svg))", ""]
    lines += ["table1.json holds these numbers unrounded; summary.json the intervals and the claims.", ""]
    return "\n".join(lines)


def _md_seeds(summary: Table1Summary) -> list[str]:
    columns = diagnostics.TABLE1_COLUMNS
    labels = [diagnostics.MEASURE_LABELS[summary.shown[c]] for c in columns]
    lines = ["", "## Table 1 over seeds", "",
             f"Mean ± {summary.confidence:.0%} interval over the runs of each controller (Student t over seeds; "
             "n: runs with a defined value).", "",
             "| controller | seeds | row | " + " | ".join(labels) + " | collapse (hidden) | Fig. 2 IQR |",
             "|---|---|---|" + "---|" * (len(labels) + 2)]
    for name, c in summary.controllers.items():
        cells = [c.spearman.get(summary.shown[col]) for col in columns]
        paper = diagnostics.PAPER_TABLE1.get(name, {})
        seeds = ", ".join(str(s) for s in c.seeds)
        lines.append(f"| {name} | {seeds} | ours | " + " | ".join(x.text(signed=True) if x else "-" for x in cells)
                     + f" | {c.collapse['hidden'].text(4)} | {c.fig2_iqr.text(1)} |")
        lines.append(f"| {name} | {seeds} | n | " + " | ".join(str(x.n) if x else "0" for x in cells) + " | | |")
        lines.append(f"| {name} | {seeds} | paper | " + " | ".join(_fmt(paper.get(col)) for col in columns) + " | | |")
    return lines


def _md_retrains(summary: Table1Summary) -> list[str]:
    """The final table: each retrained cell beside the search-phase ppl the search gave it."""
    lines = ["", "## Retrained cells", "",
             "ENAS's final step: each search's derived cell (the random run's: the best of the random controller's "
             "samples, i.e. random search with weight sharing) trained from scratch as a standalone model, every cell "
             "with the same settings and budget. *search-phase ppl*: the search's shared weights on the whole "
             "validation split at its end; *valid* and *test*: the retrained model's best validation check and those "
             "weights on the whole test split.", "",
             "| controller | seed | retrain session | cell | search-phase ppl | retrained valid ppl "
             "| retrained test ppl | best epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary.retrains:
        weights = f"{r.best_epoch} (averaged)" if r.averaged else str(r.best_epoch)
        lines.append(f"| {r.controller or '-'} | {r.run_seed} | {r.session} | `{r.arch}` | {_fmt(r.search_ppl, 2)} "
                     f"| {_fmt(r.valid_ppl, 2)} | {_fmt(r.test_ppl, 2)} | {weights} |")
    if summary.seeds > 1:
        lines += ["", f"Over seeds (mean ± {summary.confidence:.0%} interval; gap: random's test ppl minus this "
                      "controller's, paired by seed):", "",
                  "| controller | search-phase ppl | retrained valid ppl | retrained test ppl | gap vs random |",
                  "|---|---|---|---|---|"]
        for name, c in summary.controllers.items():
            if c.retrain_test.n:
                gap = summary.retrain_gaps.get(name)
                lines.append(f"| {name} | {c.search_ppl.text(2)} | {c.retrain_valid.text(2)} | "
                             f"{c.retrain_test.text(2)} | {gap.text(2, signed=True) if gap else '-'} |")
    verdict = retrain_verdict(summary)
    if verdict is not None:
        lines += ["", f"**{verdict}**"]
    return lines


def _md_live(analyses: Sequence[Analysis]) -> list[str]:
    """Say, per session, whether the dashboard showed numbers from this probe sample (it does not, in general)."""
    lines = []
    for a in analyses:
        live = a.live
        if live is None:
            lines.append(f"- {a.session}: the session log has no live probe for epoch {a.epoch}, so the dashboard "
                         "showed no Table 1 for it.")
            continue
        if live["same_sample"]:
            lines.append(f"- {a.session}: the dashboard's last probe of epoch {a.epoch} (controller step "
                         f"{live['step']}) drew the same {live['n']} architectures as this report.")
            continue
        shown = diagnostics.resolve_readings()
        values = ", ".join(f"{diagnostics.MEASURE_LABELS[m]} {_fmt(live['spearman'].get(m, {}).get('rho'))}"
                           for m in shown.values() if m in live["spearman"])
        lines.append(f"- {a.session}: **a different probe sample from the dashboard's.** At epoch {a.epoch} the "
                     f"dashboard shows the trainer's last live probe (controller step {live['step']}, "
                     f"{live['n']} architectures, {live['mode']} mode, {live['state']}), taken during the "
                     f"epoch; this report draws {a.n} fresh architectures (seed {a.seed}) from the end-of-epoch "
                     f"checkpoint ({a.probe_mode} mode) and scores them on {a.valid_batches} validation "
                     f"minibatch(es), so the numbers differ. The dashboard's values there: "
                     f"{values or 'none of the default readings were computed on that probe'}.")
    return lines


def _md_row(a: Analysis, row: str, cells: list[str]) -> str:
    return f"| {a.session} | {a.controller} | {row} | " + " | ".join(cells) + " |"


def _q(summary: dict | None, quantity: str) -> str:
    if not summary:
        return "-"
    q = summary[quantity]
    return f"{q['median']:g} [{q['q25']:g}-{q['q75']:g}]"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"
