"""A sweep on disk without training: a record, synthetic sessions (tui/synthetic.py) under the
sweep's session ids, and saved analyses with fixed numbers, for the overview's tests and snapshots.

The numbers are made up (none is a measurement); they are chosen so that the aggregates and the
claims have something to say: two seeds per controller, one run of each state the overview shows.
"""

from __future__ import annotations

import json
from pathlib import Path

from enas_tui.replication import SAVED_ANALYSIS_VERSION, SeedResult
from enas_tui.sessions import Session, write_json_atomic
from enas_tui.sweep.grid import build_spec
from enas_tui.sweep.record import SweepRecord, analysis_path, new_record, save_record
from enas_tui.tui.synthetic import T0, SyntheticRun, write_synthetic_session

STEPS = 23  # decisions of a 12-node cell
# Final analyses: (controller, seed) -> (rho per measure, collapse of the hidden state, fig1 level, Fig. 2 IQR)
FINAL = {
    ("random", 0): ({"common_activations_paper": -0.09, "common_connections": -0.12, "ged_paper": -0.05,
                     "abs_perf_diff": 0.01}, 0.226, 0.30, 120.0),
    ("random", 1): ({"common_activations_paper": -0.07, "common_connections": -0.10, "ged_paper": -0.07,
                     "abs_perf_diff": -0.01}, 0.221, 0.31, 130.0),
    ("unsupervised", 0): ({"common_activations_paper": -0.30, "common_connections": -0.08, "ged_paper": -0.02,
                           "abs_perf_diff": 0.00}, 0.013, 0.62, 40.0),
    ("supervised", 0): ({"common_activations_paper": -0.41, "common_connections": -0.17, "ged_paper": 0.10,
                         "abs_perf_diff": 0.16}, 0.140, 0.55, 60.0),
}
OTHER_MEASURES = ("common_activations_aligned", "ged_aligned", "ged_exact")


def seed_result(controller: str, seed: int, session: str) -> SeedResult:
    rho, collapse, level, iqr = FINAL[(controller, seed)]
    spearman = {**rho, **{m: round(rho.get(m.replace("aligned", "paper").replace("exact", "paper"), 0.0) * 0.9, 4)
                          for m in OTHER_MEASURES}}
    return SeedResult(controller=controller, run_seed=seed, session=session, spearman=spearman,
                      collapse={"hidden": collapse, "max_prob": collapse / 2},
                      fig1=[level + 0.002 * (i % 5) for i in range(STEPS)],
                      fig1_random=[0.30 + 0.001 * (i % 3) for i in range(STEPS)], fig2_iqr=iqr)


def write_saved_analysis(path: Path, result: SeedResult, epoch: int, n: int) -> None:
    """A saved analysis as analysis.save_analysis writes it, with the fields the overview reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": SAVED_ANALYSIS_VERSION, "seed_result": result.to_dict(),
                                "analysis": {"epoch": epoch, "n": n, "seed": result.run_seed,
                                             "session": result.session, "controller": result.controller}}))


def write_synthetic_sweep(root: Path, name: str = "demo") -> SweepRecord:
    """Six runs (3 controllers x seeds 0-1): four finished and analysed, ``supervised`` seed 1
    running on another host (live numbers only), ``unsupervised`` seed 1 failed with an error."""
    spec = build_spec("random,unsupervised,supervised", "0-1", [], name=name, epochs=3)
    record = new_record(spec)
    record.created = T0
    hosts = {"random": "node-a", "unsupervised": "node-a", "supervised": "node-b"}
    for run in record.runs:
        run.hosts, run.attempts = [hosts[run.controller]], 1
        key = (run.controller, run.seed)
        if key == ("supervised", 1):  # running on another host: live numbers only
            synthetic = SyntheticRun(controller="supervised", epochs=3, seed=1, end=None, stop_after=150)
            session = write_synthetic_session(root, synthetic, session_id=run.session)
            session.write_status(status="running", epoch=1, pid=4242, host="node-b", best_ppl=905.4)
            continue
        if key == ("unsupervised", 1):  # killed, and its retries used up
            run.attempts, run.error = 3, "trainer killed by SIGKILL (epoch 2)"
            synthetic = SyntheticRun(controller="unsupervised", epochs=3, seed=1, end=None, stop_after=120)
            write_synthetic_session(root, synthetic, session_id=run.session, status="failed")
            Session(root / run.session).write_status(status="failed", message=run.error)
            continue
        synthetic = SyntheticRun(controller=run.controller, epochs=3, seed=run.seed)
        write_synthetic_session(root, synthetic, session_id=run.session)
        write_saved_analysis(analysis_path(root, name, run.session), seed_result(*key, run.session), 3, spec.n)
    save_record(root, record)
    _freeze(root, record)
    return record


def _freeze(root: Path, record: SweepRecord) -> None:
    """Fixed times in the record and the status files, so a screen drawn from them never changes."""
    data = json.loads((root / "sweeps" / f"{record.name}.json").read_text())
    data["updated"] = T0
    write_json_atomic(root / "sweeps" / f"{record.name}.json", data)
    for run in record.runs:
        status = root / run.session / "status.json"
        if status.exists():
            fields = json.loads(status.read_text())
            fields["updated"] = T0
            write_json_atomic(status, fields)
