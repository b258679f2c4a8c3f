"""``enas-tui sweep status``: the sweeps in a sessions folder, or one sweep's runs, as plain text or JSON.

Plain columns, never truncated (session ids are there to be copied into attach, replay, report).
No Ray and no torch: a laptop that only watches can run it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from .record import RunState, SweepError, load_record, run_states, sweep_names

# "trained": finished training, its final analysis not saved yet (or failed: the error says why)
ORDER = ("running", "trained", "finished", "stopped", "crashed", "failed", "damaged", "pending")


def counts(states: list[RunState]) -> str:
    """``2 finished, 1 running, 1 pending`` (in a fixed order, zeros left out)."""
    tally = Counter(s.word for s in states)
    return ", ".join(f"{tally[k]} {k}" for k in ORDER if tally[k]) or "no runs"


def table(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]


def run_lines(states: list[RunState]) -> list[str]:
    rows = [("session", "controller", "seed", "settings", "host", "status", "epoch", "best ppl", "tries", "error")]
    for s in states:
        epoch = f"{s.epoch}/{s.epochs}" if s.epochs else "-"
        best = "-" if s.best_ppl is None else f"{s.best_ppl:.2f}"
        rows.append((s.run.session, s.run.controller, str(s.run.seed), s.run.label() or "-", s.host or "-",
                     s.word, epoch, best, str(s.run.attempts), s.error or ""))
    return table(rows, right=(2, 6, 7, 8))


def sweep_lines(root: Path) -> list[str]:
    """One line per sweep in ``root``: name, runs by status, when it was created."""
    names = sweep_names(root)
    if not names:
        return [f"no sweeps in {root}"]
    rows = [("sweep", "runs", "status", "created")]
    for name in names:
        try:
            record = load_record(root, name)
        except SweepError as exc:
            rows.append((name, "?", str(exc), ""))
            continue
        created = dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((name, str(len(record.runs)), counts(run_states(root, record)), created))
    return table(rows, right=(1,))


def state_dict(state: RunState) -> dict[str, Any]:
    run = state.run
    return {"session": run.session, "controller": run.controller, "seed": run.seed, "settings": run.settings,
            "host": state.host, "hosts": run.hosts, "status": state.word, "analysed": state.analysed,
            "epoch": state.epoch, "epochs": state.epochs, "best_ppl": state.best_ppl, "attempts": run.attempts,
            "error": state.error}
