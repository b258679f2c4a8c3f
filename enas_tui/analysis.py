"""Offline analysis of one checkpoint: the paper's Table 1, collapse indices and the figures' data.

``analyze_session`` rebuilds the supernet and the controller from an epoch checkpoint (weights
only), samples a probe set of n architectures with a seeded generator, reading the controller as
the session's ``train.probe_mode`` / ``train.probe_state`` say (derive mode and the "emit_last"
state by default, as the authors analysed it), and scores every one on the first
``valid_batches`` validation minibatches with the shared weights (state starting at zero), so
Table 1 gets its fourth column. Every Table 1 measure is computed (all readings); which reading
sits beside the paper's column is a display choice (diagnostics.resolve_readings).

References. Fig. 1 compares the trained controller with the *untrained* one, the controller the
``random`` setting would have used: built exactly as the trainer builds it (``torch.manual_seed
(seed)``, then the SuperNet, then the Controller: the supernet's initialisation consumes the
global RNG first). For a ``random`` session that is the checkpoint's own controller, and its probe
set (same generator seed) is the trained one's. Fig. 2 compares the trained controller's samples on
its run's weights with the random controller's samples on the *random run's* weights, as the paper
does; a single-session analysis has no random run, so its reference is the untrained controller's
samples on this run's weights and is labelled so (``Fig2Reference``); ``pair_fig2`` gives each
analysis the random session's own samples when one was analysed alongside it.

All numbers come from diagnostics.py (numpy/scipy), the same code the trainer's live probes use.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from . import cell_shape, checkpoints, diagnostics, embedding
from .config import PROBE_MODES, PROBE_STATES, Settings
from .controller import Controller
from .data import Corpus, DataError, batchify, load_corpus
from .events import Diagnostics, Probe, decode_event, translate_spearman
from .session_log import LogError, LogReader
from .search_space import Architecture
from .sessions import Session
from .supernet import SuperNet
from .trainer import pick_device

PAPER_ORDER: tuple[str, ...] = ("random", "supervised", "unsupervised")  # the rows of the paper's Table 1
UNTRAINED_REFERENCE = "untrained controller on this run's weights"
Progress = Callable[[str, int, int], None]  # (task, done, total)


class AnalysisError(ValueError):
    """Analysis parameters that cannot work (e.g. fewer than 3 architectures); one line for the user."""


@dataclass
class ProbeSet:
    """n architectures sampled from one controller, with what the figures need about each."""

    archs: list[str]
    max_probs: np.ndarray  # (n, D) probability of the most likely action per step (Fig. 1/4)
    hidden: np.ndarray  # (n, H) final controller hidden state (Fig. 3)
    ppl: np.ndarray  # (n,) validation perplexity on the shared weights (Fig. 2; inf if diverged)


@dataclass
class Fig2Reference:
    """Fig. 2's "random" curve for one analysis: whose samples, on whose weights."""

    label: str
    ppl: np.ndarray
    session: str | None = None  # the random session whose samples these are; None: this run's weights


@dataclass
class Analysis:
    """Table 1, collapse indices and the figures' data for one session's checkpoint."""

    session: str
    controller: str
    epoch: int
    n: int
    seed: int  # of the probe sample
    valid_batches: int
    checkpoint: str
    spearman: dict[str, dict[str, float | None]]  # by measure name (diagnostics.ALL_MEASURES)
    collapse_index: dict[str, float]
    collapse_index_random: dict[str, float]
    trained: ProbeSet
    random: ProbeSet = field(repr=False)  # the untrained controller on this run's weights
    run_seed: int = 0  # the session's training seed
    data: str | None = None  # the session's corpus (None: generated)
    probe_mode: str = "derive"
    probe_state: str = "emit_last"
    loss: dict[str, Any] = field(default_factory=dict)  # supervised_reduction, supervised_weight
    reference: Fig2Reference | None = field(default=None, repr=False)
    live: dict[str, Any] | None = None  # the dashboard's last probe at this epoch (live_probe)
    # The cell shape over the search up to this epoch, from the session log (cell_shape.history_from_log),
    # and the last derived cell: {"history": ShapeHistory.to_dict(), "derived": text form or None}.
    search: dict[str, Any] | None = field(default=None, repr=False)
    # The embedding map's numbers (``embedding_numbers``), kept as computed from the unrounded states.
    maps: dict[str, dict[str, Any]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.reference is None:
            self.reference = Fig2Reference(UNTRAINED_REFERENCE, self.random.ppl)
        if self.maps is None:
            self.maps = embedding_numbers(self.trained.hidden, self.random.hidden)

    @property
    def paper(self) -> dict[str, float] | None:
        """The paper's Table 1 row for this controller setting (keyed by column)."""
        return diagnostics.PAPER_TABLE1.get(self.controller)

    @property
    def fig2(self) -> dict[str, dict[str, Any]]:
        """Perplexity summaries: this controller's samples and Fig. 2's reference (``reference``)."""
        assert self.reference is not None
        return {"trained": diagnostics.ppl_summary(self.trained.ppl),
                "random": diagnostics.ppl_summary(self.reference.ppl)}

    @property
    def cell_shape(self) -> dict[str, Any]:
        """Depth and width quartiles of the trained and untrained probe sets, uniform sampling's
        (the reference every controller starts from) and the derived cell's (cell_shape.py)."""
        nodes = Architecture.parse(self.trained.archs[0]).num_nodes
        derived = (self.search or {}).get("derived")
        out: dict[str, Any] = {name: (s.to_dict() if (s := cell_shape.summarize(archs)) else None)
                               for name, archs in (("trained", self.trained.archs), ("untrained", self.random.archs))}
        out["uniform"] = cell_shape.uniform_reference(nodes).to_dict()
        out["derived"] = None
        if derived:
            depth, width = cell_shape.depth_width(Architecture.parse(derived))
            out["derived"] = {"arch": derived, "depth": depth, "width": width}
        return out

    @property
    def embedding(self) -> dict[str, dict[str, Any]]:
        """The embedding map's numbers (``embedding_numbers``) for the trained and untrained probe sets."""
        assert self.maps is not None
        return self.maps

    def row(self, shown: dict[str, str]) -> dict[str, dict[str, float | None]]:
        """Table 1 by column, each column's measure chosen by ``shown`` (diagnostics.resolve_readings)."""
        return {column: self.spearman.get(measure, {"rho": None, "p": None}) for column, measure in shown.items()}

    def to_dict(self, figures: bool = True) -> dict[str, Any]:
        """JSON-able (no NaN/inf: a diverged perplexity is null); ``figures`` adds the arrays."""
        assert self.reference is not None
        out: dict[str, Any] = {
            "session": self.session, "controller": self.controller, "epoch": self.epoch, "n": self.n,
            "seed": self.seed, "run_seed": self.run_seed, "data": self.data,
            "valid_batches": self.valid_batches, "checkpoint": self.checkpoint,
            "probe": {"mode": self.probe_mode, "state": self.probe_state},
            "loss": dict(self.loss),
            "spearman": {k: dict(v) for k, v in self.spearman.items()},
            "collapse_index": dict(self.collapse_index),
            "collapse_index_random": dict(self.collapse_index_random),
            "paper": dict(self.paper) if self.paper else None,
            "fig2": self.fig2,
            "fig2_reference": {"label": self.reference.label, "session": self.reference.session},
            "live": self.live,
            "cell_shape": self.cell_shape,
            "embedding": self.embedding,
        }
        if figures:
            out["figures"] = {
                "archs": list(self.trained.archs), "archs_random": list(self.random.archs),
                "max_probs": _rounded(self.trained.max_probs), "max_probs_random": _rounded(self.random.max_probs),
                "hidden": _rounded(self.trained.hidden), "hidden_random": _rounded(self.random.hidden),
                "ppl": _finite_list(self.trained.ppl), "ppl_random": _finite_list(self.random.ppl),
                "ppl_reference": _finite_list(self.reference.ppl),
                "cell_shape_search": (self.search or {}).get("history"),
            }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Analysis":
        """Rebuild from ``to_dict()`` (with figures), e.g. to redraw a report without torch work.

        Output of earlier versions (spearman keyed ``common_activations`` / ``ged`` for the aligned
        measures, no probe or reference fields) is read with its keys translated.
        """
        fig = data["figures"]

        def probe(suffix: str) -> ProbeSet:
            return ProbeSet(archs=list(fig["archs" + suffix]),
                            max_probs=np.asarray(fig["max_probs" + suffix], dtype=np.float64),
                            hidden=np.asarray(fig["hidden" + suffix], dtype=np.float64),
                            ppl=_ppl_array(fig["ppl" + suffix]))

        random = probe("_random")
        ref = data.get("fig2_reference") or {}
        reference = Fig2Reference(ref.get("label", UNTRAINED_REFERENCE),
                                  _ppl_array(fig.get("ppl_reference", fig["ppl_random"])), ref.get("session"))
        probe_info = data.get("probe") or {"mode": "train", "state": "emit_last"}  # before probes recorded it
        return cls(session=data["session"], controller=data["controller"], epoch=data["epoch"], n=data["n"],
                   seed=data["seed"], valid_batches=data["valid_batches"], checkpoint=data["checkpoint"],
                   spearman=translate_spearman(data["spearman"]), collapse_index=data["collapse_index"],
                   collapse_index_random=data["collapse_index_random"], trained=probe(""), random=random,
                   run_seed=data.get("run_seed", 0), data=data.get("data"),
                   probe_mode=probe_info["mode"], probe_state=probe_info["state"],
                   loss=dict(data.get("loss") or {}), reference=reference, live=data.get("live"),
                   search={"history": fig.get("cell_shape_search"),
                           "derived": ((data.get("cell_shape") or {}).get("derived") or {}).get("arch")},
                   maps=data.get("embedding"))


# -- computing --------------------------------------------------------------------------------
def analyze_session(session: Session, epoch: int | None = None, n: int = 100, seed: int = 0,
                    valid_batches: int = 5, corpus: Corpus | None = None, device: str = "cpu",
                    probe_mode: str | None = None, probe_state: str | None = None,
                    progress: Progress | None = None) -> Analysis:
    """Analyse the checkpoint at the end of ``epoch`` (default: the latest epoch checkpoint).

    ``corpus`` defaults to the session's own data (``settings.data``; None is the generated corpus);
    pass it when the run used a corpus held in memory (tests, ``paper``). ``probe_mode`` and
    ``probe_state`` default to the session's settings. ``progress(task, done, total)`` hears about
    each scored architecture and each measure (the CLI draws it).
    """
    if n < 3:
        raise AnalysisError(f"n must be at least 3 architectures (Spearman over pairs), got {n}")
    if valid_batches < 1:
        raise AnalysisError(f"valid_batches must be at least 1, got {valid_batches}")
    if session.meta().get("kind") == "retrain":  # a folder that is not a session fails here, with SessionError
        raise AnalysisError(f"session {session.id} is a retrain; analyze and report read search sessions")
    path, state = checkpoints.load_epoch(session, epoch)
    settings = Settings.from_dict(state["settings"])
    mode = probe_mode or settings.train.probe_mode
    read_state = probe_state or settings.train.probe_state
    if mode not in PROBE_MODES or read_state not in PROBE_STATES:
        raise AnalysisError(f"probe mode must be one of {', '.join(PROBE_MODES)} and state one of "
                            f"{', '.join(PROBE_STATES)}, got {mode!r}, {read_state!r}")
    corpus = corpus if corpus is not None else load_corpus(settings.data)
    _check_vocab(session, state, corpus)
    torch_device = pick_device(device)
    net, ctrl, random_ctrl = build_models(settings, corpus.vocab_size)
    net.load_state_dict(state["supernet"])
    ctrl.load_state_dict(state["controller"])
    net, ctrl, random_ctrl = net.to(torch_device), ctrl.to(torch_device), random_ctrl.to(torch_device)
    valid = batchify(corpus.valid, settings.model.eval_batch_size).to(torch_device)
    checkpoint_epoch = int(path.stem.split("-")[1])

    def probe(controller: Controller, who: str, measures: Sequence[str]) -> tuple[ProbeSet, diagnostics.ProbeAnalysis]:
        return probe_set(controller, net, valid, settings.model.bptt, n, seed, valid_batches, torch_device,
                         mode=mode, state=read_state, measures=measures, progress=progress, who=who)

    trained, result = probe(ctrl, f"{settings.controller} controller", diagnostics.STRUCTURAL_MEASURES)
    # a ``random`` session's controller is the untrained one: same draws, so reuse them
    if _same_weights(ctrl, random_ctrl):
        random, random_result = trained, result
    else:  # the reference needs no Table 1
        random, random_result = probe(random_ctrl, "untrained controller", ())
    return Analysis(
        session=session.id, controller=settings.controller, epoch=checkpoint_epoch, n=n,
        seed=seed, valid_batches=valid_batches, checkpoint=path.name,
        spearman=result.spearman, collapse_index=result.collapse_index,
        collapse_index_random=random_result.collapse_index, trained=trained, random=random,
        run_seed=settings.seed, data=settings.data, probe_mode=mode, probe_state=read_state,
        loss={"supervised_reduction": settings.buffer.supervised_reduction,
              "supervised_weight": settings.buffer.supervised_weight},
        live=live_probe(session, checkpoint_epoch, trained.archs),
        search=search_shape(session, checkpoint_epoch),
    )


def embedding_numbers(trained: np.ndarray, untrained: np.ndarray) -> dict[str, dict[str, Any]]:
    """The embedding map's numbers (embedding.py): each principal component's share of the variance
    and the spread, for the trained and the untrained controller's final hidden states."""
    out = {}
    for name, hidden in (("trained", trained), ("untrained", untrained)):
        p = embedding.project(hidden)
        out[name] = {"explained": [float(v) for v in p.explained], "spread": p.spread}
    return out


def search_shape(session: Session, epoch: int) -> dict[str, Any] | None:
    """The cell shape over the search up to ``epoch`` and the last derived cell, from the log
    (None when the log cannot be read: the analysis of the checkpoint stands without it)."""
    try:
        history, derived = cell_shape.history_from_log(session.log_path, until_epoch=epoch)
    except LogError:
        return None
    return {"history": history.to_dict(), "derived": derived}


def build_models(settings: Settings, vocab_size: int) -> tuple[SuperNet, Controller, Controller]:
    """SuperNet, a controller to load weights into, and the ``random`` setting's untrained controller.

    The trainer seeds the global RNG, then builds the SuperNet, then the Controller; repeating
    that order reproduces its initial controller bit for bit. The global RNG is restored after.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = SuperNet(vocab_size, settings.model)
        random_ctrl = Controller(settings.model.num_nodes, settings.ctrl)
        ctrl = Controller(settings.model.num_nodes, settings.ctrl)
    return net, ctrl, random_ctrl


@torch.no_grad()
def probe_set(ctrl: Controller, net: SuperNet, valid: torch.Tensor, bptt: int, n: int, seed: int,
              valid_batches: int, device: torch.device, mode: str = "derive", state: str = "emit_last",
              measures: Sequence[str] = diagnostics.STRUCTURAL_MEASURES, progress: Progress | None = None,
              who: str = "controller") -> tuple[ProbeSet, diagnostics.ProbeAnalysis]:
    """Sample n architectures with a generator seeded ``seed``, score each, run the diagnostics."""
    ctrl.eval()
    out = ctrl.sample(n, generator=torch.Generator(device).manual_seed(seed), mode=mode, state=state)
    archs = out.architectures()
    probs = out.probs().cpu().numpy()
    hidden = out.hidden.cpu().numpy()
    ppl = np.empty(n)
    for i, arch in enumerate(archs):
        ppl[i] = net.perplexity(arch, valid, bptt, max_batches=valid_batches)
        if progress is not None:
            progress(f"scoring the {who}'s architectures", i + 1, n)
    task = f"similarity measures ({who})"
    if progress is not None and measures:
        progress(task, 0, 1)
    result = diagnostics.analyze_probe(archs, probs, hidden, ctrl.sizes, ppl=ppl, measures=measures)
    if progress is not None and measures:
        progress(task, 1, 1)
    texts = [a.to_text() for a in archs]
    return ProbeSet(archs=texts, max_probs=result.max_probs, hidden=hidden, ppl=ppl), result


def pair_fig2(analyses: Sequence[Analysis]) -> list[Analysis]:
    """Copies whose Fig. 2 reference is a random session's own samples on its own weights.

    A trained session is paired with the analysed random session of the same training seed and
    data, else with the first random session on the same data; without one it keeps the untrained
    controller on its own weights (labelled so). A random session is its own reference.
    """
    randoms = [a for a in analyses if a.controller == "random"]
    out = []
    for a in analyses:
        same_data = [r for r in randoms if r.data == a.data]
        match = next((r for r in same_data if r.run_seed == a.run_seed), same_data[0] if same_data else None)
        if match is None:
            out.append(a)
            continue
        label = "this random session (own weights)" if match is a else f"random session {match.session} (own weights)"
        out.append(replace(a, reference=Fig2Reference(label, match.trained.ppl, match.session)))
    return out


def live_probe(session: Session, epoch: int, archs: Sequence[str]) -> dict[str, Any] | None:
    """The dashboard's view of ``epoch``: the trainer's last probe of it and its diagnostics.

    ``same_sample`` says whether that probe drew the architectures this analysis drew (it does not
    in general: the trainer's probe generator and the analysis's seed differ, and the controller
    may have changed after the probe). None when the log has no probe for the epoch or is unreadable.
    """
    last_probe, found = None, None
    try:
        with LogReader(session.log_path) as reader:
            while records := reader.read_records(max_records=5000):
                for record in records:
                    if record.payload.startswith(b'{"type":"probe"'):
                        last_probe = record
                    elif record.payload.startswith(b'{"type":"diagnostics"'):
                        event = decode_event(record.payload)
                        if isinstance(event, Diagnostics) and event.epoch == epoch:
                            found = (last_probe, event)
    except (LogError, OSError, ValueError):
        return None
    if found is None or found[0] is None:
        return None
    probe, diag = decode_event(found[0].payload), found[1]
    if not isinstance(probe, Probe) or (probe.epoch, probe.step) != (diag.epoch, diag.step):
        return None
    return {"epoch": diag.epoch, "step": diag.step, "n": diag.n, "mode": probe.mode, "state": probe.state,
            "same_sample": list(probe.archs) == list(archs),
            "spearman": {k: dict(v) for k, v in diag.spearman.items()},
            "collapse_index": dict(diag.collapse_index) if diag.collapse == "scale_free" else None}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    other = b.state_dict()
    return all(torch.equal(value, other[key]) for key, value in a.state_dict().items())


def _check_vocab(session: Session, state: dict[str, Any], corpus: Corpus) -> None:
    rows = int(state["supernet"]["encoder.weight"].shape[0])
    if rows != corpus.vocab_size:
        raise DataError(f"session {session.id} was trained on a vocabulary of {rows} words but "
                        f"{corpus.source} has {corpus.vocab_size}; analyse it with the data it was trained on")


# -- formatting -------------------------------------------------------------------------------
def format_table(analysis: Analysis, readings: dict[str, str | None] | None = None) -> str:
    """Table 1 (ours, p-value, the paper's), other readings, collapse indices, Fig. 2, as text."""
    return format_tables([analysis], readings)


def header_lines(analyses: Sequence[Analysis]) -> list[str]:
    """How the numbers were taken: probe mode and state, and the supervised loss's settings."""
    lines = []
    for a in analyses:
        loss = a.loss
        sup = (f"; supervised loss: {loss.get('supervised_reduction', '?')} x {loss.get('supervised_weight', '?')}"
               if a.controller == "supervised" else "")
        lines.append(f"{a.controller}: session {a.session} ({a.checkpoint}), run seed {a.run_seed}; probe: "
                     f"{a.n} architectures (seed {a.seed}), mode {a.probe_mode}, state {a.probe_state}, "
                     f"{a.valid_batches} validation minibatch(es){sup}")
    return lines


def format_tables(analyses: Sequence[Analysis], readings: dict[str, str | None] | None = None) -> str:
    """The same for several analyses, one block of rows each (the ``paper`` layout)."""
    from rich.console import Console
    from rich.table import Table

    shown = diagnostics.resolve_readings(readings)
    columns = list(diagnostics.TABLE1_COLUMNS)
    table1 = Table(title="Table 1: Spearman rho, L2 distance of final hidden states vs each measure "
                         f"(readings: {reading_names(shown)})", title_justify="left", header_style="bold")
    for column in ("controller", "", *(diagnostics.MEASURE_LABELS[shown[c]] for c in columns)):
        table1.add_column(column, justify="left" if column in ("controller", "") else "right")
    for a in analyses:
        paper, row = a.paper or {}, a.row(shown)
        table1.add_row(a.controller, f"ours (epoch {a.epoch}, n {a.n})", *(_num(row[c]["rho"]) for c in columns))
        table1.add_row("", "p", *(_p(row[c]["p"]) for c in columns))
        table1.add_row("", "paper", *(_num(paper.get(c)) for c in columns), end_section=True)

    others = diagnostics.other_measures(shown)
    apart = Table(title="Other readings (not the paper's column definitions; not comparable with its values)",
                  title_justify="left", header_style="bold")
    for column in ("controller", "", *(diagnostics.MEASURE_LABELS[m] for m in others)):
        apart.add_column(column, justify="left" if column in ("controller", "") else "right")
    for a in analyses:
        apart.add_row(a.controller, "ours", *(_num(a.spearman.get(m, {}).get("rho")) for m in others))
        apart.add_row("", "p", *(_p(a.spearman.get(m, {}).get("p")) for m in others), end_section=True)

    collapse = Table(title="Collapse index (scale-free: RMS spread of the rows over their RMS norm; "
                           "0 = every architecture gives the same row)", title_justify="left", header_style="bold")
    for column in ("controller", "hidden", "max prob", "untrained ctrl: hidden", "untrained ctrl: max prob"):
        collapse.add_column(column, justify="left" if column == "controller" else "right")
    for a in analyses:
        collapse.add_row(a.controller, _num(a.collapse_index["hidden"], 4), _num(a.collapse_index["max_prob"], 4),
                         _num(a.collapse_index_random["hidden"], 4), _num(a.collapse_index_random["max_prob"], 4))

    fig2 = Table(title="Fig. 2: validation perplexity of sampled architectures, each on its run's shared weights",
                 title_justify="left", header_style="bold")
    for column in ("controller", "median", "IQR", "reference", "ref. median", "ref. IQR", "diverged"):
        fig2.add_column(column, justify="left" if column in ("controller", "reference") else "right")
    for a in analyses:
        s = a.fig2
        assert a.reference is not None
        fig2.add_row(a.controller, _num(s["trained"]["median"], 1), _iqr(s["trained"]), a.reference.label,
                     _num(s["random"]["median"], 1), _iqr(s["random"]),
                     f"{s['trained']['nonfinite']} / {s['random']['nonfinite']}")

    shape = Table(title="Cell shape (Shu et al.: wide and shallow?): median [quartiles] of depth (longest path "
                        "from node 0) and width (leaves)", title_justify="left", header_style="bold")
    for column in ("controller", "depth", "width", "untrained: depth", "untrained: width", "uniform: depth",
                   "uniform: width", "derived cell"):
        shape.add_column(column, justify="left" if column == "controller" else "right")
    for a in analyses:
        s = a.cell_shape
        derived = s["derived"]
        shape.add_row(a.controller, *(_quartiles(s[who], q) for who in ("trained", "untrained", "uniform")
                                      for q in ("depth", "width")),
                      f"depth {derived['depth']}, width {derived['width']}" if derived else "-")

    maps = Table(title="Embedding map: PCA of the final hidden states (share of variance on PC1, PC2; spread = "
                       "collapse index)", title_justify="left", header_style="bold")
    for column in ("controller", "PC1", "PC2", "spread", "untrained: PC1", "untrained: PC2", "untrained: spread"):
        maps.add_column(column, justify="left" if column == "controller" else "right")
    for a in analyses:
        e = a.embedding
        maps.add_row(a.controller, *(cell for who in ("trained", "untrained") for cell in (
            f"{e[who]['explained'][0]:.0%}", f"{e[who]['explained'][1]:.0%}", _num(e[who]["spread"], 4))))

    console = Console(file=io.StringIO(), width=130, color_system=None, highlight=False)
    for part in (table1, apart, collapse, fig2, shape, maps):
        console.print(part)
    for line in header_lines(analyses):
        console.print(line, soft_wrap=True)
    return console.file.getvalue()


def reading_names(shown: dict[str, str]) -> str:
    """e.g. ``common activations: paper, GED: paper``."""
    parts = [f"{diagnostics.COLUMN_LABELS[c].lstrip('# ')}: {shown[c][len(c) + 1:]}" for c in diagnostics.READINGS]
    return ", ".join(parts)


def to_csv(analysis: Analysis, readings: dict[str, str | None] | None = None) -> str:
    """One row per measure: measure,column,shown,rho,p,paper_rho (empty where undefined).

    ``shown`` is 1 for the measure in the column's chosen reading; the paper's value is given on
    that row only, since the other readings measure something else.
    """
    shown = diagnostics.resolve_readings(readings)
    column_of = {m: c for c in diagnostics.TABLE1_COLUMNS for m in _column_measures(c)}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["measure", "column", "shown", "rho", "p", "paper_rho"])
    paper = analysis.paper or {}
    for measure in diagnostics.ALL_MEASURES:
        values = analysis.spearman.get(measure, {"rho": None, "p": None})
        column = column_of[measure]
        is_shown = shown[column] == measure
        writer.writerow([measure, column, int(is_shown), _csv(values["rho"]), _csv(values["p"]),
                         _csv(paper.get(column) if is_shown else None)])
    return buffer.getvalue()


def _column_measures(column: str) -> list[str]:
    readings = diagnostics.READINGS.get(column)
    return [column] if readings is None else [diagnostics.column_measure(column, r) for r in readings]


# -- helpers ----------------------------------------------------------------------------------
def _quartiles(summary: dict[str, Any] | None, quantity: str) -> str:
    if not summary:
        return "-"
    q = summary[quantity]
    return f"{q['median']:g} [{q['q25']:g}-{q['q75']:g}]"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def _iqr(summary: dict[str, Any]) -> str:
    if summary["q25"] is None:
        return "-"
    return f"{summary['q25']:.1f}-{summary['q75']:.1f}"


def _csv(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _rounded(values: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _finite_list(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _ppl_array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.inf if p is None else p for p in values], dtype=np.float64)

