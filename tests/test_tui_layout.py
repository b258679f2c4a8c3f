"""The dashboard at every size from 80x24 up: every panel gets its essential lines, nothing is
silently dropped, and replay's scrub bar is on screen (what a person sees, read off the screen)."""

from __future__ import annotations

import re

import pytest

from enas_tui.search_space import Architecture
from enas_tui.sessions import Session
from enas_tui.tui.app import PANELS, AttachApp, ReplayApp
from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session

from helpers import screen_lines, sync

SIZES = [(80, 24), (100, 30), (120, 36), (160, 48), (200, 50)]
TABLE1_ROWS = (("acts (paper)", "acts:pap"), ("common conns", "conns"), ("GED (paper)", "GED:pap"),
               ("|perf diff|", "|Δppl|"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Session:
    return write_synthetic_session(tmp_path_factory.mktemp("sessions"), SyntheticRun(controller="supervised", epochs=3))


async def settle(pilot) -> None:
    app = pilot.app
    for _ in range(200):
        source = getattr(app, "source", None)
        if source is None or (source.caught_up and source.ended):
            break
        await pilot.pause(0.02)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", ["attach", "replay"])
@sync
async def test_every_panel_gets_its_essential_lines(recorded, mode, size):
    app = AttachApp(recorded) if mode == "attach" else ReplayApp(recorded, start=None)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        lines = screen_lines(app)
        screen = "\n".join(lines)
        table = app.panel("spearman").region  # all four Table 1 rows, on screen, each with its value
        rows = [line[table.x: table.right] for line in lines[table.y: table.bottom]]
        assert sum(1 for row in rows if re.search(r"[+-]\d\.\d{3}|n/a", row)) >= 4, (size, rows)
        for long, short in TABLE1_ROWS:
            assert long in screen or short in screen, (long, size)
        for label in ("train ppl", "valid ppl", "reward", "entropy"):
            assert label in screen, (label, size)
        assert "too small for" not in screen
        names = [name for name, _ in PANELS]
        assert "embedding" in names and "shape" in names
        for name in names:
            panel = app.panel(name)
            need = panel.need(panel.content_size.width)
            assert panel.display and panel.region.height > 0, f"{name} is not on screen at {size}"
            assert panel.content_size.height >= need.essential, (name, size, panel.content_size.height)
        if size >= (120, 36):  # the best architecture as a tree, not one cut line
            tree = app.panel("architecture").text()
            assert tree.count("◆") >= len(Architecture.parse(app.state.best_arch).leaves)  # every leaf drawn


@sync
async def test_a_terminal_too_small_for_a_panel_says_which_and_zoom_shows_it(recorded):
    app = AttachApp(recorded)
    async with app.run_test(size=(70, 18)) as pilot:
        await settle(pilot)
        hidden = [name for name, _ in PANELS if not app.panel(name).display]
        assert hidden
        screen = "\n".join(screen_lines(app))
        assert "too small for:" in screen
        number = [name for name, _ in PANELS].index(hidden[0]) + 1
        assert f"{number} " in screen.split("too small for:")[1]
        await pilot.press(str(number))
        await pilot.pause(0.2)
        panel = app.panel(hidden[0])
        assert app.screen.maximized is panel and panel.display and panel.region.height > 5
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert app.screen.maximized is None and not panel.display


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=lambda s: f"{s[0]}x{s[1]}")
@sync
async def test_the_scrub_bar_is_above_the_footer(recorded, size):
    app = ReplayApp(recorded)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        lines = screen_lines(app)
        bar = lines[-2]  # the line just above the key footer
        assert "●" in bar and ("─" in bar or "━" in bar), lines[-3:]
        assert "finished" in bar  # how the recording ends, at the end of the bar
        await pilot.press("home")
        await pilot.pause(0.2)
        bar = screen_lines(app)[-2]
        assert bar.index("●") < bar.index("─")  # the cursor moved to the start of the bar
