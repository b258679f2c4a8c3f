"""Offline analysis of one checkpoint: the paper's Table 1, collapse indices and the figures' data.

``analyze_session`` rebuilds the supernet and the controller from an epoch checkpoint (weights
only), samples a probe set of n architectures with a seeded generator, and scores every one on the
first ``valid_batches`` validation minibatches with the shared weights (state starting at zero),
so Table 1 gets its fourth column. Fig. 1 and Fig. 2 need a reference: the *random* controller,
which is the controller the ``random`` setting would have used, i.e. the untrained one built exactly
as the trainer builds it (``torch.manual_seed(seed)``, then the SuperNet, then the Controller: the
supernet's initialisation consumes the global RNG first). For a ``random`` session it is therefore
the checkpoint's own controller, and its probe set (same generator seed) is the trained one's.

All numbers come from diagnostics.py (numpy/scipy), the same code the trainer's live probes use.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import checkpoints, diagnostics
from .config import Settings
from .controller import Controller
from .data import Corpus, DataError, batchify, load_corpus
from .sessions import Session
from .supernet import SuperNet
from .trainer import pick_device

MEASURE_LABELS: dict[str, str] = {
    "common_activations": "# common activations",
    "common_connections": "# common connections",
    "ged": "GED",
    "abs_perf_diff": "abs. perf. diff",
}
PAPER_ORDER: tuple[str, ...] = ("random", "supervised", "unsupervised")  # the rows of the paper's Table 1


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
class Analysis:
    """Table 1, collapse indices and the figures' data for one session's checkpoint."""

    session: str
    controller: str
    epoch: int
    n: int
    seed: int
    valid_batches: int
    checkpoint: str
    spearman: dict[str, dict[str, float | None]]
    collapse_index: dict[str, float]
    collapse_index_random: dict[str, float]
    trained: ProbeSet
    random: ProbeSet = field(repr=False)

    @property
    def paper(self) -> dict[str, float] | None:
        """The paper's Table 1 row for this controller setting."""
        return diagnostics.PAPER_TABLE1.get(self.controller)

    @property
    def fig2(self) -> dict[str, dict[str, Any]]:
        return {"trained": diagnostics.ppl_summary(self.trained.ppl),
                "random": diagnostics.ppl_summary(self.random.ppl)}

    def to_dict(self, figures: bool = True) -> dict[str, Any]:
        """JSON-able (no NaN/inf: a diverged perplexity is null); ``figures`` adds the arrays."""
        out: dict[str, Any] = {
            "session": self.session, "controller": self.controller, "epoch": self.epoch, "n": self.n,
            "seed": self.seed, "valid_batches": self.valid_batches, "checkpoint": self.checkpoint,
            "spearman": {k: dict(v) for k, v in self.spearman.items()},
            "collapse_index": dict(self.collapse_index),
            "collapse_index_random": dict(self.collapse_index_random),
            "paper": dict(self.paper) if self.paper else None,
            "fig2": self.fig2,
        }
        if figures:
            out["figures"] = {
                "archs": list(self.trained.archs), "archs_random": list(self.random.archs),
                "max_probs": _rounded(self.trained.max_probs), "max_probs_random": _rounded(self.random.max_probs),
                "hidden": _rounded(self.trained.hidden), "hidden_random": _rounded(self.random.hidden),
                "ppl": _finite_list(self.trained.ppl), "ppl_random": _finite_list(self.random.ppl),
            }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Analysis":
        """Rebuild from ``to_dict()`` (with figures), e.g. to redraw a report without torch work."""
        fig = data["figures"]

        def probe(suffix: str) -> ProbeSet:
            return ProbeSet(archs=list(fig["archs" + suffix]),
                            max_probs=np.asarray(fig["max_probs" + suffix], dtype=np.float64),
                            hidden=np.asarray(fig["hidden" + suffix], dtype=np.float64),
                            ppl=np.array([math.inf if p is None else p for p in fig["ppl" + suffix]]))

        return cls(session=data["session"], controller=data["controller"], epoch=data["epoch"], n=data["n"],
                   seed=data["seed"], valid_batches=data["valid_batches"], checkpoint=data["checkpoint"],
                   spearman=data["spearman"], collapse_index=data["collapse_index"],
                   collapse_index_random=data["collapse_index_random"],
                   trained=probe(""), random=probe("_random"))


# -- computing --------------------------------------------------------------------------------
def analyze_session(session: Session, epoch: int | None = None, n: int = 100, seed: int = 0,
                    valid_batches: int = 5, corpus: Corpus | None = None, device: str = "cpu") -> Analysis:
    """Analyse the checkpoint at the end of ``epoch`` (default: the latest epoch checkpoint).

    ``corpus`` defaults to the session's own data (``settings.data``; None is the generated corpus);
    pass it when the run used a corpus held in memory (tests, ``paper``).
    """
    if n < 3:
        raise AnalysisError(f"n must be at least 3 architectures (Spearman over pairs), got {n}")
    if valid_batches < 1:
        raise AnalysisError(f"valid_batches must be at least 1, got {valid_batches}")
    if session.meta().get("kind") == "retrain":  # a folder that is not a session fails here, with SessionError
        raise AnalysisError(f"session {session.id} is a retrain; analyze and report read search sessions")
    path, state = checkpoints.load_epoch(session, epoch)
    settings = Settings.from_dict(state["settings"])
    corpus = corpus if corpus is not None else load_corpus(settings.data)
    _check_vocab(session, state, corpus)
    torch_device = pick_device(device)
    net, ctrl, random_ctrl = build_models(settings, corpus.vocab_size)
    net.load_state_dict(state["supernet"])
    ctrl.load_state_dict(state["controller"])
    net, ctrl, random_ctrl = net.to(torch_device), ctrl.to(torch_device), random_ctrl.to(torch_device)
    valid = batchify(corpus.valid, settings.model.eval_batch_size).to(torch_device)

    def probe(controller: Controller) -> tuple[ProbeSet, diagnostics.ProbeAnalysis]:
        return probe_set(controller, net, valid, settings.model.bptt, n, seed, valid_batches, torch_device)

    trained, result = probe(ctrl)
    # a ``random`` session's controller is the untrained one: same draws, so reuse them
    random, random_result = (trained, result) if _same_weights(ctrl, random_ctrl) else probe(random_ctrl)
    return Analysis(
        session=session.id, controller=settings.controller, epoch=int(path.stem.split("-")[1]), n=n,
        seed=seed, valid_batches=valid_batches, checkpoint=path.name,
        spearman=result.spearman, collapse_index=result.collapse_index,
        collapse_index_random=random_result.collapse_index, trained=trained, random=random,
    )


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
              valid_batches: int, device: torch.device) -> tuple[ProbeSet, diagnostics.ProbeAnalysis]:
    """Sample n architectures with a generator seeded ``seed``, score each, run the diagnostics."""
    ctrl.eval()
    out = ctrl.sample(n, generator=torch.Generator(device).manual_seed(seed))
    archs = out.architectures()
    probs = out.probs().cpu().numpy()
    hidden = out.hidden.cpu().numpy()
    ppl = np.array([net.perplexity(a, valid, bptt, max_batches=valid_batches) for a in archs])
    result = diagnostics.analyze_probe(archs, probs, hidden, ctrl.sizes, ppl=ppl)
    texts = [a.to_text() for a in archs]
    return ProbeSet(archs=texts, max_probs=result.max_probs, hidden=hidden, ppl=ppl), result


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    other = b.state_dict()
    return all(torch.equal(value, other[key]) for key, value in a.state_dict().items())


def _check_vocab(session: Session, state: dict[str, Any], corpus: Corpus) -> None:
    rows = int(state["supernet"]["encoder.weight"].shape[0])
    if rows != corpus.vocab_size:
        raise DataError(f"session {session.id} was trained on a vocabulary of {rows} words but "
                        f"{corpus.source} has {corpus.vocab_size}; analyse it with the data it was trained on")


# -- formatting -------------------------------------------------------------------------------
def format_table(analysis: Analysis) -> str:
    """Table 1 (ours, p-value, the paper's), collapse indices and the Fig. 2 summary, as text."""
    return format_tables([analysis])


def format_tables(analyses: list[Analysis]) -> str:
    """The same for several analyses, one block of rows each (the ``paper`` layout)."""
    from rich.console import Console
    from rich.table import Table

    measures = list(diagnostics.TABLE1_COLUMNS)
    table1 = Table(title="Table 1: Spearman rho, L2 distance of final hidden states vs each measure",
                   title_justify="left", header_style="bold")
    for column in ("controller", "", *(MEASURE_LABELS[m] for m in measures)):
        table1.add_column(column, justify="left" if column in ("controller", "") else "right")
    for a in analyses:
        paper = a.paper or {}
        table1.add_row(a.controller, f"ours (epoch {a.epoch}, n {a.n})",
                       *(_num(a.spearman[m]["rho"]) for m in measures))
        table1.add_row("", "p", *(_p(a.spearman[m]["p"]) for m in measures))
        table1.add_row("", "paper", *(_num(paper.get(m)) for m in measures), end_section=True)

    collapse = Table(title="Collapse index (mean across-architecture std; near 0 = collapsed)",
                     title_justify="left", header_style="bold")
    for column in ("controller", "hidden", "max prob", "random ctrl: hidden", "random ctrl: max prob"):
        collapse.add_column(column, justify="left" if column == "controller" else "right")
    for a in analyses:
        collapse.add_row(a.controller, _num(a.collapse_index["hidden"], 4), _num(a.collapse_index["max_prob"], 4),
                         _num(a.collapse_index_random["hidden"], 4), _num(a.collapse_index_random["max_prob"], 4))

    fig2 = Table(title="Fig. 2: validation perplexity of sampled architectures (shared weights)",
                 title_justify="left", header_style="bold")
    for column in ("controller", "trained median", "trained IQR", "random median", "random IQR", "diverged"):
        fig2.add_column(column, justify="left" if column == "controller" else "right")
    for a in analyses:
        s = a.fig2
        fig2.add_row(a.controller, _num(s["trained"]["median"], 1), _iqr(s["trained"]),
                     _num(s["random"]["median"], 1), _iqr(s["random"]),
                     f"{s['trained']['nonfinite']} / {s['random']['nonfinite']}")

    console = Console(file=io.StringIO(), width=130, color_system=None, highlight=False)
    for part in (table1, collapse, fig2):
        console.print(part)
    sessions = ", ".join(f"{a.controller}: {a.session} ({a.checkpoint})" for a in analyses)
    console.print(f"sessions: {sessions}", soft_wrap=True)
    return console.file.getvalue()


def to_csv(analysis: Analysis) -> str:
    """One row per Table 1 measure: measure,rho,p,paper_rho (empty where undefined)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["measure", "rho", "p", "paper_rho"])
    paper = analysis.paper or {}
    for measure in diagnostics.TABLE1_COLUMNS:
        values = analysis.spearman[measure]
        writer.writerow([measure, _csv(values["rho"]), _csv(values["p"]), _csv(paper.get(measure))])
    return buffer.getvalue()


# -- helpers ----------------------------------------------------------------------------------
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
