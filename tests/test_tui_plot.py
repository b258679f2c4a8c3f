"""Text drawings the panels share: sparklines, gauges, bands, the colour scale, the cell tree."""

from __future__ import annotations

import math

import numpy as np

from enas_tui.search_space import Architecture
from enas_tui.tui.architecture import LEAF, tree_lines, wrap
from enas_tui.tui.heatmap import pick
from enas_tui.tui.plot import LEVELS, PALETTE, SPARK, band, diverging, gauge, levels, sparkline


def test_sparkline_scales_to_its_range_and_width():
    assert sparkline([1, 2, 3, 4], 10) == SPARK[0] + SPARK[2] + SPARK[5] + SPARK[-1]
    line = sparkline(list(range(1000)), 20)
    assert len(line) == 20 and line[0] == SPARK[0] and line[-1] == SPARK[-1]
    assert sparkline([1.0, math.nan, 3.0], 3)[1] == " "
    assert sparkline([5, 5, 5], 3) == SPARK[len(SPARK) // 2] * 3
    assert sparkline([10, 100, 1000], 3, log=True) == SPARK[0] + SPARK[4] + SPARK[-1]


def test_gauge_and_band():
    assert gauge(0.5, 10) == "█" * 5 + "░" * 5
    assert gauge(1.0, 4) == "████" and gauge(0.0, 4) == "░░░░"
    assert len(gauge(0.33, 7)) == 7
    drawn = band(0.2, 0.5, 0.8, 11)
    assert drawn.index("├") == 2 and drawn.index("●") == 5 and drawn.index("┤") == 8


def test_diverging_scale_is_symmetric():
    assert diverging(0.0, 1.0) == PALETTE[LEVELS]
    assert diverging(1.0, 1.0) == PALETTE[-1] and diverging(-1.0, 1.0) == PALETTE[0]
    assert diverging(5.0, 1.0) == PALETTE[-1]  # clipped
    assert levels(np.array([[-1.0, 0.0, 1.0, np.nan]]), 1.0).tolist() == [[0, LEVELS, 2 * LEVELS, LEVELS]]


def test_pick_spreads_rows_and_keeps_both_ends():
    assert pick(5, 10).tolist() == [0, 1, 2, 3, 4]
    rows = pick(100, 10)
    assert len(rows) == 10 and rows[0] == 0 and rows[-1] == 99 and list(rows) == sorted(set(rows))


def test_tree_lines_draw_every_node_once_and_mark_leaves():
    arch = Architecture.parse("tanh,0:relu,0:identity,1:sigmoid")
    lines = tree_lines(arch)
    assert lines[0] == "x,h ─ 0 tanh"
    for node in range(arch.num_nodes):
        assert sum(f"─ {node} " in line for line in lines) == 1
    leaves = {node for node in range(arch.num_nodes) if any(f"─ {node} " in ln and ln.endswith(LEAF) for ln in lines)}
    assert leaves == set(arch.leaves) == {2, 3}


def test_wrap_breaks_after_commas():
    text = "tanh,0:relu,0:identity,1:sigmoid,2:tanh"
    lines = wrap(text, 16)
    assert "".join(lines) == text and all(len(line) <= 16 for line in lines)
