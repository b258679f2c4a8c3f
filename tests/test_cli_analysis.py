"""`analyze`, `report` and `paper` from the command line (in-process, tiny settings)."""

from __future__ import annotations

import json

import pytest

from enas_tui.cli import main
from enas_tui.sessions import all_sessions

from helpers import TINY

SETS = [arg for item in TINY for arg in ("--set", item)]


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    with pytest.raises(SystemExit) as done:
        main(["train", "--controller", "supervised", "--headless", "--epochs", "2", "--sessions-dir", str(root), *SETS])
    assert done.value.code == 0
    return root, all_sessions(root)[0]


def test_analyze_json_has_the_documented_keys(trained, capsys):
    root, session = trained
    code, out, _ = run_cli(capsys, "analyze", session.id, "--n", "20", "--format", "json", "--sessions-dir", str(root))
    assert code == 0
    result = json.loads(out)
    assert result["controller"] == "supervised" and result["n"] == 20
    assert set(result["spearman"]) == {"common_activations", "common_connections", "ged", "abs_perf_diff"}
    assert all(set(v) == {"rho", "p"} for v in result["spearman"].values())
    assert set(result["collapse_index"]) >= {"hidden", "max_prob"}


def test_analyze_table_and_csv(trained, capsys):
    root, session = trained
    code, out, _ = run_cli(capsys, "analyze", session.id, "--n", "20", "--checkpoint", "1", "--sessions-dir", str(root))
    assert code == 0 and "-0.404" in out  # the paper's supervised value beside ours
    code, out, _ = run_cli(capsys, "analyze", session.id, "--n", "20", "--format", "csv", "--sessions-dir", str(root))
    assert code == 0 and out.splitlines()[0].startswith("measure,rho,p")


def test_report_writes_the_folder(trained, capsys, tmp_path):
    root, session = trained
    code, out, _ = run_cli(capsys, "report", session.id, "--n", "20", "--out", str(tmp_path / "r"),
                           "--sessions-dir", str(root))
    assert code == 0 and "report written" in out
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"report.md", "table1.json", "fig1.png", "fig2.svg", "fig3.png", "fig4.svg", "table1.png"} <= names


@pytest.mark.parametrize("args, code, fragment", [
    (["analyze", "no-such-session"], 1, "no session 'no-such-session'"),
    (["analyze", "SESSION", "--checkpoint", "9"], 1, "no checkpoint for epoch 9"),
    (["analyze", "SESSION", "--format", "xml"], 2, "unknown format 'xml'"),
    (["analyze", "SESSION", "--n", "2"], 2, "--n must be at least 3"),
    (["report", "SESSION", "missing"], 1, "no session 'missing'"),
    (["paper", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["paper", "--set", "model.x=1"], 2, "model has no setting 'x'"),
])
def test_bad_analysis_input_is_one_line(trained, capsys, args, code, fragment):
    root, session = trained
    args = [session.id if a == "SESSION" else a for a in args]
    got, _, err = run_cli(capsys, *args, "--sessions-dir", str(root))
    assert got == code and fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_paper_trains_three_controllers_and_reports(tmp_path, capsys):
    code, out, err = run_cli(capsys, "paper", "--epochs", "1", "--sessions-dir", str(tmp_path),
                             "--out", str(tmp_path / "report"), *SETS)
    assert code == 0, err
    assert sorted(s.meta()["controller"] for s in all_sessions(tmp_path)) == ["random", "supervised", "unsupervised"]
    for controller in ("random", "supervised", "unsupervised"):
        assert controller in out
    assert "-0.315" in out and "report: " in out  # the paper's unsupervised value is shown
    assert (tmp_path / "report" / "report.md").exists()
