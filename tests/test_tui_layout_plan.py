"""How a column's lines are shared among its panels (layout.column_heights)."""

from __future__ import annotations

from enas_tui.tui.layout import Need, column_heights


def test_column_heights_give_essentials_first_then_fixed_panels_then_weights():
    needs = {"a": Need(2, 5, 0), "b": Need(3, None, 1), "c": Need(1, 4, 2)}
    heights = column_heights(["a", "b", "c"], needs, height=20, chrome=1)
    assert sum(heights.values()) == 20
    assert heights["a"] == 6  # its full 5 lines + border: fixed-size panels are filled first
    assert heights["c"] == 5  # capped at its full 4 lines
    assert heights["b"] == 9  # the rest
    tight = column_heights(["a", "b", "c"], needs, height=8, chrome=1, drop_order=("c", "b", "a"))
    assert tight == {"a": 4, "b": 4}  # c did not fit: left out whole, never squeezed under its essentials
