"""The ``cpu`` preset's controller settings learn within the preset's budget (issue 7, item 7).

The real measurement (a 10-epoch search on PTB text per seed, minutes each) is
benchmarks/controller_learning.py; the README quotes it. Here the trainer runs its own loop with the
preset's controller section and budget (epochs, steps per epoch, samples per step, lr, baseline decay,
entropy weight, reward constant) on a tiny supernet whose reward perplexity is replaced by a toy
landscape with the magnitudes measured on PTB text at this preset (benchmarks/controller_learning.py
and the variance decomposition in config.cpu_preset's docstring): each architecture's log perplexity
spread with sd ~0.08 around log 500, a per-step validation-minibatch effect common to the step's
samples (sd 0.19, the dominant noise) and a small per-sample one (sd 0.025). The trainer's real
REINFORCE update, baseline and optimiser do the learning; only the reward's source is a stand-in.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from enas_tui import config
from enas_tui.data import Corpus, load_corpus
from enas_tui.diagnostics import max_action_probs
from enas_tui.search_space import ACTIVATIONS, decision_is_parent
from enas_tui.sessions import create_session
from enas_tui.trainer import Trainer, new_run

from helpers import TINY

README = Path(__file__).resolve().parents[1] / "README.md"
# log-perplexity penalty per node for each activation: the best cell is all tanh
PENALTY = dict(zip(ACTIVATIONS, (0.0, 0.02, 0.04, 0.06)))
MINIBATCH_SD, SAMPLE_SD = 0.19, 0.025


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:3000], valid=full.valid[:1000],
                  test=full.test[:1000], source="generated corpus (test slice)")


def toy_reward(landscape: bool):
    """A stand-in for Trainer._reward_ppl: the landscape (or none) plus the measured noise.

    The minibatch effect is drawn from the controller step's number, so every sample of one step
    shares it, as the samples of a step share their real validation minibatch.
    """
    noise = np.random.default_rng(7)

    def reward_ppl(self: Trainer, arch) -> float:
        shift = np.random.default_rng(1000 + self.ctrl_step).normal(0.0, MINIBATCH_SD)
        penalty = sum(PENALTY[ACTIVATIONS[a]] for a in arch.activations) if landscape else 0.0
        return 500.0 * math.exp(penalty + shift + noise.normal(0.0, SAMPLE_SD))

    return reward_ppl


def search(tmp_path, corpus, monkeypatch, landscape: bool):
    """The preset's controller schedule on a tiny supernet; (trained, untrained) controllers."""
    preset = config.cpu_preset()
    small = [item for item in TINY if not item.startswith("ctrl.")]  # the preset's controller, untouched
    settings = config.resolve("unsupervised", "cpu", seed=0, device="cpu", overrides=[
        *small, "train.shared_steps_per_epoch=1", "train.probe_every=1000", "train.derive_every=1000",
        "train.valid_batches=1"])
    assert settings.train.epochs == preset["train"]["epochs"]
    for key, value in preset["ctrl"].items():
        assert getattr(settings.ctrl, key) == value
    monkeypatch.setattr(Trainer, "_reward_ppl", toy_reward(landscape))
    trainer = new_run(settings, create_session(tmp_path, "unsupervised"), corpus, listeners=[])
    untrained = type(trainer.ctrl)(settings.model.num_nodes, settings.ctrl)
    untrained.load_state_dict(trainer.ctrl.state_dict())
    assert trainer.run() == "finished"
    return trainer.ctrl, untrained


def top_probs(ctrl) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the mean derive-mode top-action probability over 100 samples, and the mean
    probability of tanh at each activation step."""
    with torch.no_grad():
        out = ctrl.sample(100, generator=torch.Generator().manual_seed(0), mode="derive")
    probs = out.probs().numpy()
    acts = ~np.array(decision_is_parent(ctrl.num_nodes))
    return max_action_probs(probs, ctrl.sizes).mean(axis=0), probs[:, acts, 0].mean(axis=0)


@pytest.mark.timeout(120)
def test_cpu_preset_controller_learns_a_reward_landscape_it_could_not_learn_from_noise(tmp_path, corpus, monkeypatch):
    trained, untrained = search(tmp_path / "landscape", corpus, monkeypatch, landscape=True)
    top, tanh = top_probs(trained)
    top0, tanh0 = top_probs(untrained)
    acts = ~np.array(decision_is_parent(trained.num_nodes))
    gap = top[acts] - top0[acts]
    # the rewarded activation becomes the likely one at (nearly) every activation step
    assert (tanh > 0.4).sum() >= 10 and tanh.mean() > 0.5, tanh
    assert gap.mean() > 0.2 and (gap > 0).sum() >= 11, gap
    assert abs(tanh0.mean() - 0.25) < 0.02  # the untrained controller is near uniform

    # the same noise without a landscape moves it far less: the bias above is learnt, not drift
    drifted, _ = search(tmp_path / "flat", corpus, monkeypatch, landscape=False)
    noise_gap = top_probs(drifted)[0][acts] - top0[acts]
    assert noise_gap.mean() < gap.mean() / 3, (noise_gap.mean(), gap.mean())


def test_readme_presets_table_states_the_cpu_controller_settings():
    """The README's presets table says what the preset does: a change to one must change the other."""
    row = next(line for line in README.read_text().splitlines() if line.startswith("| controller |"))
    cpu_cell, paper_cell = row.split("|")[2], row.split("|")[3]
    for cell, c in ((cpu_cell, config.cpu_preset()["ctrl"]), (paper_cell, vars(config.ControllerConfig()))):
        found = re.search(r"(\d+) steps/epoch of (\d+) samples?, Adam lr (\d+(?:\.\d+)?(?:e-?\d+)?)", cell)
        assert found, cell
        assert (int(found[1]), int(found[2]), float(found[3])) == (c["steps_per_epoch"], c["batch_size"], c["lr"]), cell
