"""Does the controller learn within a preset's budget? Fig. 1's per-step gap, trained vs untrained.

    python benchmarks/controller_learning.py [--preset cpu] [--data DIR | --real-ptb] [--seed 0]
        [--seeds 3] [--controllers unsupervised,supervised] [--epochs N] [--set k=v ...] [--n 100]
        [--score-batches 2] [--json]

For each seed and controller setting it trains a session in this process (sessions in a temporary
folder unless ``--sessions-dir``), then reads the final checkpoint as ``enas-tui paper`` does for
claim (a): n probe architectures sampled in derive mode with a generator seeded by the run's seed,
and per decision step the mean probability of the most likely action, for the trained controller
and for the untrained one (the controller the ``random`` setting keeps all run long, rebuilt from
the seed exactly as the trainer builds it; Fig. 1 does not depend on the shared weights, so no
random run is trained). It prints both curves, the gap, the number of steps at which the trained
controller is above, claim (a) with the rule of ``enas_tui/replication.py``, and what else the
run says about whether it learnt rather than drifted:

- entropy: the summed entropy of the 23 training-mode distributions (what the trainer logs), at
  the first and last controller step of the run and of the untrained controller;
- samples' perplexity: the median validation perplexity (``--score-batches`` minibatches) of the
  trained and the untrained controller's probe architectures, both on the trained run's shared
  weights: a controller that learnt from its reward samples better cells than an untrained one,
  one that only drifted under noise does not;
- the derived cell's and the greedy cell's validation perplexity (from the log) and the wall time.

``--real-ptb`` builds the split the tests use (tests/conftest.py ``real_ptb_dir``) from
``$ENAS_TUI_SHARED/data/ptb``: train = ptb.valid.txt, valid = the first half of ptb.test.txt's
lines, test = the second half. Without ``--data`` or ``--real-ptb`` the generated corpus is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from enas_tui import config, diagnostics  # noqa: E402
from enas_tui.analysis import build_models  # noqa: E402
from enas_tui.checkpoints import load_epoch  # noqa: E402
from enas_tui.controller import Controller  # noqa: E402
from enas_tui.data import Corpus, batchify, load_corpus  # noqa: E402
from enas_tui.events import ControllerStep, Derived, EpochEnd, Validation  # noqa: E402
from enas_tui.replication import SeedResult, aggregate, claims  # noqa: E402
from enas_tui.session_log import read_events  # noqa: E402
from enas_tui.sessions import Session, create_session  # noqa: E402
from enas_tui.supernet import SuperNet  # noqa: E402
from enas_tui.trainer import new_run  # noqa: E402


def real_ptb_split(dest: Path) -> Path:
    """The tests' real-PTB folder: train = ptb.valid.txt, valid/test = halves of ptb.test.txt."""
    shared = Path(os.environ.get("ENAS_TUI_SHARED") or Path(__file__).resolve().parents[2] / "shared")
    ptb = shared / "data" / "ptb"
    if not (ptb / "ptb.valid.txt").is_file() or not (ptb / "ptb.test.txt").is_file():
        raise SystemExit(f"error: {ptb} lacks ptb.valid.txt or ptb.test.txt (set ENAS_TUI_SHARED)")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ptb / "ptb.valid.txt", dest / "ptb.train.txt")
    lines = (ptb / "ptb.test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    half = len(lines) // 2
    (dest / "ptb.valid.txt").write_text("".join(lines[:half]), encoding="utf-8")
    (dest / "ptb.test.txt").write_text("".join(lines[half:]), encoding="utf-8")
    return dest


def train(settings: config.Settings, corpus: Corpus, root: Path) -> tuple[Session, float]:
    """One run to its last epoch in this process; (session, wall seconds)."""
    session = create_session(root, settings.controller)
    started = time.perf_counter()
    status = new_run(settings, session, corpus, [], command=["benchmarks/controller_learning.py"]).run()
    if status != "finished":
        raise SystemExit(f"error: the {settings.controller} run (session {session.id}) ended {status}")
    return session, time.perf_counter() - started


@torch.no_grad()
def read_controller(ctrl: Controller, net: SuperNet, valid: torch.Tensor, bptt: int, n: int, seed: int,
                    score_batches: int) -> dict[str, Any]:
    """Per-step mean top-action probability (derive mode, as ``analyze``), training-mode entropy and
    the median perplexity of n sampled architectures on ``net``."""
    ctrl.eval()
    out = ctrl.sample(n, generator=torch.Generator().manual_seed(seed), mode="derive")
    max_probs = diagnostics.max_action_probs(out.probs().numpy(), ctrl.sizes).mean(axis=0)
    entropy = float(ctrl.sample(n, generator=torch.Generator().manual_seed(seed)).entropies.sum(dim=1).mean())
    ppl = [net.perplexity(arch, valid, bptt, max_batches=score_batches) for arch in out.architectures()]
    return {"max_probs": max_probs.tolist(), "entropy": entropy, "median_ppl": float(np.nanmedian(ppl))}


def measure(session: Session, corpus: Corpus, n: int, score_batches: int) -> dict[str, Any]:
    """The final checkpoint's trained and untrained controllers, and the run's log figures."""
    _, state = load_epoch(session)
    settings = config.Settings.from_dict(state["settings"])
    net, ctrl, untrained = build_models(settings, corpus.vocab_size)
    net.load_state_dict(state["supernet"])
    ctrl.load_state_dict(state["controller"])
    net.eval()
    valid = batchify(corpus.valid, settings.model.eval_batch_size)
    args = (net, valid, settings.model.bptt, n, settings.seed, score_batches)
    trained, reference = read_controller(ctrl, *args), read_controller(untrained, *args)
    events = read_events(session.log_path)
    steps = [e for e in events if isinstance(e, ControllerStep)]
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    derived = [e for e in events if isinstance(e, Derived)]
    greedy = [e for e in events if isinstance(e, Validation)]
    gap = np.asarray(trained["max_probs"]) - np.asarray(reference["max_probs"])
    return {
        "controller": settings.controller, "seed": settings.seed, "session": session.id,
        "max_probs": trained["max_probs"], "max_probs_untrained": reference["max_probs"],
        "mean_max_prob": float(np.mean(trained["max_probs"])),
        "mean_max_prob_untrained": float(np.mean(reference["max_probs"])),
        "gap": float(gap.mean()), "steps_above": int((gap > 0).sum()), "steps": int(gap.size),
        "entropy_first_step": steps[0].entropy if steps else None,
        "entropy_last_step": steps[-1].entropy if steps else None,
        "entropy_epochs": [e.entropy for e in epochs],
        "entropy_final": trained["entropy"], "entropy_untrained": reference["entropy"],
        "median_ppl": trained["median_ppl"], "median_ppl_untrained": reference["median_ppl"],
        "greedy_valid_ppl": greedy[-1].ppl if greedy else None,
        "derived_valid_ppl": derived[-1].ppl if derived else None,
        "valid_ppl_epochs": [e.valid_ppl for e in epochs],
    }


def claim_a(rows: list[dict[str, Any]], controller: str) -> str:
    """Claim (a) of ``enas-tui paper`` on these runs, by replication.py's rule, for ``controller``."""
    results = [SeedResult(controller="unsupervised", run_seed=r["seed"], session=r["session"], spearman={},
                          collapse={}, fig1=r["max_probs"], fig1_random=r["max_probs_untrained"], fig2_iqr=None)
               for r in rows if r["controller"] == controller]
    if not results:
        return ""
    found = claims(aggregate(results))[0]
    return f"{found.outcome} (a) for {controller}: {found.detail}"


def report(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, ""]
    for r in rows:
        lines.append(f"{r['controller']} seed {r['seed']} (session {r['session']}, {r['train_s']:.0f} s): "
                     f"mean top-action prob {r['mean_max_prob']:.4f} vs untrained {r['mean_max_prob_untrained']:.4f} "
                     f"(gap {r['gap']:+.4f}), above at {r['steps_above']} of {r['steps']} steps")
        lines.append("  per step, trained:   " + " ".join(f"{p:.2f}" for p in r["max_probs"]))
        lines.append("  per step, untrained: " + " ".join(f"{p:.2f}" for p in r["max_probs_untrained"]))
        lines.append(f"  entropy (nats, 23 steps, training mode): untrained {r['entropy_untrained']:.2f}, first "
                     f"step {r['entropy_first_step']:.2f}, last step {r['entropy_last_step']:.2f}, final "
                     f"controller {r['entropy_final']:.2f}")
        lines.append(f"  samples' median ppl on this run's weights: trained {r['median_ppl']:.1f}, untrained "
                     f"{r['median_ppl_untrained']:.1f}; valid ppl: greedy cell {_num(r['greedy_valid_ppl'])}, "
                     f"derived cell {_num(r['derived_valid_ppl'])}")
    lines.append("")
    for controller in dict.fromkeys(r["controller"] for r in rows):
        mine = [r for r in rows if r["controller"] == controller]
        lines.append(f"{controller} over {len(mine)} seed(s): mean top-action prob "
                     f"{np.mean([r['mean_max_prob'] for r in mine]):.4f} vs untrained "
                     f"{np.mean([r['mean_max_prob_untrained'] for r in mine]):.4f}, above at "
                     f"{np.mean([r['steps_above'] for r in mine]):.1f} of {mine[0]['steps']} steps, "
                     f"train {np.mean([r['train_s'] for r in mine]):.0f} s per run")
        lines.append("  " + claim_a(rows, controller))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=config.PRESETS)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data", help="a PTB-layout folder (default: the generated corpus)")
    where.add_argument("--real-ptb", action="store_true", help="the tests' split of $ENAS_TUI_SHARED/data/ptb")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=3, help="runs per controller: seeds S..S+K-1")
    parser.add_argument("--controllers", default="unsupervised", help="comma-separated trained settings")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--n", type=int, default=100, help="probe architectures (enas-tui paper: 100)")
    parser.add_argument("--score-batches", type=int, default=2, help="validation minibatches per sample's ppl")
    parser.add_argument("--sessions-dir", help="keep the sessions here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="controller-learning-") as tmp:
        data = str(real_ptb_split(Path(tmp) / "ptb")) if args.real_ptb else args.data
        try:
            runs = [config.resolve(c, args.preset, seed=s, data=data, overrides=args.set, epochs=args.epochs)
                    for s in range(args.seed, args.seed + args.seeds) for c in controllers]
        except config.SettingsError as exc:
            parser.error(str(exc))
        if any(s.controller == "random" for s in runs):
            parser.error("the random setting is the untrained reference every run is compared with")
        corpus = load_corpus(data)
        root = Path(args.sessions_dir) if args.sessions_dir else Path(tmp) / "sessions"
        rows = []
        for settings in runs:
            session, seconds = train(settings, corpus, root)
            rows.append({**measure(session, corpus, args.n, args.score_batches), "train_s": seconds})
            if not args.json:
                print(f"  trained {settings.controller} seed {settings.seed} in {seconds:.0f} s", file=sys.stderr)
    header = (f"controller learning: preset {args.preset}, data {'real PTB split' if args.real_ptb else data or '(generated corpus)'}, "
              f"epochs {runs[0].train.epochs}, overrides {' '.join(args.set) or '(none)'}; ctrl "
              f"lr {runs[0].ctrl.lr}, {runs[0].ctrl.steps_per_epoch} steps/epoch "
              f"of {runs[0].ctrl.batch_size} samples, baseline decay {runs[0].ctrl.baseline_decay}, entropy weight "
              f"{runs[0].ctrl.entropy_weight}, reward {runs[0].ctrl.reward_c}/ppl")
    if args.json:
        print(json.dumps({"preset": args.preset, "data": "real-ptb" if args.real_ptb else data,
                          "overrides": args.set, "ctrl": vars(runs[0].ctrl), "epochs": runs[0].train.epochs,
                          "runs": rows, "claim_a": {c: claim_a(rows, c) for c in controllers}}, indent=1))
    else:
        print(report(rows, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
