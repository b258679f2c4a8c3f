"""``compare``: sessions side by side at the same epoch."""

from __future__ import annotations

import pytest

from enas_tui.events import Diagnostics, EpochEnd, Validation
from enas_tui.tui import run_compare
from enas_tui.tui.compare import CompareApp, CompareError
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import sync

RUNS = (SyntheticRun(controller="random", epochs=3), SyntheticRun(controller="supervised", epochs=4))


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    return [write_synthetic_session(root, run) for run in RUNS]


def at_epoch_end(events, epoch):
    """The events up to and including the end of ``epoch`` (all of them if it never ended)."""
    ends = [i for i, e in enumerate(events) if isinstance(e, EpochEnd) and e.epoch == epoch]
    return events[: ends[-1] + 1] if ends else events


@sync
async def test_compare_shows_each_session_at_the_same_epoch(sessions):
    app = CompareApp(sessions)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.epoch == 4  # the longest session's last epoch
        header = str(app.query_one("#header-0").render())
        assert "random" in header and "no epoch 4" in header
        await pilot.press("left")
        assert app.epoch == 3
        await pilot.pause()
        curves = app.query_one("#curves").text()
        for i, run in enumerate(RUNS):
            shown = at_epoch_end(list(synthetic_events(run)), 3)
            diag = [e for e in shown if isinstance(e, Diagnostics)][-1]
            rho = diag.spearman["common_activations_paper"]["rho"]
            assert f"{rho:+6.3f}" in app.query_one(f"#spearman-{i}").text()
            valid = [e for e in shown if isinstance(e, Validation)][-1]
            assert f"{valid.ppl:.1f}" in curves
            assert run.controller in curves
        assert "epoch 3" in curves
        await pilot.press("home")
        assert app.epoch == 1
        await pilot.press("left")
        assert app.epoch == 1
        await pilot.press("end", "q")
    assert app.return_code == 0


def test_compare_needs_two_or_three_sessions(sessions):
    with pytest.raises(CompareError, match="2 or 3 sessions"):
        CompareApp(sessions[:1])
    assert run_compare(sessions * 2) == 2
