"""Report folders (figures, table1.json, report.md) and the end-to-end ``paper`` comparison."""

from __future__ import annotations

import json
import math
import pickle
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.image import imread

from PIL import Image

from enas_tui import config
from enas_tui.analysis import UNTRAINED_REFERENCE, Analysis, analyze_session, pair_fig2
from enas_tui.data import Corpus, load_corpus
from enas_tui.diagnostics import MEASURE_LABELS, PAPER_TABLE1, TABLE1_COLUMNS, other_measures, resolve_readings
from enas_tui.paper import RUN_ORDER, LocalRunner, PaperInterrupted, format_paper_table, run_paper
from enas_tui.replication import interval, retrain_verdict
from enas_tui.retrain.source import last_derived
from enas_tui.embedding import map_limit, project
from enas_tui.report import (
    cell_shape_figure, embedding_figure, fig2, fig3, retrain_figure, table1_figure, write_report,
)
from enas_tui.retrain.outcome import RetrainOutcome
from enas_tui.session_log import read_events
from enas_tui.sessions import Session, all_sessions, create_session, kind_of
from enas_tui.trainer import new_run

from helpers import RETRAIN_TINY, TINY

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILES = [f"{name}.{ext}" for name in ("fig1", "fig2", "fig3", "fig4", "table1", "embedding", "cell_shape")
         for ext in ("png", "svg")]
SEED_FILES = ["table1_seeds.png", "table1_seeds.svg"]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:6000], valid=full.valid[:2000],
                  test=full.test[:2000], source="generated corpus (test slice)")


@pytest.fixture(scope="module")
def analyses(tmp_path_factory, corpus) -> list[Analysis]:
    root = tmp_path_factory.mktemp("sessions")
    out = []
    for controller in ("random", "unsupervised", "supervised"):
        settings = config.resolve(controller, "cpu", device="cpu", overrides=TINY, epochs=2)
        session = create_session(root, controller)
        assert new_run(settings, session, corpus, listeners=[]).run() == "finished"
        out.append(analyze_session(session, n=10, valid_batches=1, corpus=corpus))
    # a third, damaged copy: a diverged architecture and an undefined correlation must still render
    damaged = Analysis.from_dict(out[1].to_dict())
    damaged.session += "-damaged"
    damaged.trained.ppl[0] = np.inf
    damaged.spearman["abs_perf_diff"] = {"rho": None, "p": None}
    return [*out, damaged]


def md_table(text: str, heading: str) -> list[list[str]]:
    """The body cells of the markdown table in section ``## heading``."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def number(cell: str) -> float | None:
    return None if cell == "-" else float(cell)


def check_folder(folder, analyses, seeds: bool = False, retrains: bool = False) -> None:
    shown = resolve_readings()
    for name in FILES + (SEED_FILES if seeds else []):
        path = folder / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == PNG_SIGNATURE
            assert imread(path).shape[0] > 50
            assert Image.open(path).info["dpi"] == pytest.approx((300, 300), abs=0.1)  # print resolution
        else:
            assert ET.parse(path).getroot().tag.endswith("svg")
    assert (folder / "table1_seeds.png").exists() is seeds
    data = json.loads((folder / "table1.json").read_text())
    assert [d["session"] for d in data] == [a.session for a in analyses]
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["controllers"]) == {a.controller for a in analyses}
    assert [c["key"] for c in summary["claims"]] == list("abcdef" if retrains else "abcde")
    text = (folder / "report.md").read_text()
    for name in FILES + (SEED_FILES if seeds else []):
        assert f"({name})" in text
    rows = md_table(text, "Table 1")
    assert len(rows) == 3 * len(analyses)
    for entry, ours, p, paper in zip(data, rows[0::3], rows[1::3], rows[2::3]):
        assert ours[:3] == [entry["session"], entry["controller"], "ours"]
        for cell, column in zip(ours[3:], TABLE1_COLUMNS):
            rho = entry["spearman"][shown[column]]["rho"]
            assert number(cell) == (None if rho is None else round(rho, 3))
        for cell, column in zip(p[3:], TABLE1_COLUMNS):
            value = entry["spearman"][shown[column]]["p"]
            assert number(cell) == (None if value is None else float(f"{value:.2g}"))
        for cell, column in zip(paper[3:], TABLE1_COLUMNS):
            assert number(cell) == entry["paper"][column] == PAPER_TABLE1[entry["controller"]][column]
    header = text.split("## Table 1\n", 1)[1].split("\n## ", 1)[0]
    assert all(MEASURE_LABELS[shown[c]] in header for c in TABLE1_COLUMNS)
    apart = md_table(text, "Other readings")
    for entry, ours in zip(data, apart[0::2]):
        for cell, measure in zip(ours[3:], other_measures(shown)):
            rho = entry["spearman"][measure]["rho"]
            assert number(cell) == (None if rho is None else round(rho, 3))
    for entry, row in zip(data, md_table(text, "Collapse index")):
        expected = [entry["collapse_index"]["hidden"], entry["collapse_index"]["max_prob"],
                    entry["collapse_index_random"]["hidden"], entry["collapse_index_random"]["max_prob"]]
        assert [number(c) for c in row[2:]] == [round(v, 4) for v in expected]
    fig2_rows = md_table(text, "Fig. 2 summary")
    assert len(fig2_rows) == 2 * len(data)
    for row, (entry, which) in zip(fig2_rows, [(e, w) for e in data for w in ("trained", "random")]):
        ppl = entry["fig2"][which]
        assert row[2] == ("this controller" if which == "trained" else entry["fig2_reference"]["label"])
        assert [number(c) for c in row[3:8]] == [round(ppl[k], 2) for k in ("median", "q25", "q75", "min", "max")]
        assert int(row[8]) == ppl["nonfinite"]
    assert "probe mode" in text and "| derive | emit_last |" in text


def test_report_files_open_and_report_md_matches_table1_json(analyses, tmp_path):
    path = write_report(analyses, tmp_path / "report")
    assert path == tmp_path / "report" / "report.md"
    check_folder(tmp_path / "report", analyses, seeds=True)  # two unsupervised runs: intervals are drawn
    data = json.loads((tmp_path / "report" / "table1.json").read_text())
    assert "figures" not in data[0]  # the numbers only; `analyze --format json` has the arrays
    assert data[3]["fig2"]["trained"]["nonfinite"] == 1 and data[3]["spearman"]["abs_perf_diff"]["rho"] is None
    # a random session is in the report: every run's Fig. 2 reference is its samples on its own weights
    rand = analyses[0]
    for entry in data:
        assert entry["fig2_reference"]["session"] == rand.session
        assert entry["fig2"]["random"]["median"] == pytest.approx(float(np.median(rand.trained.ppl)))
    text = path.read_text()
    assert "## The paper's claims" in text and "(e) |perf diff| correlation" in text
    assert "a different probe sample from the dashboard's" in text


def test_report_for_one_session_names_its_reference(analyses, tmp_path):
    write_report(analyses[1:2], tmp_path)
    check_folder(tmp_path, analyses[1:2])
    entry = json.loads((tmp_path / "table1.json").read_text())[0]
    assert entry["fig2_reference"] == {"label": UNTRAINED_REFERENCE, "session": None}
    assert UNTRAINED_REFERENCE in (tmp_path / "report.md").read_text()


def test_fig2_draws_the_random_session_as_the_reference_or_names_the_untrained_one(analyses):
    alone = fig2(analyses[1:2]).axes[0]
    labels = [t.get_text() for t in alone.get_xticklabels()]
    assert len(labels) == 2 and "untrained controller\non these weights" in labels[1]
    paired = fig2(pair_fig2(analyses[:3])).axes[0]
    labels = [t.get_text() for t in paired.get_xticklabels()]
    assert len(labels) == 3 and not any("untrained" in label for label in labels)  # one box per session
    assert labels[0].startswith("random")


def test_fig3_gives_each_session_its_own_symmetric_colour_scale(analyses):
    scaled = Analysis.from_dict(analyses[1].to_dict())
    scaled.trained.hidden = scaled.trained.hidden * 0.01  # a low-magnitude controller
    fig = fig3([analyses[2], scaled])
    images = [ax.images[0] for ax in fig.axes if ax.images]
    limits = [float(np.abs(a.trained.hidden).max()) for a in (analyses[2], scaled)]
    assert [im.get_clim() for im in images] == [(-lim, lim) for lim in limits]
    bars = [ax for ax in fig.axes if not ax.images and ax.get_ylabel().startswith("hidden value")]
    assert [bar.get_ylabel() for bar in bars] == [f"hidden value (this panel: ±{lim:.3g})" for lim in limits]


def test_table1_figure_shows_p_values_and_n(analyses):
    fig = table1_figure(analyses[2:3])
    cells = [cell.get_text().get_text() for cell in fig.axes[0].tables[0].get_celld().values()]
    a = analyses[2]
    assert f"ours (n {a.n}, {a.n * (a.n - 1) // 2:,} pairs)" in cells
    assert f"{a.spearman['ged_paper']['p']:.2g}" in cells and "p" in cells


def test_embedding_figure_shares_its_axes_and_colours_by_perplexity(analyses):
    fig = embedding_figure(analyses[:3])
    maps = [ax for ax in fig.axes if ax.collections and ax.get_label() != "<colorbar>"]
    limit = map_limit([project(a.trained.hidden) for a in analyses[:3]])
    assert len(maps) == 3 and all(ax.get_xlim() == (-limit, limit) for ax in maps)
    for ax, a in zip(maps, analyses):
        scatter = ax.collections[0]
        assert scatter.get_offsets().shape == (a.n, 2)
        ppl = np.asarray(a.trained.ppl, dtype=np.float64)
        assert np.allclose(np.asarray(scatter.get_array()), np.log10(ppl), equal_nan=True)
        assert a.controller in ax.get_title() and "PC1" in ax.get_xlabel()


def test_cell_shape_figure_draws_each_search(analyses):
    fig = cell_shape_figure(analyses[:3])
    depth, width = fig.axes[:2]
    medians = [line for line in depth.lines if line.get_label().endswith("(median)") and "uniform" not in
               line.get_label()]
    assert [line.get_label() for line in medians] == [f"{a.controller} (median)" for a in analyses[:3]]
    for line, a in zip(medians, analyses):
        assert list(line.get_xdata()) == a.search["history"]["steps"]
        assert list(line.get_ydata()) == [row[1] for row in a.search["history"]["depth"]]
    assert any("uniform" in line.get_label() for line in width.lines)
    assert "leaves" in width.get_ylabel()


def test_report_needs_an_analysis(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        write_report([], tmp_path)


def test_paper_trains_analyses_and_reports_the_three_settings(tmp_path, corpus):
    seen: list[str] = []

    def listeners(controller: str):
        return [lambda event: seen.append(controller)]

    result = run_paper(tmp_path, overrides=TINY, epochs=1, corpus=corpus, listeners_factory=listeners,
                       n=8, valid_batches=1, device="cpu", seed=3, seeds=2, retrain_epochs=1,
                       retrain_overrides=RETRAIN_TINY)
    sessions = [s for s in all_sessions(tmp_path) if kind_of(s) == "search"]
    assert sorted(s.id for s in sessions) == sorted(result.sessions) and len(sessions) == 6
    assert [a.controller for a in result.analyses] == list(RUN_ORDER) * 2
    assert [a.run_seed for a in result.analyses] == [3, 3, 3, 4, 4, 4]
    assert sorted(set(seen)) == sorted([*RUN_ORDER, *(f"retrain {c}" for c in RUN_ORDER)])
    for session in sessions:  # same data and budget for all, seeds 3 and 4
        start = read_events(session.log_path)[0]
        assert start.seed in (3, 4) and start.settings["train"]["epochs"] == 1
        assert start.settings["model"]["hidden"] == 16 and session.status()["status"] == "finished"
    # the last step: each search's derived cell retrained with the same settings, the search's seed
    assert [(r.controller, r.run_seed) for r in result.retrains] == [(c, s) for s in (3, 4) for c in RUN_ORDER]
    for r, a in zip(result.retrains, result.analyses):
        search = Session(tmp_path / a.session)
        assert r.search_session == a.session and r.arch == last_derived(search).best_arch
        start = read_events((tmp_path / r.session) / "events.log")[0]
        assert start.kind == "retrain" and start.seed == a.run_seed and start.settings["train"]["epochs"] == 1
        assert start.settings["model"]["hidden"] == 16 and start.settings["train"]["steps_per_epoch"] == 4
        assert math.isfinite(r.test_ppl) and math.isfinite(r.search_ppl) and len(r.curve) == 1
    assert result.retrain_epochs == 1
    gaps = [rand.test_ppl - unsup.test_ppl for rand, unsup in zip(result.retrains[0::3], result.retrains[1::3])]
    assert result.summary.retrain_gaps["unsupervised"] == interval(gaps)
    assert [c.key for c in result.claims] == list("abcdef")
    # Fig. 2: each run against the random run of its own seed, on that run's weights
    for a in result.analyses:
        rand = next(r for r in result.analyses if r.controller == "random" and r.run_seed == a.run_seed)
        assert a.reference.session == rand.session
        np.testing.assert_array_equal(a.reference.ppl, rand.trained.ppl)
    # the summary is the mean and t-interval of the per-seed values
    sup = [a for a in result.analyses if a.controller == "supervised"]
    measure = "common_activations_paper"
    assert result.summary.controllers["supervised"].spearman[measure] == interval(
        [a.spearman[measure]["rho"] for a in sup])
    assert result.report.parent.parent == tmp_path and result.report.parent.name.startswith("paper-")
    check_folder(result.report.parent, result.analyses, seeds=True, retrains=True)
    assert (result.report.parent / "retrain.png").is_file() and (result.report.parent / "retrain.svg").is_file()
    summary = json.loads((result.report.parent / "summary.json").read_text())
    assert [r["session"] for r in summary["retrains"]] == [r.session for r in result.retrains]
    assert summary["retrain_gaps"]["unsupervised"]["mean"] == pytest.approx(np.mean(gaps))
    assert summary["claims"][-1]["key"] == "f" and summary["retrain_verdict"] == retrain_verdict(result.summary)
    text = format_paper_table(result)
    assert "seeds 3..4 (2 runs per controller)" in text and "Table 1 over seeds" in text
    cell = result.summary.controllers["supervised"].spearman[measure]
    assert cell.text(signed=True) in text and "±" in text
    for controller in RUN_ORDER:
        for value in PAPER_TABLE1[controller].values():
            assert f"{value:+.3f}" in text
    for claim in result.claims:
        assert claim.line() in text
    assert retrain_verdict(result.summary) in text and "retrains 1 epochs" in text
    for r in result.retrains:
        assert f"{r.controller}, seed {r.run_seed}: {r.arch}" in text and f"{r.test_ppl:.2f}" in text
    assert str(result.report) in text
    order = [text.index(f"│ {c}") for c in ("random", "supervised", "unsupervised")]
    assert order == sorted(order)  # the paper's row order


def test_paper_rejects_bad_settings_before_training(tmp_path):
    with pytest.raises(config.SettingsError, match="no setting"):
        run_paper(tmp_path, overrides=["train.nope=1"], epochs=1)
    with pytest.raises(config.SettingsError, match="train.nonmono must not be negative"):  # a retrain setting
        run_paper(tmp_path, overrides=TINY, epochs=1, retrain_overrides=["train.nonmono=-1"])
    assert not list(tmp_path.iterdir())


def test_paper_runs_its_searches_and_retrains_through_the_runner_it_is_given(tmp_path, corpus):
    """A runner (e.g. one that ships jobs to a cluster) gets picklable jobs, phase by phase."""
    calls: list[list[tuple[str, str, int]]] = []
    local = LocalRunner(tmp_path, corpus)

    def runner(jobs):
        jobs = [pickle.loads(pickle.dumps(job)) for job in jobs]  # what a remote runner would receive
        calls.append([(job.kind, job.controller, job.settings.seed) for job in jobs])
        return local(jobs)

    result = run_paper(tmp_path, overrides=TINY, epochs=1, corpus=corpus, n=8, valid_batches=1, device="cpu",
                       seed=2, runner=runner, retrain_epochs=1, retrain_overrides=RETRAIN_TINY)
    assert calls == [[("search", c, 2) for c in RUN_ORDER], [("retrain", c, 2) for c in RUN_ORDER]]
    assert [r.controller for r in result.retrains] == list(RUN_ORDER)
    without = run_paper(tmp_path / "no", overrides=TINY, epochs=1, corpus=corpus, n=8, valid_batches=1,
                        device="cpu", retrain=False)
    assert without.retrains == [] and [c.key for c in without.claims] == list("abcde")
    assert all(kind_of(s) == "search" for s in all_sessions(tmp_path / "no"))
    assert "no retrain" in format_paper_table(without) and "Retrained" not in format_paper_table(without)


def test_paper_stops_with_a_one_line_error_when_a_run_is_stopped(tmp_path, corpus):
    with pytest.raises(PaperInterrupted) as excinfo:
        run_paper(tmp_path, overrides=TINY, epochs=1, corpus=corpus, device="cpu",
                  on_trainer=lambda trainer: trainer.request_stop())
    message = str(excinfo.value)
    assert "\n" not in message and "random run" in message and "stopped" in message
    assert [s.status()["status"] for s in all_sessions(tmp_path)] == ["stopped"]  # nothing after it ran


def test_report_draws_the_retrain_curves_and_the_final_table(tmp_path, analyses):
    retrains = [RetrainOutcome(session=f"retrain-{a.controller}", arch=f"tanh,0:relu,{i}:tanh",
                               controller=a.controller, search_session=a.session, run_seed=a.run_seed,
                               search_ppl=500.0 + i, valid_ppl=300.0 + i, test_ppl=290.0 + i, best_epoch=2,
                               averaged=i == 1, epochs=3, curve=[400.0 + i, 300.0 + i, None],
                               switch_epoch=1 if i == 1 else None)
                for i, a in enumerate(analyses[:3])]
    fig = retrain_figure(retrains)
    ax = fig.axes[0]
    curves = [line for line in ax.lines if line.get_linestyle() != "None"]
    assert [line.get_label() for line in curves] == [f"{r.controller} seed {r.run_seed}: test {r.test_ppl:.1f}"
                                                     for r in retrains]
    for i, line in enumerate(curves):  # whole-split validation per epoch; a missing check is a gap
        np.testing.assert_array_equal(line.get_ydata(), [400.0 + i, 300.0 + i, np.nan])
    stars = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines if line.get_marker() == "*"]
    assert stars == [(2, r.test_ppl) for r in retrains]  # test ppl at the epoch whose weights were tested
    circles = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines if line.get_marker() == "o"]
    assert circles == [(1, 401.0)]  # the second cell's switch to averaged SGD, on its curve
    path = write_report(analyses[:3], tmp_path, retrains=retrains)
    text = path.read_text()
    rows = md_table(text, "Retrained cells")
    assert [row[:3] for row in rows] == [[r.controller, str(r.run_seed), r.session] for r in retrains]
    assert [[number(c) for c in row[4:7]] for row in rows] == [[r.search_ppl, r.valid_ppl, r.test_ppl]
                                                              for r in retrains]
    assert [row[3] for row in rows] == [f"`{r.arch}`" for r in retrains] and rows[1][7] == "2 (averaged)"
    assert "![Retrained cells" in text and (tmp_path / "retrain.png").is_file()
    assert "better than random search with weight sharing: no, by -1.00 ppl (one seed: no interval)" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["retrains"][0]["curve"] == [400.0, 300.0, None]
    assert summary["claims"][-1]["key"] == "f" and summary["claims"][-1]["outcome"] == "UNDECIDED"
