"""Offline analysis of real (tiny) sessions: equal to recomputing by hand from the checkpoint."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from enas_tui import config, diagnostics
from enas_tui.analysis import Analysis, AnalysisError, analyze_session, build_models, format_table, to_csv
from enas_tui.checkpoints import CheckpointError
from enas_tui.config import Settings
from enas_tui.controller import Controller
from enas_tui.data import Corpus, DataError, batchify, load_corpus
from enas_tui.sessions import Session, SessionError, create_session, open_session
from enas_tui.supernet import SuperNet
from enas_tui.trainer import new_run

from helpers import TINY

TOP_KEYS = {"controller", "n", "epoch", "session", "spearman", "collapse_index", "paper", "fig2", "figures",
            "seed", "valid_batches", "checkpoint", "collapse_index_random"}
FIGURE_KEYS = {"archs", "max_probs", "max_probs_random", "hidden", "ppl", "ppl_random",
               "archs_random", "hidden_random"}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:6000], valid=full.valid[:2000],
                  test=full.test[:2000], source="generated corpus (test slice)")


def train(root, corpus, controller: str, epochs: int):
    settings = config.resolve(controller, "cpu", device="cpu", overrides=TINY, epochs=epochs)
    session = create_session(root, controller)
    assert new_run(settings, session, corpus, listeners=[]).run() == "finished"
    return session


@pytest.fixture(scope="module")
def sessions(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("sessions")
    return root, {"supervised": train(root, corpus, "supervised", 2), "random": train(root, corpus, "random", 1)}


@pytest.fixture(scope="module")
def supervised(sessions, corpus) -> Analysis:
    return analyze_session(sessions[1]["supervised"], epoch=2, n=12, seed=3, valid_batches=2, corpus=corpus)


def test_analysis_equals_recomputation_from_the_checkpoint(sessions, corpus, supervised):
    session = sessions[1]["supervised"]
    state = torch.load(session.epoch_checkpoint(2), weights_only=True)
    settings = Settings.from_dict(state["settings"])
    ctrl = Controller(settings.model.num_nodes, settings.ctrl)
    ctrl.load_state_dict(state["controller"])
    net = SuperNet(corpus.vocab_size, settings.model)
    net.load_state_dict(state["supernet"])
    with torch.no_grad():
        out = ctrl.sample(12, generator=torch.Generator().manual_seed(3))
    archs = out.architectures()
    valid = batchify(corpus.valid, settings.model.eval_batch_size)
    ppl = np.array([net.perplexity(a, valid, settings.model.bptt, max_batches=2) for a in archs])
    hidden = out.hidden.numpy()
    max_probs = diagnostics.max_action_probs(out.probs().numpy(), ctrl.sizes)

    assert supervised.spearman == diagnostics.table1(hidden, archs, ppl)
    assert supervised.trained.archs == [a.to_text() for a in archs]
    np.testing.assert_array_equal(supervised.trained.ppl, ppl)
    np.testing.assert_array_equal(supervised.trained.hidden, hidden)
    np.testing.assert_array_equal(supervised.trained.max_probs, max_probs)
    assert supervised.collapse_index == {"hidden": diagnostics.collapse_index(hidden),
                                         "max_prob": diagnostics.collapse_index(max_probs)}
    assert supervised.epoch == 2 and supervised.controller == "supervised" and supervised.n == 12
    assert all(supervised.spearman[m]["rho"] is not None for m in diagnostics.TABLE1_COLUMNS)


def test_default_epoch_is_the_latest_and_seed_changes_the_probe_set(sessions, corpus, supervised):
    latest = analyze_session(sessions[1]["supervised"], n=12, seed=3, valid_batches=2, corpus=corpus)
    assert latest.epoch == 2 and latest.spearman == supervised.spearman
    other = analyze_session(sessions[1]["supervised"], n=12, seed=4, valid_batches=2, corpus=corpus)
    assert other.trained.archs != supervised.trained.archs


def test_random_reference_is_the_random_settings_untrained_controller(sessions, corpus):
    state = torch.load(sessions[1]["random"].epoch_checkpoint(1), weights_only=True)
    settings = Settings.from_dict(state["settings"])
    _, _, fresh = build_models(settings, corpus.vocab_size)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state["controller"].items())
    # so a random session's probe set is its own reference, draw for draw
    analysis = analyze_session(sessions[1]["random"], n=10, seed=0, valid_batches=1, corpus=corpus)
    assert analysis.trained.archs == analysis.random.archs
    np.testing.assert_array_equal(analysis.trained.ppl, analysis.random.ppl)


def test_trained_controller_differs_from_the_random_reference(supervised):
    # both draw with the same generator seed, so after a tiny run the architectures may coincide;
    # the probabilities come from different weights
    assert not np.array_equal(supervised.trained.max_probs, supervised.random.max_probs)
    assert not np.array_equal(supervised.trained.hidden, supervised.random.hidden)


def test_json_has_the_documented_keys_and_round_trips(supervised):
    data = supervised.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert set(data) == TOP_KEYS
    assert set(data["spearman"]) == set(diagnostics.TABLE1_COLUMNS)
    assert all(set(v) == {"rho", "p"} for v in data["spearman"].values())
    assert set(data["collapse_index"]) == {"hidden", "max_prob"}
    assert data["paper"] == diagnostics.PAPER_TABLE1["supervised"]
    assert set(data["fig2"]) == {"trained", "random"} and data["fig2"]["trained"]["n"] == 12
    assert set(data["figures"]) == FIGURE_KEYS
    assert np.array(data["figures"]["max_probs"]).shape == (12, 23)
    assert np.array(data["figures"]["hidden"]).shape == (12, 16)
    assert len(data["figures"]["ppl_random"]) == 12
    again = Analysis.from_dict(json.loads(text))
    assert again.to_dict() == data
    assert "figures" not in supervised.to_dict(figures=False)


def test_nonfinite_perplexities_become_null_in_json(supervised):
    broken = Analysis.from_dict(supervised.to_dict())
    broken.trained.ppl[0] = np.inf
    data = json.loads(json.dumps(broken.to_dict(), allow_nan=False))
    assert data["figures"]["ppl"][0] is None and data["fig2"]["trained"]["nonfinite"] == 1


def test_table_shows_ours_beside_the_papers(supervised):
    text = format_table(supervised)
    paper = diagnostics.PAPER_TABLE1["supervised"]
    for measure in diagnostics.TABLE1_COLUMNS:
        assert f"{paper[measure]:.3f}" in text
        assert f"{supervised.spearman[measure]['rho']:.3f}" in text
    assert f"{supervised.collapse_index['hidden']:.4f}" in text
    assert f"{supervised.fig2['trained']['median']:.1f}" in text
    assert "\x1b[" not in text  # plain text, for pipes and files


def test_csv_has_one_row_per_measure(supervised):
    rows = list(csv.DictReader(io.StringIO(to_csv(supervised))))
    assert [r["measure"] for r in rows] == list(diagnostics.TABLE1_COLUMNS)
    for row in rows:
        assert float(row["rho"]) == supervised.spearman[row["measure"]]["rho"]
        assert float(row["p"]) == supervised.spearman[row["measure"]]["p"]
        assert float(row["paper_rho"]) == diagnostics.PAPER_TABLE1["supervised"][row["measure"]]


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def test_bad_session_ids_give_one_line_errors(sessions):
    root = sessions[0]
    with pytest.raises(SessionError) as excinfo:
        open_session(root, "no-such-session")
    assert "no-such-session" in _one_line(excinfo)
    with pytest.raises(SessionError) as excinfo:
        analyze_session(Session(root / "vanished"))
    assert "meta.json" in _one_line(excinfo)


def test_missing_checkpoints_give_one_line_errors(sessions, tmp_path):
    with pytest.raises(CheckpointError) as excinfo:
        analyze_session(sessions[1]["supervised"], epoch=7)
    assert "epoch 7" in _one_line(excinfo) and "have: 1, 2" in _one_line(excinfo)
    empty = create_session(tmp_path, "random")
    empty.write_meta({"id": empty.id})
    with pytest.raises(CheckpointError) as excinfo:
        analyze_session(empty)
    assert "no epoch checkpoint" in _one_line(excinfo)
    (empty.checkpoint_dir / "epoch-0001.pt").write_bytes(b"torn")
    with pytest.raises(CheckpointError) as excinfo:
        analyze_session(empty)
    assert "unreadable" in _one_line(excinfo)


def test_bad_parameters_and_mismatched_data_give_one_line_errors(sessions, corpus):
    with pytest.raises(AnalysisError) as excinfo:
        analyze_session(sessions[1]["random"], n=2)
    _one_line(excinfo)
    with pytest.raises(AnalysisError):
        analyze_session(sessions[1]["random"], valid_batches=0)
    smaller = Corpus(vocab=corpus.vocab[:100], train=corpus.train, valid=corpus.valid % 100,
                     test=corpus.test, source="a smaller corpus")
    with pytest.raises(DataError) as excinfo:
        analyze_session(sessions[1]["random"], corpus=smaller)
    assert "vocabulary" in _one_line(excinfo)
