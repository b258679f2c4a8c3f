"""Cell shape (depth and width of sampled cells) and its history over a search."""

from __future__ import annotations

import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from enas_tui import cell_shape  # noqa: E402
from enas_tui.search_space import Architecture, random_architecture  # noqa: E402


def test_depth_is_the_longest_path_and_width_the_number_of_leaves():
    wide = Architecture.parse("tanh,0:relu,0:relu,0:relu")  # every node reads node 0
    chain = Architecture.parse("tanh,0:relu,1:relu,2:relu")
    mixed = Architecture.parse("tanh,0:relu,1:relu,0:sigmoid,3:tanh")
    assert cell_shape.depth_width(wide) == (1, 3)
    assert cell_shape.depth_width(chain) == (3, 1)
    assert cell_shape.depth_width(mixed) == (2, 2)
    assert cell_shape.depth_width(Architecture.parse("relu")) == (0, 1)


def test_text_form_agrees_with_the_architecture_on_random_cells():
    rng = random.Random(0)
    for _ in range(500):
        arch = random_architecture(rng.randrange(1, 14), rng)
        assert cell_shape.text_depth_width(arch.to_text()) == cell_shape.depth_width(arch)
    assert cell_shape.text_depth_width("tanh,5:relu") is None  # a parent that does not exist yet
    assert cell_shape.text_depth_width("tanh,x:relu") is None


def test_summary_quartiles():
    archs = ["tanh,0:relu,0:relu,0:relu"] * 3 + ["tanh,0:relu,1:relu,2:relu"]
    s = cell_shape.summarize(archs + ["not an architecture"])
    assert s.n == 4  # the unreadable one is left out, not counted as zero
    assert (s.depth.median, s.depth.low, s.depth.high) == (1.0, 1.0, 3.0)
    assert s.width.q25 == pytest.approx(np.percentile([3, 3, 3, 1], 25))
    assert s.depth.mean == pytest.approx(1.5)
    assert cell_shape.summarize(["?"]) is None


def test_uniform_reference_is_reproducible_and_plausible():
    a, b = cell_shape.uniform_reference(12), cell_shape.uniform_reference(12)
    assert a == b
    # A uniformly random recursive tree of 12 nodes: about half its nodes are leaves (E = N/2).
    assert a.width.mean == pytest.approx(6.0, abs=0.2)
    assert 3 <= a.depth.median <= 5


def test_history_and_its_figure():
    rng = random.Random(1)
    probes = [(e, 10 * e, [random_architecture(8, rng).to_text() for _ in range(20)]) for e in range(1, 6)]
    h = cell_shape.history(probes)
    assert h.steps.tolist() == [10, 20, 30, 40, 50] and h.depth.shape == (5, 3)
    first = cell_shape.summarize(probes[0][2])
    assert tuple(h.width[0]) == (first.width.q25, first.width.median, first.width.q75)
    assert cell_shape.history([]).depth.shape == (0, 3)
    fig, axes = plt.subplots(1, 2)
    cell_shape.plot_shape_history(axes, [("supervised", h)], cell_shape.uniform_reference(8),
                                  derived=[("supervised", Architecture.parse("tanh,0:relu"))])
    assert len(axes[0].lines) >= 2 and "depth" in axes[0].get_ylabel() and "leaves" in axes[1].get_ylabel()
    plt.close(fig)
