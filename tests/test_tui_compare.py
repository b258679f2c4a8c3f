"""``compare``: sessions side by side at the same epoch."""

from __future__ import annotations

import numpy as np
import pytest

from enas_tui.events import Diagnostics, EpochEnd, Probe, Validation
from enas_tui.tui import run_compare
from enas_tui.tui.compare import CompareApp, CompareError
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import screen_lines, sync

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


@sync
async def test_each_column_says_which_epoch_it_shows_and_no_value_is_a_silent_dash(sessions):
    app = CompareApp(sessions)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.2)
        header0 = app.query_one("#header-0").render().plain
        header1 = app.query_one("#header-1").render().plain
        assert "epoch 3: its last (no epoch 4)" in header0 and "epoch 4 of 4" in header1
        curves = app.query_one("#curves").text()
        collapse_random = [e for e in synthetic_events(RUNS[0]) if isinstance(e, Diagnostics)][-1]
        row = next(line for line in curves.splitlines() if "random" in line and line.startswith("collapse"))
        assert row.rstrip().endswith(f"{collapse_random.collapse_index['hidden']:.3f}@e3")  # its last, labelled
        assert not row.rstrip().endswith("-")


@sync
async def test_heatmaps_share_one_scale_and_maps_one_pair_of_axes(sessions):
    app = CompareApp(sessions)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.2)
        probes = [[e for e in synthetic_events(run) if isinstance(e, Probe)][-1] for run in RUNS]
        shared = max(float(np.abs(p.hidden).max()) for p in probes)
        for i in range(2):
            heatmap = app.query_one(f"#heatmap-{i}")
            legend = "".join(s.text for s in heatmap.render_line(heatmap.content_size.height - 1))
            assert f"+{shared:.2f} shared scale" in legend
        from enas_tui import embedding

        limits = {app.query_one(f"#embedding-{i}").limit for i in range(2)}
        assert len(limits) == 1
        limit = limits.pop()
        assert limit == pytest.approx(embedding.map_limit([embedding.project(p.hidden) for p in probes]))
        assert f"axes ±{limit:.2f}" in app.query_one("#embedding-1").text()


@sync
async def test_compare_at_80x24_keeps_heatmaps_and_every_table1_row(sessions):
    app = CompareApp(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        screen = "\n".join(screen_lines(app))
        for i in range(2):
            assert app.query_one(f"#heatmap-{i}").content_size.height >= 4  # info, 2 pixel lines, legend
            table = app.query_one(f"#spearman-{i}").text()
            rows = (("acts (paper)", "acts:pap"), ("conns", "conns"), ("GED (paper)", "GED:pap"), ("|perf diff|", "|Δppl|"))
            assert all(long in table or short in table for long, short in rows)
        assert "too small: 4 cell shapes (press 4)" in screen
        await pilot.press("4")  # the cell shapes side by side, on the whole screen
        await pilot.pause(0.2)
        maps = [app.query_one(f"#shape-{i}") for i in range(2)]
        assert all(m.display and m.content_size.height >= 15 for m in maps)
        assert "depth per probe set" in maps[0].text()
        assert maps[0].region.x < maps[1].region.x and maps[0].region.y == maps[1].region.y
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not maps[0].display


@sync
async def test_compare_puts_cell_shapes_side_by_side(sessions):
    from enas_tui import cell_shape, embedding

    app = CompareApp(sessions)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.2)
        for i, run in enumerate(RUNS):
            probes = [e for e in synthetic_events(run) if isinstance(e, Probe)]
            last = cell_shape.summarize(probes[-1].archs)
            assert f"{last.width.median:>4g} [{last.width.q25:g}–{last.width.q75:g}]" in \
                app.query_one(f"#shape-{i}").text()
        await pilot.press("5")
        await pilot.pause(0.2)
        curves = app.query_one("#curves").text()
        assert "depth" in curves and "width" in curves
