"""The sweep overview: its numbers (which run shows what, the aggregates), ``watch`` and the
dashboard's ``o`` driven with Pilot, and snapshots of the screen at 80x24 and 120x36."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from enas_tui import diagnostics
from enas_tui.events import Diagnostics
from enas_tui.replication import aggregate, claims
from enas_tui.session_log import read_events, read_last
from enas_tui.sessions import Session
from enas_tui.sweep.overview import SweepOverview, find_sweep, sort_rows
from enas_tui.tui.app import AttachApp, ReplayApp
from enas_tui.tui.sweep_overview import OverviewScreen, WatchApp
from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session

from helpers import screen_lines, sync
from sweep_fixtures import FINAL, seed_result, write_synthetic_sweep

pytestmark = pytest.mark.timeout(120)
SIZES = [(80, 24), (120, 36)]
ids = [f"{w}x{h}" for w, h in SIZES]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A synthetic sweep ``demo`` in ./sessions (no temporary path on screen)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENAS_TUI_SESSIONS", raising=False)
    write_synthetic_sweep(Path("sessions"))
    return Path("sessions")


def overview(root: Path) -> SweepOverview:
    view = SweepOverview(root, "demo")
    view.refresh()
    return view


# -- the numbers --------------------------------------------------------------------------------
def test_finished_runs_show_their_final_analysis_and_the_others_their_last_live_probe(here):
    view = overview(here)
    rows = {r.session: r for r in view.rows}
    assert [r.state.word for r in view.rows] == ["finished", "finished", "finished", "failed", "finished", "running"]
    final = rows["demo-unsupervised-s0"]
    assert final.source == "final" and final.collapse == 0.013 and final.at_epoch == 3
    assert final.rho("common_activations", view.shown) == FINAL[("unsupervised", 0)][0]["common_activations_paper"]
    for sid in ("demo-supervised-s1", "demo-unsupervised-s1"):  # running, failed: the log's last live probe
        live = read_last(here / sid / "events.log", "diagnostics")
        every = [e for e in read_events(here / sid / "events.log") if isinstance(e, Diagnostics)]
        assert live.seq == every[-1].seq  # read from the end, the same event as a full read's last
        row = rows[sid]
        assert row.source == "live" and row.at_epoch == live.epoch and row.collapse == live.collapse_index["hidden"]
        assert row.rho("ged", view.shown) == live.spearman["ged_paper"]["rho"]
    assert rows["demo-unsupervised-s1"].state.error == "trainer killed by SIGKILL (epoch 2)"


def test_the_aggregates_are_replication_over_the_final_analyses_only(here):
    view = overview(here)
    [group] = view.groups
    finished = [(c, s) for c, s in FINAL]
    direct = aggregate([seed_result(c, s, f"demo-{c}-s{s}") for c, s in finished])
    assert group.analysed == 4 and group.runs == 6
    assert group.summary.controllers.keys() == direct.controllers.keys()
    for name, c in direct.controllers.items():
        mine = group.summary.controllers[name]
        assert mine.seeds == c.seeds and mine.spearman == c.spearman and mine.collapse == c.collapse
    assert [x.outcome for x in group.claims] == [x.outcome for x in claims(direct)]
    # an analysis that lands changes them: the running run finishes and is analysed
    from sweep_fixtures import write_saved_analysis
    from enas_tui.replication import SeedResult
    from enas_tui.sweep.record import analysis_path

    session = Session(here / "demo-supervised-s1")
    session.write_status(status="finished", epoch=3, pid=4242, host="node-b")
    result = SeedResult(**{**seed_result("supervised", 0, "demo-supervised-s1").to_dict(), "run_seed": 1,
                           "collapse": {"hidden": 0.160, "max_prob": 0.08}})
    write_saved_analysis(analysis_path(here, "demo", "demo-supervised-s1"), result, 3, 100)
    view.refresh()
    supervised = view.groups[0].summary.controllers["supervised"]
    assert supervised.seeds == [0, 1] and supervised.collapse["hidden"].mean == pytest.approx(0.150)
    assert supervised.collapse["hidden"].half_width is not None  # two seeds: an interval


def test_sorting_puts_runs_without_a_value_last(here):
    view = overview(here)
    shown = view.shown
    by_ppl = [r.session for r in sort_rows(view.rows, "best ppl", False, shown)]
    ppl = [r.state.best_ppl for r in sort_rows(view.rows, "best ppl", False, shown)]
    assert ppl[-1] is None and ppl[:-1] == sorted(ppl[:-1])
    down = [r.state.best_ppl for r in sort_rows(view.rows, "best ppl", True, shown)]
    assert down[-1] is None and down[:-1] == sorted(down[:-1], reverse=True)
    assert by_ppl[-1] == "demo-unsupervised-s1"  # failed before it had a best ppl
    collapse = [r.collapse for r in sort_rows(view.rows, "collapse", False, shown)]
    assert collapse == sorted(collapse)


def test_a_session_finds_its_sweep(here):
    assert find_sweep(here, "demo-supervised-s1") == "demo"
    session = write_synthetic_session(here, SyntheticRun(controller="random", epochs=1), session_id="demo-x")
    assert find_sweep(here, session.id) is None  # the name's prefix alone is not membership


# -- watch ---------------------------------------------------------------------------------------
def table_rows(app) -> list[list[str]]:
    """The run table as words per line, from the screen."""
    lines = screen_lines(app)
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["controller"]) + 1
    rows = []
    for line in lines[start:]:
        words = line.replace("▶ ", "▶").split()  # the dashboard's own run: "▶supervised"
        if not words or words[0].lstrip("▶") not in ("random", "unsupervised", "supervised"):
            break
        rows.append(words)
    return rows


async def settle(pilot) -> None:
    await pilot.pause(0.3)


@sync
async def test_watch_shows_every_run_sorts_and_opens_one(here):
    app = WatchApp(overview(here))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        rows = table_rows(app)
        assert [(r[0], r[1]) for r in rows] == [("random", "0"), ("random", "1"), ("unsupervised", "0"),
                                                ("unsupervised", "1"), ("supervised", "0"), ("supervised", "1")]
        assert rows[3][2:4] == ["node-a", "failed"] and rows[5][2:4] == ["node-b", "running"]
        text = "\n".join(screen_lines(app))
        assert "demo-unsupervised-s1: trainer killed by SIGKILL (epoch 2)" in text  # the failed run's error
        assert "4 of 6 runs analysed" in text
        aggregate_row = next(line for line in screen_lines(app) if line.split()[:2] == ["random", "2"])
        assert "-0.080 ± 0.127" in aggregate_row  # random's common activations over seeds 0, 1
        for _ in range(6):  # s: next sort column: controller, seed, host, status, epoch, best ppl
            await pilot.press("s")
        await settle(pilot)
        assert "by best ppl▲" in "\n".join(screen_lines(app))
        assert [r[1] for r in table_rows(app)][-1] == "1" and table_rows(app)[-1][0] == "unsupervised"
        await pilot.press("i")
        await settle(pilot)
        ppl = [float(r[5]) for r in table_rows(app) if r[5] != "-"]
        assert ppl == sorted(ppl, reverse=True)
        order = [(r[0], r[1]) for r in table_rows(app)]
        # the cursor stays on its run (random seed 0) through the sorts; down: the run under it now
        assert order[2:4] == [("random", "0"), ("unsupervised", "0")]  # ties keep the sweep's order
        await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause(0.3)
    assert app.choice is not None and app.choice.session == "demo-unsupervised-s0"
    assert app.choice.notice is not None and "ran on node-a" in app.choice.notice  # another host's run
    assert app.choice.host is None  # finished: read from the shared folder


@sync
async def test_watch_follows_a_run_going_on_another_host_over_ssh(here):
    app = WatchApp(overview(here))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert table_rows(app)[5][:4] == ["supervised", "1", "node-b", "running"]
        for _ in range(5):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause(0.3)
    assert app.choice is not None and app.choice.session == "demo-supervised-s1"
    assert app.choice.host == "node-b" and app.choice.notice is None  # opened as attach node-b:ID


@sync
async def test_watch_quits_with_escape_and_a_pending_run_cannot_be_opened(here):
    import shutil

    shutil.rmtree(here / "demo-random-s1")  # not started yet
    app = WatchApp(overview(here))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert table_rows(app)[1][:3] == ["random", "1", "pending"]
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.is_running and app.choice is None  # nothing to attach to: it says so and stays
        await pilot.press("escape")
        await pilot.pause(0.2)
    assert app.choice is None


# -- the dashboard's overview ---------------------------------------------------------------------
@sync
async def test_the_dashboard_of_a_sweep_run_opens_the_overview_and_switches_run(here):
    app = AttachApp(Session(here / "demo-supervised-s0"))
    async with app.run_test(size=(120, 36)) as pilot:
        deadline = time.monotonic() + 20
        while not (app.source.caught_up and app.source.ended):
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        await settle(pilot)
        assert any("o Sweep" in line.replace("  ", " ") for line in screen_lines(app)[-2:])  # in the footer
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        marked = [r for r in table_rows(app) if r[0].startswith("▶")]
        assert [(r[0], r[1]) for r in marked] == [("▶supervised", "0")]
        await pilot.press("escape")  # back to the panels
        await settle(pilot)
        assert not isinstance(app.screen, OverviewScreen) and app.is_running
        await pilot.press("o")
        await settle(pilot)
        await pilot.press("up", "enter")  # the run above: unsupervised seed 1
        await pilot.pause(0.3)
    assert app.switch_to is not None and app.switch_to.session == "demo-unsupervised-s1"


@sync
async def test_a_session_outside_a_sweep_has_no_overview(here):
    session = write_synthetic_session(here, SyntheticRun(controller="random", epochs=1), session_id="lonely")
    app = ReplayApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert not isinstance(app.screen, OverviewScreen)
        assert "Sweep" not in screen_lines(app)[-1]
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Sweep overview" not in commands
    app = ReplayApp(Session(here / "demo-random-s0"))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert "Sweep overview" in [c.title for c in app.get_system_commands(app.screen)]


def test_the_overview_refreshes_by_itself(here):
    """A run that advances shows up at the next refresh without any key."""
    import asyncio

    async def run() -> None:
        app = WatchApp(overview(here))
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            Session(here / "demo-supervised-s1").write_status(status="running", epoch=2, pid=4242, host="node-b",
                                                               best_ppl=701.5)
            deadline = time.monotonic() + 10
            while "701.5" not in "\n".join(screen_lines(app)):
                assert time.monotonic() < deadline, "the overview did not refresh"
                await pilot.pause(0.2)
            assert table_rows(app)[5][4:6] == ["2/3", "701.5"]

    asyncio.run(run())


# -- snapshots ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_watch_screen(snap_compare, here, size):
    async def run_before(pilot) -> None:
        await pilot.pause(0.4)

    assert snap_compare(WatchApp(overview(here)), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_dashboard_overview_screen(snap_compare, here, size):
    async def run_before(pilot) -> None:
        await pilot.pause(0.4)
        await pilot.press("o")
        await pilot.pause(0.4)
        await pilot.press("down")
        await pilot.pause(0.2)

    assert snap_compare(ReplayApp(Session(here / "demo-supervised-s0")), terminal_size=size, run_before=run_before)
