"""Settings of a retrain: the standalone model, its training schedule, the presets, and overrides.

The model section is the search's ``ModelConfig`` (hidden size, BPTT, batch, learning rate, gradient
clipping, dropouts), so a retrain and a search at the same preset describe their models the same way;
the ``train`` section is the schedule of a from-scratch training. ``--set section.field=value``
goes through config.py's override machinery, like ``train``'s.

Where the ``paper`` numbers come from (the ENAS paper's fixed-architecture training at hidden 1000):

- model: ModelConfig's defaults, the ENAS-pytorch port's (carpedm20/ENAS-pytorch, config.py):
  embedding = hidden = 1000, BPTT 35, batch 64, SGD lr 20, gradient norm clipped at 0.25,
  dropouts: embedding 0.1 (``shared_dropoute``), input 0.65 (``shared_dropouti``), output 0.4
  (``shared_dropout``), DropConnect 0.5 on the recurrent weights; tied embedding and decoder
  (``tie_weights``); validation batch 10 (AWD-LSTM, salesforce/awd-lstm-lm main.py).
- schedule: 150 epochs (``max_epoch``); lr x 0.96 per epoch after epoch 15 (``shared_decay``,
  ``shared_decay_after``); L2 weight decay 1e-7 (``shared_l2_reg``; the ENAS paper's value for
  retraining); NT-ASGD with ``nonmono`` 5 (AWD-LSTM's default); test batch 1 (AWD-LSTM and the
  ENAS port's ``test_batch_size``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..config import ModelConfig, SettingsError
from ..search_space import Architecture, ArchitectureError
from ..sessions import RETRAIN

PRESETS = config.PRESETS
KIND = RETRAIN  # meta.json "kind" of a retrain session (a search session has "search" or none)


@dataclass
class ScheduleConfig:
    """How the standalone model is trained from scratch."""

    epochs: int = 150
    steps_per_epoch: int = 0  # 0: one full pass over the training data
    weight_decay: float = 1e-7  # L2 on every weight (SGD's weight_decay)
    lr_decay: float = 0.96  # lr x lr_decay per epoch after ``decay_after`` epochs; 1: constant lr
    decay_after: int = 15
    # NT-ASGD (AWD-LSTM): at a validation check, switch to averaged SGD when the validation
    # perplexity is worse than the best one recorded before the last ``nonmono`` checks; 0: never
    nonmono: int = 5
    test_batch_size: int = 1  # parallel streams of the test split (1: every token sees its full past)
    max_nonfinite: int = 5  # non-finite losses in a row before the run stops
    keep_checkpoints: int = 0  # epoch checkpoints kept; 0 keeps all
    checkpoint_every_s: float = 300.0  # a mid-epoch checkpoint this often (seconds); 0: epoch ends only
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default


@dataclass
class RetrainSettings:
    """Everything that defines a retrain: which cell, where it came from, and how it is trained."""

    arch: str = ""  # the cell, in the search space's text form
    source: str | None = None  # the search session the cell was derived in (None: given with --arch)
    preset: str = "paper"
    seed: int = 0
    device: str = "cpu"
    data: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    train: ScheduleConfig = field(default_factory=ScheduleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RetrainSettings":
        return config.from_dict(cls, data)

    @property
    def architecture(self) -> Architecture:
        return Architecture.parse(self.arch)


def cpu_preset() -> dict[str, dict[str, Any]]:
    """Small enough that a retrain finishes in a few minutes on 2 cores.

    The search's ``cpu`` model (hidden 64, batch 16, BPTT 35, SGD lr 10, one thread) with a fixed
    amount of work per epoch (150 steps, about one pass over the PTB-sized split the tests use), 20
    epochs, and the decay and the NT-ASGD check scaled to that length.

    SGD lr 10 rather than the paper's 20, as in the search's preset: at lr 20 the retrain of an
    identity/ReLU-heavy derived cell (``identity,0:identity,1:identity,1:relu,2:identity,1:relu,
    2:sigmoid,5:sigmoid,6:relu,1:relu,0:relu,0:identity``, unsupervised seed 0 on the PTB split)
    reached non-finite losses in its third epoch and failed, ending the whole ``paper`` comparison;
    at lr 10 the same cell trained to validation 398.76 in 6 epochs.
    """
    return {
        "model": {"hidden": 64, "batch_size": 16, "bptt": 35, "eval_batch_size": 10, "lr": 10.0},
        "train": {"epochs": 20, "steps_per_epoch": 150, "decay_after": 10, "lr_decay": 0.9, "nonmono": 3,
                  "test_batch_size": 10, "threads": 1},
    }


def resolve(arch: Architecture, preset: str, seed: int = 0, device: str = "cpu", data: str | None = None,
            overrides: list[str] | None = None, epochs: int | None = None, source: str | None = None,
            num_nodes: int | None = None) -> RetrainSettings:
    """Settings from a preset, then ``section.field=value`` overrides in order, then validated.

    ``num_nodes`` is the search space's (a source session's); without it, ``model.num_nodes`` (12
    unless overridden). A cell of another size is refused: it is not from that search space.
    """
    if preset not in PRESETS:
        raise SettingsError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    settings = RetrainSettings(arch=arch.to_text(), source=source, preset=preset, seed=seed, device=device,
                               data=data)
    if num_nodes is not None:
        settings.model.num_nodes = num_nodes
    if preset == "cpu":
        config.apply_preset(settings, cpu_preset())
    for item in overrides or []:
        config.apply_override(settings, item)
    if epochs is not None:
        settings.train.epochs = epochs
    validate(settings)
    return settings


def read_settings(data: Any) -> RetrainSettings:
    """A retrain's recorded settings dict as validated settings (SettingsError, TypeError... if unusable)."""
    settings = RetrainSettings.from_dict(data)
    validate(settings)
    return settings


def validate(settings: RetrainSettings) -> None:
    """Reject settings that cannot run, with a message naming the setting."""
    t = settings.train
    config.check_types(settings)
    try:
        arch = settings.architecture
    except ArchitectureError as exc:
        raise SettingsError(f"arch: {exc}") from None
    config.raise_failed(config.model_checks(settings.model) + [
        (settings.model.num_nodes == arch.num_nodes,
         f"the cell has {arch.num_nodes} nodes but the search space has {settings.model.num_nodes} "
         f"(model.num_nodes)"),
        (t.epochs >= 1, "train.epochs must be at least 1"),
        (t.steps_per_epoch >= 0, "train.steps_per_epoch must not be negative"),
        (t.weight_decay >= 0, "train.weight_decay must not be negative"),
        (0 < t.lr_decay <= 1, "train.lr_decay must be in (0, 1]"),
        (t.decay_after >= 0, "train.decay_after must not be negative"),
        (t.nonmono >= 0, "train.nonmono must not be negative"),
        (t.test_batch_size >= 1, "train.test_batch_size must be positive"),
        (t.max_nonfinite >= 1, "train.max_nonfinite must be positive"),
        (t.keep_checkpoints >= 0, "train.keep_checkpoints must not be negative"),
        (t.checkpoint_every_s >= 0, "train.checkpoint_every_s must not be negative"),
        (t.threads >= 0, "train.threads must not be negative"),
        (settings.seed >= 0, "seed must not be negative"),
    ])


def learning_rate(settings: RetrainSettings, epoch: int) -> float:
    """The schedule's learning rate in ``epoch`` (from 1): constant, then x lr_decay per epoch."""
    return settings.model.lr * settings.train.lr_decay ** max(0, epoch - settings.train.decay_after)
