"""`analyze`, `report` and `paper` from the command line (in-process, tiny settings)."""

from __future__ import annotations

import json

import pytest

from enas_tui.cli import main
from enas_tui.diagnostics import ALL_MEASURES
from enas_tui.sessions import all_sessions

from helpers import RETRAIN_TINY, TINY

SETS = [arg for item in TINY for arg in ("--set", item)]
RETRAIN = ["--retrain-epochs", "1", *(arg for item in RETRAIN_TINY for arg in ("--retrain-set", item))]


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
    assert set(result["spearman"]) == set(ALL_MEASURES)  # every reading, keyed by measure
    assert all(set(v) == {"rho", "p"} for v in result["spearman"].values())
    assert set(result["collapse_index"]) == {"hidden", "max_prob"}
    assert all(0 <= v <= 1 for v in result["collapse_index"].values())  # scale-free
    assert result["probe"] == {"mode": "derive", "state": "emit_last"}
    assert result["loss"] == {"supervised_reduction": "mean", "supervised_weight": 1.0}
    code, out, _ = run_cli(capsys, "analyze", session.id, "--n", "20", "--format", "json", "--probe-mode", "train",
                           "--probe-state", "after_last", "--sessions-dir", str(root))
    assert code == 0 and json.loads(out)["probe"] == {"mode": "train", "state": "after_last"}


def test_analyze_table_and_csv(trained, capsys):
    root, session = trained
    code, out, _ = run_cli(capsys, "analyze", session.id, "--n", "20", "--checkpoint", "1", "--sessions-dir", str(root))
    assert code == 0 and "-0.404" in out  # the paper's supervised value beside ours
    table, apart = out.split("Other readings", 1)
    assert "GED (paper)" in table and "# common activations (paper)" in table
    assert "GED (exact)" in apart and "GED (aligned)" in apart and "# common activations (aligned)" in apart
    code, out, _ = run_cli(capsys, "analyze", session.id, "--n", "20", "--checkpoint", "1", "--ged", "exact",
                           "--activations", "aligned", "--sessions-dir", str(root))
    table, apart = out.split("Other readings", 1)
    assert code == 0 and "GED (exact)" in table and "GED (paper)" in apart and "(aligned)" in table
    code, out, _ = run_cli(capsys, "analyze", session.id, "--n", "20", "--format", "csv", "--ged", "aligned",
                           "--sessions-dir", str(root))
    assert code == 0 and out.splitlines()[0] == "measure,column,shown,rho,p,paper_rho"
    assert any(line.startswith("ged_aligned,ged,1,") for line in out.splitlines())


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
    (["paper", "--seeds", "0"], 2, "--seeds must be at least 1"),
    (["paper", "--retrain-epochs", "0"], 2, "--retrain-epochs must be at least 1"),
    (["paper", "--retrain-set", "train.nope=1"], 2, "train has no setting 'nope'"),
    (["paper", "--no-retrain", "--retrain-epochs", "2"], 2, "--no-retrain skips the retrains"),
    (["paper", "--ged", "fast"], 2, "--ged: unknown reading 'fast' for ged (choose from paper, aligned, exact)"),
    (["analyze", "SESSION", "--activations", "exact"], 2, "--activations: unknown reading 'exact'"),
    (["report", "SESSION", "--ged", "approx"], 2, "--ged: unknown reading 'approx'"),
    (["analyze", "SESSION", "--probe-mode", "greedy"], 2, "probe mode must be one of derive, train"),
])
def test_bad_analysis_input_is_one_line(trained, capsys, args, code, fragment):
    root, session = trained
    args = [session.id if a == "SESSION" else a for a in args]
    got, _, err = run_cli(capsys, *args, "--sessions-dir", str(root))
    assert got == code and fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_paper_trains_three_controllers_retrains_their_cells_and_reports(tmp_path, capsys):
    code, out, err = run_cli(capsys, "paper", "--epochs", "1", "--n", "10", "--sessions-dir", str(tmp_path),
                             "--out", str(tmp_path / "report"), *SETS, *RETRAIN)
    assert code == 0, err
    searches = [s for s in all_sessions(tmp_path) if s.meta().get("kind", "search") == "search"]
    retrains = [s for s in all_sessions(tmp_path) if s.meta().get("kind") == "retrain"]
    assert sorted(s.meta()["controller"] for s in searches) == ["random", "supervised", "unsupervised"]
    for controller in ("random", "supervised", "unsupervised"):
        assert controller in out
    assert "-0.315" in out and "report: " in out  # the paper's unsupervised value is shown
    assert "seed 0," in out and "Other readings" in out and "retrains 1 epochs" in out
    verdicts = [line.split()[0] for line in out.splitlines()
                if line.split()[:1] in (["PASS"], ["FAIL"], ["UNDECIDED"])]
    assert verdicts == ["UNDECIDED"] * 6  # one seed: no intervals
    assert "no interval from 1 value(s)" in out
    # the retrain column: each search's derived cell, retrained; the paper's first finding as a line
    assert sorted(s.meta()["source"]["controller"] for s in retrains) == ["random", "supervised", "unsupervised"]
    tests = {s.meta()["source"]["controller"]: s.status()["test_ppl"] for s in retrains}
    table = out.split("Retrained from scratch", 1)[1].split("cells:", 1)[0]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("│").split("│")]
                                          for line in table.splitlines() if line.startswith("│"))}
    for controller, test in tests.items():  # controller, seed, search-phase, valid, test ppl, session
        assert rows[controller][1] == "0" and rows[controller][4] == f"{test:.2f}"
    gap = tests["random"] - tests["unsupervised"]
    assert (f"trained controller (unsupervised) better than random search with weight sharing: "
            f"{'yes' if gap > 0 else 'no'}, by {gap:+.2f} ppl (one seed: no interval)") in out
    assert "(f) retrained from scratch" in out
    assert (tmp_path / "report" / "report.md").exists() and (tmp_path / "report" / "retrain.png").exists()


def test_paper_without_the_retrain_step(tmp_path, capsys):
    code, out, err = run_cli(capsys, "paper", "--epochs", "1", "--n", "8", "--no-retrain", "--sessions-dir",
                             str(tmp_path), "--out", str(tmp_path / "report"), *SETS)
    assert code == 0, err
    assert all(s.meta().get("kind", "search") == "search" for s in all_sessions(tmp_path))
    assert len(all_sessions(tmp_path)) == 3 and "no retrain" in out and "(f) " not in out
    assert not (tmp_path / "report" / "retrain.png").exists()


def test_paper_seeds_prints_intervals_and_claim_lines(tmp_path, capsys):
    code, out, err = run_cli(capsys, "paper", "--epochs", "1", "--seeds", "2", "--seed", "5", "--n", "8",
                             "--sessions-dir", str(tmp_path), "--out", str(tmp_path / "report"), *SETS, *RETRAIN)
    assert code == 0, err
    searches = [s for s in all_sessions(tmp_path) if s.meta().get("kind", "search") == "search"]
    seeds = sorted((s.meta()["controller"], s.meta()["seed"]) for s in searches)
    assert seeds == sorted((c, s) for c in ("random", "supervised", "unsupervised") for s in (5, 6))
    assert "seeds 5..6 (2 runs per controller)" in out
    table = out.split("Table 1 over seeds", 1)[1].split("Other readings", 1)[0]
    assert table.count("±") >= 9  # three controllers x (three correlations at least)
    assert "+0.163" in table  # the paper's supervised |perf diff| beside ours
    lines = [line.strip() for line in out.splitlines()]
    for key in "abcdef":
        claim = [line for line in lines if f"({key}) " in line and line.split()[0] in ("PASS", "FAIL", "UNDECIDED")]
        assert len(claim) == 1, key
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [c["outcome"] for c in summary["claims"]] == [
        next(line.split()[0] for line in lines if f"({key}) " in line) for key in "abcdef"]
    assert "Retrained cells over seeds" in out and summary["retrain_verdict"] in out
    assert "over 2 seeds)" in summary["retrain_verdict"]
    assert (tmp_path / "report" / "table1_seeds.png").exists()


def test_progress_bars_draw_on_a_terminal_and_stay_off_pipes():
    import io

    from rich.console import Console

    from enas_tui.cli import progress_bars

    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    with progress_bars(terminal) as progress:
        progress("scoring 3 probe architectures", 1, 3)
        progress("scoring 3 probe architectures", 3, 3)
    assert "scoring 3 probe architectures" in terminal.file.getvalue()
    pipe = Console(file=io.StringIO(), force_terminal=False)
    with progress_bars(pipe) as progress:
        assert progress is None
    assert pipe.file.getvalue() == ""
