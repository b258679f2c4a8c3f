"""Offline analysis of real (tiny) sessions: equal to recomputing by hand from the checkpoint."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from enas_tui import cell_shape, config, diagnostics, embedding
from enas_tui.analysis import (
    UNTRAINED_REFERENCE,
    Analysis,
    AnalysisError,
    analyze_session,
    build_models,
    format_table,
    pair_fig2,
    to_csv,
)
from enas_tui.checkpoints import CheckpointError
from enas_tui.config import Settings
from enas_tui.controller import Controller
from enas_tui.data import Corpus, DataError, batchify, load_corpus
from enas_tui.search_space import Architecture
from enas_tui.session_log import read_events
from enas_tui.sessions import Session, SessionError, create_session, open_session
from enas_tui.supernet import SuperNet
from enas_tui.trainer import new_run

from helpers import TINY

TOP_KEYS = {"controller", "n", "epoch", "session", "spearman", "collapse_index", "paper", "fig2", "figures",
            "seed", "valid_batches", "checkpoint", "collapse_index_random", "run_seed", "data", "probe", "loss",
            "fig2_reference", "live", "cell_shape", "embedding"}
FIGURE_KEYS = {"archs", "max_probs", "max_probs_random", "hidden", "ppl", "ppl_random",
               "archs_random", "hidden_random", "ppl_reference", "cell_shape_search"}


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
    with torch.no_grad():  # the session's probe settings: derive mode, emit_last
        out = ctrl.sample(12, generator=torch.Generator().manual_seed(3), mode="derive", state="emit_last")
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
    assert set(supervised.spearman) == set(diagnostics.ALL_MEASURES)  # every reading is computed
    assert all(supervised.spearman[m]["rho"] is not None for m in diagnostics.ALL_MEASURES)
    assert (supervised.probe_mode, supervised.probe_state) == ("derive", "emit_last")
    assert supervised.loss == {"supervised_reduction": "mean", "supervised_weight": 1.0}
    assert supervised.run_seed == 0


def test_probe_mode_and_state_can_be_chosen(sessions, corpus, supervised):
    other = analyze_session(sessions[1]["supervised"], epoch=2, n=12, seed=3, valid_batches=2, corpus=corpus,
                            probe_mode="train", probe_state="after_last")
    assert (other.probe_mode, other.probe_state) == ("train", "after_last")
    ceiling = math.exp(2.5) / (math.exp(2.5) + 3 * math.exp(-2.5))  # 4 options under the 2.5 tanh constant
    activation_steps = other.trained.max_probs[:, 0::2]  # every activation decision has 4 options
    assert activation_steps.max() <= ceiling + 1e-6
    assert not np.array_equal(other.trained.hidden, supervised.trained.hidden)
    with pytest.raises(AnalysisError, match="probe mode"):
        analyze_session(sessions[1]["supervised"], n=5, corpus=corpus, probe_mode="greedy")


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


def test_fig2_pairs_each_run_with_the_random_sessions_samples_on_its_own_weights(sessions, corpus, supervised):
    random_session = sessions[1]["random"]
    rand = analyze_session(random_session, n=12, seed=3, valid_batches=2, corpus=corpus)
    alone = supervised.to_dict(figures=False)["fig2_reference"]
    assert alone == {"label": UNTRAINED_REFERENCE, "session": None}  # single session: named for what it is
    np.testing.assert_array_equal(supervised.reference.ppl, supervised.random.ppl)

    paired_sup, paired_rand = pair_fig2([supervised, rand])
    # by hand: the random session's controller samples on the random session's own shared weights
    state = torch.load(random_session.epoch_checkpoint(1), weights_only=True)
    settings = Settings.from_dict(state["settings"])
    ctrl = Controller(settings.model.num_nodes, settings.ctrl)
    ctrl.load_state_dict(state["controller"])
    net = SuperNet(corpus.vocab_size, settings.model)
    net.load_state_dict(state["supernet"])
    with torch.no_grad():
        archs = ctrl.sample(12, generator=torch.Generator().manual_seed(3), mode="derive").architectures()
    valid = batchify(corpus.valid, settings.model.eval_batch_size)
    expected = np.array([net.perplexity(a, valid, settings.model.bptt, max_batches=2) for a in archs])
    np.testing.assert_array_equal(paired_sup.reference.ppl, expected)
    assert paired_sup.reference.session == random_session.id and random_session.id in paired_sup.reference.label
    assert paired_sup.fig2["random"] == diagnostics.ppl_summary(expected)
    # the same untrained architectures on the supervised run's weights score differently
    assert supervised.random.archs == [a.to_text() for a in archs]
    assert not np.array_equal(supervised.random.ppl, expected)
    assert paired_rand.reference.session == random_session.id  # a random session is its own reference
    assert supervised.reference.session is None  # pairing returns copies


def test_trained_controller_differs_from_the_random_reference(supervised):
    # both draw with the same generator seed, so after a tiny run the architectures may coincide;
    # the probabilities come from different weights
    assert not np.array_equal(supervised.trained.max_probs, supervised.random.max_probs)
    assert not np.array_equal(supervised.trained.hidden, supervised.random.hidden)


def test_json_has_the_documented_keys_and_round_trips(supervised):
    data = supervised.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert set(data) == TOP_KEYS
    assert set(data["spearman"]) == set(diagnostics.ALL_MEASURES)
    assert all(set(v) == {"rho", "p"} for v in data["spearman"].values())
    assert data["probe"] == {"mode": "derive", "state": "emit_last"}
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


def test_cell_shape_and_embedding_numbers(sessions, supervised):
    data = supervised.to_dict()
    shape, maps = data["cell_shape"], data["embedding"]
    trained = cell_shape.summarize(supervised.trained.archs)
    assert shape["trained"] == trained.to_dict() and shape["untrained"] == cell_shape.summarize(
        supervised.random.archs).to_dict()
    assert shape["uniform"] == cell_shape.uniform_reference(12).to_dict()
    # the search's history is every live probe set of the session's log up to the analysed epoch
    events = read_events(sessions[1]["supervised"].log_path)
    probes = [e for e in events if e.type == "probe" and e.epoch <= supervised.epoch]
    history = data["figures"]["cell_shape_search"]
    assert history["steps"] == [e.step for e in probes]
    assert history["depth"][0][1] == cell_shape.summarize(probes[0].archs).depth.median
    derived = [e for e in events if e.type == "derived" and e.epoch <= supervised.epoch][-1].arch
    assert shape["derived"]["arch"] == derived
    assert (shape["derived"]["depth"], shape["derived"]["width"]) == cell_shape.depth_width(Architecture.parse(derived))
    p = embedding.project(supervised.trained.hidden)
    assert maps["trained"]["explained"] == pytest.approx(list(p.explained))
    assert maps["trained"]["spread"] == pytest.approx(supervised.collapse_index["hidden"])  # one definition
    table = format_table(supervised)
    assert "Cell shape" in table and "Embedding map" in table
    assert f"{trained.depth.median:g} [{trained.depth.q25:g}-{trained.depth.q75:g}]" in table


def test_output_of_the_previous_version_is_read_with_measure_names(supervised):
    old = supervised.to_dict()
    for key in ("run_seed", "data", "probe", "loss", "fig2_reference", "live", "cell_shape", "embedding"):
        del old[key]
    del old["figures"]["ppl_reference"]
    del old["figures"]["cell_shape_search"]
    old["spearman"] = {"common_activations": {"rho": -0.2, "p": 0.1}, "common_connections": {"rho": 0.1, "p": 0.3},
                       "ged": {"rho": 0.3, "p": 0.01}, "abs_perf_diff": {"rho": 0.0, "p": 0.9}}
    again = Analysis.from_dict(old)
    assert set(again.spearman) == {"common_activations_aligned", "common_connections", "ged_aligned", "abs_perf_diff"}
    assert (again.probe_mode, again.probe_state) == ("train", "emit_last")  # how the old probes were taken
    assert again.reference.label == UNTRAINED_REFERENCE


def test_live_probe_is_the_dashboards_last_probe_of_the_epoch(sessions, supervised):
    events = read_events(sessions[1]["supervised"].log_path)
    last = [e for e in events if e.type == "diagnostics" and e.epoch == 2][-1]
    probe = [e for e in events if e.type == "probe" and (e.epoch, e.step) == (last.epoch, last.step)][0]
    live = supervised.live
    assert live["step"] == last.step and live["n"] == last.n and live["spearman"] == last.spearman
    assert live["collapse_index"] == last.collapse_index and live["mode"] == "derive"
    assert live["same_sample"] is (list(probe.archs) == supervised.trained.archs)
    assert live["same_sample"] is False  # the analysis draws its own sample


def test_nonfinite_perplexities_become_null_in_json(supervised):
    broken = Analysis.from_dict(supervised.to_dict())
    broken.trained.ppl[0] = np.inf
    data = json.loads(json.dumps(broken.to_dict(), allow_nan=False))
    assert data["figures"]["ppl"][0] is None and data["fig2"]["trained"]["nonfinite"] == 1


def _table_rows(text: str, title: str) -> list[list[str]]:
    """Cells of the rich table whose title starts with ``title`` (rows between its rules)."""
    block = text.split(title, 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("│┃").split("│")] for line in block.splitlines() if line.startswith("│")]


def test_table_shows_the_default_readings_beside_the_papers_and_the_others_apart(supervised):
    text = format_table(supervised)
    paper = diagnostics.PAPER_TABLE1["supervised"]
    main = _table_rows(text, "Table 1:")
    ours = main[0]
    shown = ["common_activations_paper", "common_connections", "ged_paper", "abs_perf_diff"]
    assert ours[2:] == [f"{supervised.spearman[m]['rho']:.3f}" for m in shown]
    assert main[2][2:] == [f"{paper[c]:.3f}" for c in diagnostics.TABLE1_COLUMNS]
    assert "# common activations (paper)" in text and "GED (paper)" in text.split("Other readings")[0]
    apart = _table_rows(text, "Other readings")
    assert apart[0][2:] == [f"{supervised.spearman[m]['rho']:.3f}"
                            for m in ("common_activations_aligned", "ged_aligned", "ged_exact")]
    assert f"{supervised.collapse_index['hidden']:.4f}" in text
    assert f"{supervised.fig2['trained']['median']:.1f}" in text
    assert UNTRAINED_REFERENCE in text  # Fig. 2's reference, named for what it is
    assert "mode derive, state emit_last" in text and "supervised loss: mean x 1.0" in text
    assert "\x1b[" not in text  # plain text, for pipes and files

    exact = format_table(supervised, {"ged": "exact", "common_activations": "aligned"})
    assert _table_rows(exact, "Table 1:")[0][2:] == [f"{supervised.spearman[m]['rho']:.3f}" for m in (
        "common_activations_aligned", "common_connections", "ged_exact", "abs_perf_diff")]
    assert _table_rows(exact, "Other readings")[0][2:] == [f"{supervised.spearman[m]['rho']:.3f}" for m in (
        "common_activations_paper", "ged_paper", "ged_aligned")]


def test_csv_has_one_row_per_measure_and_the_papers_value_on_the_shown_reading(supervised):
    rows = list(csv.DictReader(io.StringIO(to_csv(supervised))))
    assert [r["measure"] for r in rows] == list(diagnostics.ALL_MEASURES)
    for row in rows:
        assert float(row["rho"]) == supervised.spearman[row["measure"]]["rho"]
        assert float(row["p"]) == supervised.spearman[row["measure"]]["p"]
    shown = {r["measure"]: r for r in rows if r["shown"] == "1"}
    assert set(shown) == {"common_activations_paper", "common_connections", "ged_paper", "abs_perf_diff"}
    for measure, row in shown.items():
        assert float(row["paper_rho"]) == diagnostics.PAPER_TABLE1["supervised"][row["column"]]
    assert all(r["paper_rho"] == "" for r in rows if r["shown"] == "0")


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
