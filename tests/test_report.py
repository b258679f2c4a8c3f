"""Report folders (figures, table1.json, report.md) and the end-to-end ``paper`` comparison."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.image import imread

from enas_tui import config
from enas_tui.analysis import Analysis, analyze_session
from enas_tui.data import Corpus, load_corpus
from enas_tui.diagnostics import PAPER_TABLE1, TABLE1_COLUMNS
from enas_tui.paper import RUN_ORDER, PaperInterrupted, format_paper_table, run_paper
from enas_tui.report import write_report
from enas_tui.session_log import read_events
from enas_tui.sessions import all_sessions, create_session
from enas_tui.trainer import new_run

from helpers import TINY

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILES = [f"{name}.{ext}" for name in ("fig1", "fig2", "fig3", "fig4", "table1") for ext in ("png", "svg")]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:6000], valid=full.valid[:2000],
                  test=full.test[:2000], source="generated corpus (test slice)")


@pytest.fixture(scope="module")
def analyses(tmp_path_factory, corpus) -> list[Analysis]:
    root = tmp_path_factory.mktemp("sessions")
    out = []
    for controller in ("unsupervised", "supervised"):
        settings = config.resolve(controller, "cpu", device="cpu", overrides=TINY, epochs=2)
        session = create_session(root, controller)
        assert new_run(settings, session, corpus, listeners=[]).run() == "finished"
        out.append(analyze_session(session, n=10, valid_batches=1, corpus=corpus))
    # a third, damaged copy: a diverged architecture and an undefined correlation must still render
    damaged = Analysis.from_dict(out[0].to_dict())
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


def check_folder(folder, analyses) -> None:
    for name in FILES:
        path = folder / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == PNG_SIGNATURE
            assert imread(path).shape[0] > 50
        else:
            assert ET.parse(path).getroot().tag.endswith("svg")
    data = json.loads((folder / "table1.json").read_text())
    assert [d["session"] for d in data] == [a.session for a in analyses]
    text = (folder / "report.md").read_text()
    for name in FILES:
        assert f"({name})" in text
    rows = md_table(text, "Table 1")
    assert len(rows) == 3 * len(analyses)
    for entry, ours, p, paper in zip(data, rows[0::3], rows[1::3], rows[2::3]):
        assert ours[:3] == [entry["session"], entry["controller"], "ours"]
        for cell, measure in zip(ours[3:], TABLE1_COLUMNS):
            rho = entry["spearman"][measure]["rho"]
            assert number(cell) == (None if rho is None else round(rho, 3))
        for cell, measure in zip(p[3:], TABLE1_COLUMNS):
            value = entry["spearman"][measure]["p"]
            assert number(cell) == (None if value is None else float(f"{value:.2g}"))
        for cell, measure in zip(paper[3:], TABLE1_COLUMNS):
            assert number(cell) == entry["paper"][measure] == PAPER_TABLE1[entry["controller"]][measure]
    for entry, row in zip(data, md_table(text, "Collapse index")):
        expected = [entry["collapse_index"]["hidden"], entry["collapse_index"]["max_prob"],
                    entry["collapse_index_random"]["hidden"], entry["collapse_index_random"]["max_prob"]]
        assert [number(c) for c in row[2:]] == [round(v, 4) for v in expected]
    fig2 = md_table(text, "Fig. 2 summary")
    assert len(fig2) == 2 * len(data)
    for row, (entry, which) in zip(fig2, [(e, w) for e in data for w in ("trained", "random")]):
        summary = entry["fig2"][which]
        assert row[2] == which
        assert [number(c) for c in row[3:8]] == [round(summary[k], 2) for k in ("median", "q25", "q75", "min", "max")]
        assert int(row[8]) == summary["nonfinite"]


def test_report_files_open_and_report_md_matches_table1_json(analyses, tmp_path):
    path = write_report(analyses, tmp_path / "report")
    assert path == tmp_path / "report" / "report.md"
    check_folder(tmp_path / "report", analyses)
    data = json.loads((tmp_path / "report" / "table1.json").read_text())
    assert "figures" not in data[0]  # the numbers only; `analyze --format json` has the arrays
    assert data[2]["fig2"]["trained"]["nonfinite"] == 1 and data[2]["spearman"]["abs_perf_diff"]["rho"] is None


def test_report_for_one_session(analyses, tmp_path):
    write_report(analyses[:1], tmp_path)
    check_folder(tmp_path, analyses[:1])


def test_report_needs_an_analysis(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        write_report([], tmp_path)


def test_paper_trains_analyses_and_reports_the_three_settings(tmp_path, corpus):
    seen: list[str] = []

    def listeners(controller: str):
        return [lambda event: seen.append(controller)]

    result = run_paper(tmp_path, overrides=TINY, epochs=1, corpus=corpus, listeners_factory=listeners,
                       n=8, valid_batches=1, device="cpu")
    sessions = all_sessions(tmp_path)
    assert sorted(s.id for s in sessions) == sorted(result.sessions) and len(sessions) == 3
    assert [a.controller for a in result.analyses] == list(RUN_ORDER)
    assert sorted(set(seen)) == sorted(RUN_ORDER)
    for session in sessions:  # same seed, data and budget for all three
        start = read_events(session.log_path)[0]
        assert start.seed == 0 and start.settings["train"]["epochs"] == 1
        assert start.settings["model"]["hidden"] == 16 and session.status()["status"] == "finished"
    assert result.report.parent.parent == tmp_path and result.report.parent.name.startswith("paper-")
    check_folder(result.report.parent, result.analyses)
    text = format_paper_table(result)
    for controller in RUN_ORDER:
        for value in PAPER_TABLE1[controller].values():
            assert f"{value:.3f}" in text
    assert str(result.report) in text
    order = [text.index(f"│ {c}") for c in ("random", "supervised", "unsupervised")]
    assert order == sorted(order)  # the paper's row order


def test_paper_rejects_bad_settings_before_training(tmp_path):
    with pytest.raises(config.SettingsError, match="no setting"):
        run_paper(tmp_path, overrides=["train.nope=1"], epochs=1)
    assert not re.search("random|supervised", " ".join(p.name for p in tmp_path.iterdir()))


def test_paper_stops_with_a_one_line_error_when_a_run_is_stopped(tmp_path, corpus):
    with pytest.raises(PaperInterrupted) as excinfo:
        run_paper(tmp_path, overrides=TINY, epochs=1, corpus=corpus, device="cpu",
                  on_trainer=lambda trainer: trainer.request_stop())
    message = str(excinfo.value)
    assert "\n" not in message and "random run" in message and "stopped" in message
    assert [s.status()["status"] for s in all_sessions(tmp_path)] == ["stopped"]  # nothing after it ran
