"""The embedding map's numbers: PCA of hidden states, in units of the RMS row norm, and the
properties points are coloured by (enas_tui/embedding.py; no dashboard involved)."""

from __future__ import annotations

import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from enas_tui.diagnostics import collapse_index  # noqa: E402
from enas_tui.embedding import PROPERTIES, map_limit, plot_embedding, project, properties  # noqa: E402
from enas_tui.search_space import Architecture, random_architecture  # noqa: E402


def test_projection_matches_the_principal_components():
    rng = np.random.default_rng(0)
    # Variance mostly along two known directions, plus a large shared offset (the mean state).
    basis = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    coords = rng.normal(size=(200, 2)) * [3.0, 1.0]
    hidden = 5.0 + coords @ basis[:2] + 0.01 * rng.normal(size=(200, 20))
    p = project(hidden)
    scale = np.sqrt((hidden ** 2).sum(axis=1).mean())
    assert p.scale == pytest.approx(scale)
    # The 2-D points are the centred rows on the first two components, divided by the RMS row norm.
    centred = hidden - hidden.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    for c in range(2):
        expected = centred @ vt[c] / scale
        assert np.allclose(np.abs(p.points[:, c]), np.abs(expected))
    assert p.explained == pytest.approx(sv[:2] ** 2 / (sv ** 2).sum())
    assert p.explained[0] > 0.85 and p.explained.sum() > 0.99
    assert p.spread == pytest.approx(collapse_index(hidden))  # the map's spread is the collapse index


def test_signs_are_fixed_so_the_map_does_not_flip():
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(30, 8))
    a, b = project(hidden), project(-hidden + 0.0)
    # Negating every row negates the loadings; the sign rule makes the largest loading positive,
    # so the points of -h are the points of h mirrored through the origin, not a random flip.
    assert np.allclose(a.points, -b.points)
    again = project(hidden.copy())
    assert np.array_equal(a.points, again.points)


def test_a_collapsed_controller_is_a_tight_blob_and_a_spread_one_is_not():
    rng = np.random.default_rng(2)
    shared = rng.normal(size=16)
    collapsed = project(shared + 1e-3 * rng.normal(size=(50, 16)))
    spread = project(shared + 0.5 * rng.normal(size=(50, 16)))
    assert np.abs(collapsed.points).max() < 0.01 and collapsed.spread < 0.01
    assert np.abs(spread.points).max() > 0.2 and spread.spread > 0.2
    # Shared axes for a comparison: the spread map sets them; the blob stays a blob on them.
    assert map_limit([collapsed, spread]) == pytest.approx(1.05 * np.abs(spread.points).max())
    assert map_limit([collapsed]) == 0.2  # never zoomed in on a blob until it looks like structure


def test_identical_rows_and_zero_states_project_to_the_origin():
    assert np.array_equal(project(np.ones((5, 3))).points, np.zeros((5, 2)))
    zero = project(np.zeros((4, 3)))
    assert np.array_equal(zero.points, np.zeros((4, 2))) and zero.spread == 0.0
    with pytest.raises(ValueError):
        project(np.zeros((0, 3)))


def test_properties_count_what_they_name():
    archs = ["tanh,0:relu,1:relu,0:sigmoid", "identity,0:identity,1:identity,2:identity"]
    props = properties(archs, ppl=np.array([100.0, 200.0]))
    assert set(props) == set(PROPERTIES)
    assert props["relu"].tolist() == [2, 0] and props["identity"].tolist() == [0, 4]
    assert props["tanh"].tolist() == [1, 0] and props["sigmoid"].tolist() == [1, 0]
    assert props["depth"].tolist() == [2, 3] and props["leaves"].tolist() == [2, 1]
    assert props["valid ppl"].tolist() == [100.0, 200.0]
    assert "valid ppl" not in properties(archs)  # not measured for this probe: not made up
    assert np.isnan(properties(["bogus"])["relu"][0])


def test_plot_embedding_draws_every_point_on_the_given_axes():
    rng = random.Random(0)
    archs = [random_architecture(6, rng) for _ in range(40)]
    hidden = np.random.default_rng(3).normal(size=(40, 10))
    p = project(hidden)
    fig, ax = plt.subplots()
    scatter = plot_embedding(ax, p, properties(archs)["depth"], "depth", title="supervised", limit=1.0)
    assert scatter.get_offsets().shape == (40, 2)
    assert ax.get_xlim() == (-1.0, 1.0) and "PC1" in ax.get_xlabel() and "depth" in ax.get_title()
    plt.close(fig)
    assert isinstance(archs[0], Architecture)
