"""What the panels say and how they draw it: robust curves, colours with a stated meaning, axes
that can be read, the embedding map, the cell shape, and the fields newer logs record."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from rich.text import Text

from enas_tui.events import Diagnostics, EpochEnd, Probe, SharedStep
from enas_tui.tui.app import LiveApp, ReplayApp
from enas_tui.tui.plot import SPARK
from enas_tui.sources import TrainerSource
from enas_tui.tui.state import DashboardState
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import FakeProcess, screen_lines, sync

CLIP_HIGH = "↑"  # how a clipped cell is drawn (enas_tui.tui.plot.CLIP_HIGH)


def live(root, events, session_run) -> LiveApp:
    """The live dashboard fed ``events`` in memory (so fields older logs lack can be set on them)."""
    session = write_synthetic_session(root, session_run)
    source = TrainerSource(root)
    source.process = FakeProcess(session.id, alive=True, returncode=None)
    source.queue.extend(events)
    return LiveApp(source)


async def drain(pilot) -> None:
    app = pilot.app
    for _ in range(300):
        if not app.source.queue:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.25)


def style_of(text: Text, needle: str) -> str:
    """The style of the span of ``text`` that holds ``needle``."""
    start = text.plain.index(needle)
    styles = [str(span.style) for span in text.spans if span.start <= start < span.end]
    return " ".join(styles)


# -- item 7: curves that one exploded value cannot flatten ----------------------------------------
def test_an_exploded_step_is_clipped_and_marked_not_flattening_the_rest():
    from enas_tui.tui.plot import spark

    values = [300.0 - i for i in range(60)]
    values[30] = 1e304  # one diverged step
    drawn = spark(values, 60, log=True)
    assert drawn.text[30] == CLIP_HIGH and drawn.clipped == 1
    rest = drawn.text[:30] + drawn.text[31:]
    assert len(set(rest)) >= 6  # the other 59 steps keep their shape
    assert rest[0] == SPARK[-1] and rest[-1] == SPARK[0]
    assert drawn.hi < 1e3  # the scale is the other values', not the explosion's
    # Few points are never called outliers.
    assert spark([524.0, 349.0], 2, log=True).clipped == 0


@sync
async def test_training_panel_marks_the_exploded_step(tmp_path):
    run = SyntheticRun(epochs=1, end=None)
    events = list(synthetic_events(run))
    shared = [i for i, e in enumerate(events) if isinstance(e, SharedStep)]
    events[shared[10]] = replace(events[shared[10]], ppl=1e304, loss=700.0)
    app = live(tmp_path, events, run)
    async with app.run_test(size=(120, 36)) as pilot:
        await drain(pilot)
        line = next(ln for ln in app.panel("training").text().splitlines()
                    if ln.startswith(("train ppl", "shared ppl")))
        curve = line[10:].split(" ")[0]
        assert CLIP_HIGH in line and f"{CLIP_HIGH}1" in line
        assert len(set(curve.replace(CLIP_HIGH, ""))) >= 3  # not a spike on a flat line


def test_table1_history_is_scaled_to_its_own_range():
    state = DashboardState()
    state.apply_all(synthetic_events(SyntheticRun(epochs=3)))
    from enas_tui.tui.spearman import SpearmanPanel

    text = SpearmanPanel().draw(state, 90, 8).plain
    row = next(ln for ln in text.splitlines() if ln.startswith(("acts", "common acts")))
    assert len({ch for ch in row if ch in SPARK}) >= 4  # values between -0.47 and -0.39: not one block
    values = state.spearman_history["common_activations_paper"].values()
    assert f"{min(values):+.2f}…{max(values):+.2f}" in row


@sync
async def test_zoomed_table1_draws_each_history_with_its_zero_line(tmp_path):
    run = SyntheticRun(controller="random", epochs=3)  # correlations near zero: the line crosses them
    app = ReplayApp(write_synthetic_session(tmp_path, run), start=None)
    async with app.run_test(size=(120, 50)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("4")
        await pilot.pause(0.3)
        text = app.panel("spearman").text()
        assert "rho per probe set, own range" in text
        assert "   0  " in text  # the zero line is labelled where it falls inside a history's range


# -- item 8: colours mean something stated on screen ----------------------------------------------
@sync
async def test_rho_colour_is_agreement_with_the_papers_sign(tmp_path):
    run = SyntheticRun(controller="supervised", epochs=1, end=None)
    events = list(synthetic_events(run))
    diag = [e for e in events if isinstance(e, Diagnostics)][-1]
    for key in ("ged", "ged_paper"):  # the paper's reading (and the key older logs used)
        diag.spearman[key] = {"rho": 0.154, "p": 1e-5}  # positive like the paper's +0.100
    diag.spearman["common_connections"] = {"rho": 0.2, "p": 1e-5}  # the paper's is -0.160
    app = live(tmp_path, events, run)
    async with app.run_test(size=(120, 36)) as pilot:
        await drain(pilot)
        panel = app.panel("spearman")
        text = panel.draw(app.state, 60, 10)
        ged = next(ln for ln in text.split("\n") if "GED" in ln.plain)
        conns = next(ln for ln in text.split("\n") if "conns" in ln.plain)
        assert "+0.154✓" in ged.plain and "green" in style_of(ged, "+0.154")
        assert "+0.200✗" in conns.plain and "yellow" in style_of(conns, "+0.200")
        head = text.split("\n")[0].plain
        assert "✓ paper" in head and "✗ not" in head  # the legend is on screen with the rows


@sync
async def test_buffer_gauge_is_coloured_by_its_phase_and_says_it(tmp_path):
    run = SyntheticRun(controller="supervised", epochs=4, buffer_add=500, buffer_capacity=1000)
    app = ReplayApp(write_synthetic_session(tmp_path, run), start=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.3)
        drawn = app.panel("buffer").draw(app.state, 50, 3)
        first = drawn.split("\n")[0]
        assert "full, replacing" in first.plain
        assert "green" in style_of(first, "█") and "green" in style_of(first, "full, replacing")


@sync
async def test_no_color_keeps_every_meaning(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = ReplayApp(write_synthetic_session(tmp_path, SyntheticRun(controller="supervised", epochs=2)), start=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.3)
        assert app.no_color
        screen = "\n".join(screen_lines(app))
        assert "[ ░▒▓█]" in screen  # the heatmap's shade legend includes the blank level
        assert "✓" in screen  # agreement with the paper, without colour
        # The embedding map prints each cell's property level as a digit, with a digit legend.
        emb = app.panel("embedding")
        legend = emb.text().splitlines()[-1]
        assert "0123456789" in legend
        body = "\n".join(emb.text().splitlines()[1:-1])
        assert any(ch.isdigit() for ch in body)


# -- item 10: axis labels never run together ------------------------------------------------------
def test_ticks_label_every_few_steps_without_touching():
    from enas_tui.tui.plot import ticks

    axis = ticks(23, 1, 40)
    assert axis.split() == ["0", "5", "10", "15", "20"]
    assert "1011" not in ticks(23, 1, 40) and "1011" not in ticks(23, 2, 60)
    for count, cell in ((23, 1), (23, 2), (23, 3), (150, 1)):
        labels = ticks(count, cell, count * cell).split()
        assert len(labels) >= 2 and all(int(b) > int(a) for a, b in zip(labels, labels[1:]))
    assert ticks(16, 1, 40, first=1).split()[:2] == ["1", "5"]


@sync
async def test_probability_chart_axis_is_readable(tmp_path):
    app = ReplayApp(write_synthetic_session(tmp_path, SyntheticRun(epochs=1)), start=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        axis = next(ln for ln in app.panel("probabilities").text().splitlines() if ln.startswith("step"))
        assert axis[4:].split() == ["0", "5", "10", "15", "20"]


# -- item 13: the embedding map ------------------------------------------------------------------
@sync
async def test_embedding_map_shows_the_probe_and_cycles_its_colour(tmp_path):
    from enas_tui import embedding

    run = SyntheticRun(controller="supervised", epochs=2, perf_every=1)
    events = list(synthetic_events(run))
    app = ReplayApp(write_synthetic_session(tmp_path, run), start=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.3)
        probe = [e for e in events if isinstance(e, Probe)][-1]
        p = embedding.project(probe.hidden)
        panel = app.panel("embedding")
        text = panel.text()
        assert f"PC1 {p.explained[0]:.0%} PC2 {p.explained[1]:.0%}" in text
        assert f"spread {p.spread:.3f}" in text and f"e{probe.epoch}:{probe.step}" in text
        seen = [panel.prop]
        for _ in embedding.PROPERTIES[1:]:
            await pilot.press("c")
            seen.append(panel.prop)
        assert seen == [*embedding.PROPERTIES[1:], embedding.PROPERTIES[0]]  # every property, in turn
        while panel.prop != "valid ppl":
            await pilot.press("c")
        await pilot.pause(0.15)
        ppl = [e for e in events if isinstance(e, Diagnostics)][-1].ppl
        assert f"{np.nanmin(ppl):.0f}" in panel.text().splitlines()[-1]
        # It follows the replay cursor: at the end of epoch 1 it shows that epoch's last probe.
        await pilot.press("home", "right_square_bracket")
        await pilot.pause(0.2)
        first = [e for e in events[: app.index.epoch_position(1)] if isinstance(e, Probe)][-1]
        assert f"e1:{first.step}" in panel.text()


def test_collapsed_and_supervised_controllers_look_different_on_the_map():
    from enas_tui import embedding

    maps = {}
    for controller in ("unsupervised", "supervised"):
        state = DashboardState()
        state.apply_all(synthetic_events(SyntheticRun(controller=controller, epochs=4, probe_size=60)))
        maps[controller] = state.projection()
    assert np.abs(maps["unsupervised"].points).max() < 0.05  # one tight blob on axes of at least ±0.2
    assert np.abs(maps["supervised"].points).max() > 0.2  # spread out, with the colours in order


# -- item 14: the cell shape ---------------------------------------------------------------------
@sync
async def test_cell_shape_panel_shows_quartiles_reference_and_derived_cell(tmp_path):
    from enas_tui import cell_shape

    run = SyntheticRun(controller="unsupervised", epochs=3)
    events = list(synthetic_events(run))
    app = ReplayApp(write_synthetic_session(tmp_path, run), start=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.3)
        text = app.panel("shape").text()
        last = cell_shape.summarize([e for e in events if isinstance(e, Probe)][-1].archs)
        ref = cell_shape.uniform_reference(12)
        assert f"{last.depth.median:>4g} [{last.depth.q25:g}–{last.depth.q75:g}]" in text
        assert f"uniform {ref.width.median:g} [{ref.width.q25:g}–{ref.width.q75:g}]" in text
        assert "derived cell (epoch 3): depth" in text
        assert "than uniform sampling" in text
        await pilot.press("9")
        await pilot.pause(0.2)
        zoomed = app.panel("shape").text()
        assert "depth per probe set: median (line), quartiles (band), uniform (dashed)" in zoomed
        assert "width per probe set" in zoomed


# -- item 16: fields newer logs record, and their absence in older ones ----------------------------
@sync
async def test_newer_fields_are_shown(tmp_path):
    run = SyntheticRun(controller="supervised", epochs=1, end=None)
    events = list(synthetic_events(run))
    for e in events:
        if isinstance(e, EpochEnd):
            e.skipped_shared_steps = 2
        if isinstance(e, Probe):
            e.mode, e.state = "derive", "emit_last"
    diag = [e for e in events if isinstance(e, Diagnostics)][-1]
    diag.spearman.pop("ged_aligned", None)  # a measure the trainer did not compute
    app = live(tmp_path, events, run)
    async with app.run_test(size=(120, 36)) as pilot:
        await drain(pilot)
        train = next(ln for ln in app.panel("training").text().splitlines()
                     if ln.startswith(("train ppl", "shared ppl")))
        assert train.endswith("2 skipped")
        assert app.panel("probabilities").border_title == "1 action probabilities (derive)"
        table = app.panel("spearman")
        assert "GED (paper)" in table.text()
        await pilot.press("r")  # GED: paper -> aligned
        await pilot.pause(0.15)
        row = next(ln for ln in table.text().splitlines() if ln.startswith("GED"))
        assert row.startswith("GED (aligned)") and "n/a" in row and "not computed live" in row
        await pilot.press("a")  # common activations: paper -> aligned
        await pilot.pause(0.15)
        row = next(ln for ln in table.text().splitlines() if ln.startswith("acts"))
        assert f"{diag.spearman['common_activations_aligned']['rho']:+6.3f}" in row


@sync
async def test_older_logs_show_their_readings_and_recomputed_collapse(tmp_path):
    from enas_tui import embedding

    run = SyntheticRun(controller="unsupervised", epochs=2, schema=1)
    events = list(synthetic_events(run))
    app = ReplayApp(write_synthetic_session(tmp_path, run), start=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.3)
        table = app.panel("spearman").text()
        assert "GED (paper)" in table and "not computed live" in table  # schema 1 had no paper reading
        await pilot.press("r")
        await pilot.pause(0.15)
        diag = [e for e in events if isinstance(e, Diagnostics)][-1]
        assert f"{diag.spearman['ged_aligned']['rho']:+6.3f}" in app.panel("spearman").text()  # the log's 'ged'
        probe = [e for e in events if isinstance(e, Probe)][-1]
        from enas_tui.diagnostics import collapse_index

        index = collapse_index(probe.hidden)
        assert f"collapse {index:.4f}" in app.panel("heatmap").text()
        assert not math.isclose(index, diag.collapse_index["hidden"], rel_tol=0.1)  # not the absolute one
        assert app.panel("probabilities").border_title == "1 action probabilities (train)"  # as old probes were
        assert "skipped" not in app.panel("training").text()


@pytest.mark.parametrize("width", [40, 60])
def test_table1_never_drops_a_row_silently(width):
    from enas_tui.tui.spearman import SpearmanPanel

    state = DashboardState()
    state.apply_all(synthetic_events(SyntheticRun(epochs=1)))
    panel = SpearmanPanel()
    for height in range(1, 8):
        text = panel.draw(state, width, height).plain.splitlines()
        rows = [ln for ln in text if ln.split(" ")[0] in ("acts", "common", "GED", "|perf", "acts:pap", "conns",
                                                           "GED:pap", "|Δppl|")]
        if len(rows) < 4:
            assert f"+{4 - len(rows)} rows: zoom (4)" in text[-1], (height, text)


# -- issue 7 item 7: Fig. 1 live, the trained controller beside the random (untrained) one ------
async def replayed(pilot) -> None:
    app = pilot.app
    for _ in range(500):
        if app.index.complete and app.state.status == "finished":
            break
        await pilot.pause(0.02)
    await pilot.pause(0.3)


@sync
async def test_probabilities_panel_shows_the_random_controller_and_the_gap(tmp_path):
    import re

    from enas_tui.search_space import decision_labels

    run = SyntheticRun(controller="unsupervised", epochs=2)
    state = DashboardState()
    state.apply_all(synthetic_events(run))
    gap, summary = state.fig1_gap(), state.probe_summary()
    trained, random = float(np.mean(gap.trained)), float(np.mean(gap.untrained))
    app = ReplayApp(write_synthetic_session(tmp_path, run), start=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await replayed(pilot)
        lines = app.panel("probabilities").text().splitlines()
        # a small panel: one caption line with Fig. 1's comparison, so the chart keeps its rows
        assert lines[0] == f"top p {trained:.2f} vs random○{random:.2f} {gap.gap:+.2f} {gap.above}/23"
        chart = [ln for ln in lines if ln.startswith(("1.0", "0.0", "    "))]
        assert "○" in "".join(chart)  # the random controller's medians
        await pilot.press("1")  # zoomed: the table, with the random controller's median per step
        await pilot.pause(0.3)
        text = app.panel("probabilities").text()
        assert (f"Fig. 1 mean {trained:.2f} vs random ○ {random:.2f}: gap {gap.gap:+.2f}, "
                f"above at {gap.above}/23 steps") in text
        for label, median, ref in zip(decision_labels(12), summary.max_median, gap.untrained_median):
            # label, the options' bars (11 cells), the trained median, the random controller's median
            assert re.search(f"{re.escape(f'{label:<9}')} .{{11}} {median:.2f} {ref:.2f} ", text), label
    assert gap.gap > 0.2 and gap.above >= 20  # the synthetic controller sharpens: a gap to see

    old = SyntheticRun(controller="unsupervised", epochs=2, untrained_probe=False)  # a log from before
    app = ReplayApp(write_synthetic_session(tmp_path / "old", old), start=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await replayed(pilot)
        text = app.panel("probabilities").text()
        assert text.startswith("max p ") and "random" not in text and "○" not in text
        assert len([ln for ln in text.splitlines() if ln.startswith(("1.0", "0.0", "    "))]) == len(chart)
        await pilot.press("1")
        await pilot.pause(0.3)
        text = app.panel("probabilities").text()
        assert "parent 11" in text and " rand " not in text and "○" not in text
