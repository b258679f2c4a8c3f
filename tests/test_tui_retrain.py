"""The dashboard on a retrain session: the training panel (ppl, lr, the switch to averaged SGD, the
test), the cell, and the controller panels saying they have nothing to show; live and attached."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from enas_tui.commands import resume_command
from enas_tui.events import AsgdSwitch, RetrainResult, SharedStep, Validation
from enas_tui.session_log import read_events
from enas_tui.sessions import all_sessions
from enas_tui.sources import TrainerSource
from enas_tui.tui.app import AttachApp, LiveApp
from enas_tui.tui.state import DashboardState
from enas_tui.tui.synthetic import SyntheticRetrain, synthetic_retrain_events, write_synthetic_retrain

from helpers import sync

SEARCH_ONLY = ("probabilities", "heatmap", "buffer", "spearman", "embedding", "shape")
CELL = "tanh,0:relu,1:identity,1:sigmoid,0:tanh,2:relu,3:identity,3:tanh,5:sigmoid,1:relu,4:identity,10:tanh"
TINY_RETRAIN = [arg for item in ("model.hidden=16", "model.batch_size=8", "model.bptt=10", "model.eval_batch_size=16",
                                 "train.steps_per_epoch=6", "train.test_batch_size=16", "train.nonmono=1",
                                 "train.threads=1")
                for arg in ("--set", item)]


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


async def until(pilot, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the dashboard"
        await pilot.pause(0.05)
    await pilot.pause(0.2)  # one more refresh period, so the panels show it


def test_the_state_folds_a_retrain():
    events = list(synthetic_retrain_events())
    state = DashboardState()
    state.apply_all(events)
    switch, result = of(events, AsgdSwitch)[0], of(events, RetrainResult)[0]
    assert state.is_retrain and state.cell == CELL and state.source == "synthetic-unsupervised"
    assert state.asgd == switch and state.result == result and state.averaged
    assert state.lr_history.values() == [e.lr for e in of(events, SharedStep)]
    assert state.valid_ppl.values() == [e.ppl for e in of(events, Validation)]
    log = [line.text for line in state.log]
    assert any(text.startswith("switched to averaged SGD after step 150") for text in log)
    assert any(text.startswith(f"test ppl {result.test_ppl:.2f} (averaged weights of epoch {result.epoch}")
               for text in log)
    assert not any("reward" in text for text in log)  # a retrain has none
    search = DashboardState()
    search.apply(dataclasses.replace(events[0], kind="search", arch=None, source=None))
    assert not search.is_retrain


@sync
async def test_an_attached_retrain_shows_its_training_its_cell_and_says_what_it_lacks(tmp_path):
    session = write_synthetic_retrain(tmp_path)
    events = list(synthetic_retrain_events())
    switch, result = of(events, AsgdSwitch)[0], of(events, RetrainResult)[0]
    app = AttachApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.source.caught_up and app.source.ended)
        training = app.panel("training").text()
        assert "epoch 8/8" in training and "steps 30/30" in training and "ctrl" not in training
        assert f"test ppl  {result.test_ppl:.2f} (averaged weights of epoch {result.epoch}" in training
        assert f"ASGD      on since epoch {switch.epoch}: valid {switch.valid_ppl:.1f} > " in training
        assert f"{of(events, SharedStep)[-1].lr:.2f}" in training.split("\nlr ", 1)[1].splitlines()[0]
        assert "reward" not in training and "entropy" not in training
        arch = app.panel("architecture")
        assert arch.border_title == "6 retrained cell"
        assert arch.text().startswith(f"test ppl {result.test_ppl:.2f} · valid {result.valid_ppl:.2f} (epoch 7)")
        assert "tanh,0:relu,1:identity" in arch.text() and "└─ 11 tanh ◆" in arch.text()
        for name in SEARCH_ONLY:  # plainly said, never "waiting"
            panel = app.panel(name)
            assert panel.text().startswith("search only: no controller in a retrain"), name
            assert panel.size.height <= 2  # one line and its border
        heatmap = app.panel("heatmap")
        assert "".join(seg.text for seg in heatmap.render_line(0)).startswith("search only: no controller")
        assert "retrain" in str(app.query_one("#status").render())
        await pilot.press("2")  # zoomed, a search-only panel says what a search shows there
        assert "a search shows the controller's hidden states here" in "".join(
            seg.text for seg in heatmap.render_line(1))


def test_the_command_to_continue_a_retrain_is_retrains(tmp_path):
    session = write_synthetic_retrain(tmp_path / "runs", SyntheticRetrain(end="stopped"))
    assert resume_command(session) == f"enas-tui retrain --resume synthetic-retrain --sessions-dir {tmp_path / 'runs'}"


@pytest.mark.timeout(240)
@sync
async def test_retrain_live_through_the_launcher_pipe(tmp_path):
    """`enas-tui retrain` on a terminal: the dashboard over a real retrainer child's event pipe."""
    source = TrainerSource(tmp_path).start(["--arch", CELL, "--epochs", "3", *TINY_RETRAIN], command="retrain")
    app = LiveApp(source)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: source.ended and source.pipe_done and source.caught_up, timeout=200)
        session = all_sessions(tmp_path)[0]
        logged = read_events(session.log_path)
        result = of(logged, RetrainResult)[0]
        assert app.state.is_retrain and app.state.result == result
        training = app.panel("training").text()
        assert "epoch 3/3" in training and f"test ppl  {result.test_ppl:.2f}" in training
        assert f"{of(logged, SharedStep)[-1].lr:.2f}" in training  # lr 10 at the cpu preset's first epochs
        switched = of(logged, AsgdSwitch)
        assert ("ASGD      on" if switched else "ASGD      off") in training
        assert app.panel("architecture").text().startswith(f"test ppl {result.test_ppl:.2f}")
        assert app.panel("probabilities").text().startswith("search only")
        assert app.state.run_status == "finished"
        await pilot.press("q")
    assert source.process.returncode == 0 and session.meta()["kind"] == "retrain"
    assert [e.seq for e in logged] == list(range(len(logged)))


def test_retrain_on_a_terminal_opens_the_dashboard_with_the_retrain_command(tmp_path, monkeypatch, capsys):
    import sys

    from enas_tui import tui
    from enas_tui.cli import main

    calls = []
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(tui, "run_live", lambda args, root, command="train": calls.append((args, root, command)) or 0)
    with pytest.raises(SystemExit) as done:
        main(["retrain", "--arch", CELL, "--epochs", "2", "--set", "train.nonmono=1", "--sessions-dir", str(tmp_path)])
    assert done.value.code == 0
    assert calls == [(["--arch", CELL, "--seed", "0", "--device", "auto", "--set", "train.nonmono=1", "--epochs", "2"],
                      Path(tmp_path), "retrain")]
    with pytest.raises(SystemExit) as done:  # a bad cell is a one-line error, not a dashboard
        main(["retrain", "--arch", "tanh,0:swish", "--sessions-dir", str(tmp_path)])
    assert done.value.code == 2 and len(calls) == 1 and "unknown activation" in capsys.readouterr().err
