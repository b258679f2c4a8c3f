"""Settings for a search: dataclasses, the ``cpu`` and ``paper`` presets, and ``key=value`` overrides.

Every number the trainer uses lives here, so a run is fully described by its resolved Settings
(printed at start and recorded in the session's meta.json) and any of them can be changed from the
command line with ``--set section.field=value``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

CONTROLLERS = ("random", "unsupervised", "supervised")
PRESETS = ("cpu", "paper")
PROBE_MODES = ("derive", "train")  # train.probe_mode
PROBE_STATES = ("emit_last", "after_last")  # train.probe_state
SUPERVISED_REDUCTIONS = ("mean", "sum")  # buffer.supervised_reduction
LIVE_GED_READINGS = ("paper", "exact")  # train.live_ged: the costly GED readings


class SettingsError(ValueError):
    """A bad preset, override key or value; the message is shown to the user as is."""


@dataclass
class ModelConfig:
    """The shared supernet (paper scale: hidden 1000, BPTT 35, batch 64, SGD lr 20, clip 0.25)."""

    num_nodes: int = 12
    hidden: int = 1000
    bptt: int = 35
    batch_size: int = 64
    eval_batch_size: int = 10
    lr: float = 20.0
    grad_clip: float = 0.25
    # every time step's state (the cell's output and its next input) has each row rescaled to at
    # most this L2 norm inside the recurrence, as in the PyTorch ENAS port; 0: off
    max_hidden_norm: float = 25.0
    dropout_emb: float = 0.1
    dropout_in: float = 0.65
    dropout_out: float = 0.4
    dropconnect: float = 0.5


@dataclass
class ControllerConfig:
    """The LSTM controller and its REINFORCE update (ENAS defaults)."""

    hidden: int = 100
    temperature: float = 5.0
    tanh_constant: float = 2.5
    lr: float = 3.5e-4
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.95
    reward_c: float = 80.0
    steps_per_epoch: int = 2000
    batch_size: int = 1


@dataclass
class BufferConfig:
    """The memory buffer and the supervised loss (the paper's numbers; epochs count from 1)."""

    start_epoch: int = 5
    add_per_epoch: int = 1000
    capacity: int = 10000
    replace_per_epoch: int = 100
    supervised_start_epoch: int = 10
    supervised_batch: int = 100
    supervised_weight: float = 1.0  # L = L_PG + weight * L_sup
    # How L_sup reduces the teacher-forced cross-entropy over the 2N-1 decisions of each buffer
    # architecture: "mean" over decisions and architectures (the authors' code; about 1.5 nats at
    # the start), or "sum" over decisions, mean over architectures (about 23x larger).
    supervised_reduction: str = "mean"


@dataclass
class TrainConfig:
    """The schedule: epochs, how much work per epoch, and how often to derive, probe and save."""

    epochs: int = 150
    shared_steps_per_epoch: int = 0  # 0: one full pass over the training data
    valid_batches: int = 0  # validation minibatches for the per-epoch and derived ppl; 0: all
    derive_every: int = 5
    derive_samples: int = 100
    derive_batches: int = 2  # validation minibatches each candidate is scored on
    probe_every: int = 100  # controller steps between probes (and rolling diagnostics)
    probe_size: int = 100
    # How probes read the controller (Fig. 1/3/4, Table 1): "derive" = logits / temperature, as the
    # authors analysed it; "train" = with the training-time tanh constant.
    probe_mode: str = "derive"
    # Which LSTM state is the final hidden state: "emit_last" = the output that emits the last
    # decision (the authors' and ENAS's; the last decision never reaches it); "after_last" = the
    # state after feeding the last decision back in.
    probe_state: str = "emit_last"
    perf_every: int = 5  # probes between the (costly) absolute-performance column
    perf_batches: int = 1
    # Costly GED readings computed on the probes that also compute the performance column:
    # comma-separated from "paper", "exact"; "none" for neither (the cheap measures run every probe).
    live_ged: str = "paper"
    max_nonfinite: int = 5  # non-finite losses in a row before the run stops
    keep_checkpoints: int = 0  # epoch checkpoints kept; 0 keeps all
    checkpoint_every_s: float = 300.0  # a mid-epoch checkpoint this often (seconds); 0: epoch ends only
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default


@dataclass
class Settings:
    """Everything that defines a run."""

    controller: str = "supervised"
    preset: str = "paper"
    seed: int = 0
    device: str = "cpu"
    data: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    ctrl: ControllerConfig = field(default_factory=ControllerConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Settings":
        return from_dict(cls, data)


def sections(settings: Any) -> dict[str, Any]:
    """The settings sections of a settings dataclass (its dataclass-valued fields), by name.

    Overrides, ``describe`` and ``from_dict`` work on any such object (the search's Settings, the
    retrain's RetrainSettings), so each settings class states its sections once, as fields.
    """
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if dataclasses.is_dataclass(getattr(settings, f.name))}


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a settings dataclass from ``to_dict`` output, ignoring keys this version lacks."""
    defaults = cls()
    known_sections = sections(defaults)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            continue
        if key in known_sections:
            section_cls = type(known_sections[key])
            known = {f.name for f in dataclasses.fields(section_cls)}
            kwargs[key] = section_cls(**{k: v for k, v in value.items() if k in known})
        else:
            kwargs[key] = value
    return cls(**kwargs)


def cpu_preset() -> dict[str, dict[str, Any]]:
    """Small enough that a full supervised run (buffer and supervised phases) takes minutes on 2 cores.

    SGD lr 10 rather than the paper's 20: at hidden 64 on the generated corpus, lr 20 let the shared
    weights of the random run diverge (non-finite losses from epoch 3, the run failing at epoch 8).

    Batch 16 rather than 32: at hidden 64 a step costs little more at 32, so halving the batch doubles
    the updates per minute, which is what moves perplexity off its unigram plateau in the first minute.

    The controller (issue 7, item 7): 40 steps per epoch of 16 samples, Adam lr 5e-3; baseline decay
    0.95, entropy weight 1e-4 and reward 80/ppl as ENAS. With ENAS's lr 3.5e-4 and 4 samples a step
    it did not learn on PTB text in 10 epochs (benchmarks/controller_learning.py, seed 0: mean top-
    action probability 0.267 vs the untrained 0.264, summed entropy 34.13 -> 34.11). Its reward is
    weak and noisy: on this preset's weights a sample's log perplexity varies with the architecture
    by sd ~0.08, but with the validation minibatch (shared by a step's samples) by sd ~0.19. Samples
    per step: 16 averages the per-sample REINFORCE terms, so each update's noise is about a quarter
    of one sample's for the same expected direction, at little cost (a sample is one forward pass
    on one minibatch). Learning rate: with the noise down, larger Adam steps follow the signal
    instead of drifting: at 20 steps of 16, lr 3.5e-3 gave a gap of +0.10 / +0.20 / +0.25 over
    seeds 0-2 and lr 5e-3 +0.12 / +0.36 / +0.44. Steps: 40 steps of 16 at lr 5e-3 gave +0.48 / +0.43
    / +0.47 (top-action probability 0.74 / 0.70 / 0.74 vs 0.26, above at 22 of 23 steps, the 23rd
    being node 1's parent, which has one option), entropy 34.13 -> 12.5 / 14.4 / 12.9, and its
    samples' median perplexity 357 / 410 / 380 against the untrained controller's 501 / 522 / 513 on
    the same weights, in 125-154 s of training per run on the loaded 2-core machine. Baseline decay
    and reward constant were not tuned: the noise that dominates changes with every step's
    minibatch, which no average of past steps' rewards can predict.
    """
    return {
        "model": {"hidden": 64, "batch_size": 16, "bptt": 35, "eval_batch_size": 10, "lr": 10.0},
        "ctrl": {"steps_per_epoch": 40, "batch_size": 16, "lr": 5e-3},  # see the docstring
        "buffer": {
            "start_epoch": 3,
            "add_per_epoch": 200,
            "capacity": 1000,
            "replace_per_epoch": 20,
            "supervised_start_epoch": 5,
            "supervised_batch": 100,
        },
        "train": {
            "epochs": 10,
            "shared_steps_per_epoch": 120,
            "derive_every": 5,
            "derive_samples": 100,
            "probe_every": 20,
            "perf_every": 4,  # the performance column costs 100 forward passes: keeps probes under 10%
            # ged_paper searches each of 4,950 pairs (~2 ms each): one such probe every other epoch
            # added 82% to training time in benchmarks/diagnostics_overhead.py, so the live Table 1
            # keeps to the closed-form measures here; analyze, report and paper compute every GED
            "live_ged": "none",
            # one thread: at hidden 64 the cost is per-op overhead, and a second thread that has
            # to wait for a busy core made steps 3-5x slower in benchmarks/supernet.py
            "threads": 1,
        },
    }


def apply_preset(settings: Any, preset: dict[str, dict[str, Any]]) -> None:
    """Set each ``{section: {field: value}}`` of a preset on ``settings`` (search or retrain)."""
    for section, values in preset.items():
        for key, value in values.items():
            setattr(getattr(settings, section), key, value)


def resolve(
    controller: str,
    preset: str,
    seed: int = 0,
    device: str = "cpu",
    data: str | None = None,
    overrides: list[str] | None = None,
    epochs: int | None = None,
) -> Settings:
    """Build Settings from a preset, then apply ``section.field=value`` overrides in order."""
    if controller not in CONTROLLERS:
        raise SettingsError(f"unknown controller {controller!r} (choose from {', '.join(CONTROLLERS)})")
    if preset not in PRESETS:
        raise SettingsError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    settings = Settings(controller=controller, preset=preset, seed=seed, device=device, data=data)
    if preset == "cpu":
        apply_preset(settings, cpu_preset())
    for item in overrides or []:
        apply_override(settings, item)
    if epochs is not None:
        settings.train.epochs = epochs
    validate(settings)
    return settings


def apply_override(settings: Any, item: str) -> None:
    """Apply one ``section.field=value`` override, converting value to the field's type."""
    key, sep, raw = item.partition("=")
    section_name, dot, field_name = key.strip().partition(".")
    if not sep or not dot:
        raise SettingsError(f"bad override {item!r}: expected section.field=value, e.g. model.hidden=128")
    known = sections(settings)
    section = known.get(section_name)
    if section is None:
        raise SettingsError(f"bad override {item!r}: unknown section {section_name!r} "
                            f"(choose from {', '.join(known)})")
    fields = {f.name: f for f in dataclasses.fields(section)}
    if field_name not in fields:
        raise SettingsError(f"bad override {item!r}: {section_name} has no setting {field_name!r} "
                            f"(settings: {', '.join(fields)})")
    current = getattr(section, field_name)
    try:
        value: Any = type(current)(raw.strip())
    except ValueError:
        raise SettingsError(f"bad override {item!r}: {raw.strip()!r} is not a valid "
                            f"{type(current).__name__}") from None
    setattr(section, field_name, value)


def validate(settings: Settings) -> None:
    """Reject settings that cannot run, with a message naming the setting."""
    check_types(settings)
    checks = model_checks(settings.model) + [
        (settings.ctrl.hidden >= 1, "ctrl.hidden must be positive"),
        (settings.ctrl.temperature > 0, "ctrl.temperature must be positive"),
        (settings.ctrl.batch_size >= 1, "ctrl.batch_size must be positive"),
        (settings.ctrl.steps_per_epoch >= 0, "ctrl.steps_per_epoch must not be negative"),
        (0 <= settings.ctrl.baseline_decay < 1, "ctrl.baseline_decay must be in [0, 1)"),
        (settings.buffer.capacity >= 1, "buffer.capacity must be positive"),
        (settings.buffer.supervised_batch >= 1, "buffer.supervised_batch must be positive"),
        (settings.train.epochs >= 1, "train.epochs must be at least 1"),
        (settings.train.shared_steps_per_epoch >= 0, "train.shared_steps_per_epoch must not be negative"),
        (settings.train.probe_every >= 1, "train.probe_every must be positive"),
        (settings.train.probe_size >= 3, "train.probe_size must be at least 3"),
        (settings.train.derive_every >= 1, "train.derive_every must be positive"),
        (settings.train.valid_batches >= 0, "train.valid_batches must not be negative"),
        (settings.train.derive_samples >= 1, "train.derive_samples must be positive"),
        (settings.train.max_nonfinite >= 1, "train.max_nonfinite must be positive"),
        (settings.train.threads >= 0, "train.threads must not be negative"),
        (settings.train.perf_every >= 1, "train.perf_every must be positive"),
        (settings.train.perf_batches >= 1, "train.perf_batches must be positive"),
        (settings.train.probe_mode in PROBE_MODES,
         f"train.probe_mode must be one of {', '.join(PROBE_MODES)}, got {settings.train.probe_mode!r}"),
        (settings.train.probe_state in PROBE_STATES,
         f"train.probe_state must be one of {', '.join(PROBE_STATES)}, got {settings.train.probe_state!r}"),
        (settings.buffer.supervised_reduction in SUPERVISED_REDUCTIONS,
         f"buffer.supervised_reduction must be one of {', '.join(SUPERVISED_REDUCTIONS)}, "
         f"got {settings.buffer.supervised_reduction!r}"),
        (settings.buffer.supervised_weight >= 0, "buffer.supervised_weight must not be negative"),
        (settings.train.checkpoint_every_s >= 0, "train.checkpoint_every_s must not be negative"),
        (settings.seed >= 0, "seed must not be negative"),
    ]
    raise_failed(checks)
    live_ged_readings(settings.train.live_ged)


def check_types(settings: Any) -> None:
    """Every number of every section is of its default's type and finite.

    NaN passes every comparison of the range checks as False, so it is caught here first; a wrong
    type comes from a settings dict of a damaged meta.json.
    """
    for name, section in sections(settings).items():
        for f in dataclasses.fields(section):
            value, default = getattr(section, f.name), f.default
            kind = type(default) if isinstance(default, (bool, int, float)) else None
            wrong = kind is not None and (isinstance(value, bool) != (kind is bool) or not isinstance(
                value, (int, float) if kind is float else kind))
            if wrong:
                raise SettingsError(f"{name}.{f.name} must be a {kind.__name__}, not {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{name}.{f.name} must be a finite number, not {value}")


def model_checks(model: ModelConfig) -> list[tuple[bool, str]]:
    """(ok, message) for every rule on the model section (shared by the search and the retrain)."""
    return [
        (model.num_nodes >= 2, "model.num_nodes must be at least 2"),
        (model.hidden >= 1, "model.hidden must be positive"),
        (model.bptt >= 1, "model.bptt must be positive"),
        (model.batch_size >= 1, "model.batch_size must be positive"),
        (model.eval_batch_size >= 1, "model.eval_batch_size must be positive"),
        (model.lr > 0, "model.lr must be positive"),
        (model.grad_clip > 0, "model.grad_clip must be positive"),
        (model.max_hidden_norm >= 0, "model.max_hidden_norm must not be negative (0 turns it off)"),
        (all(0 <= p < 1 for p in (model.dropout_emb, model.dropout_in, model.dropout_out, model.dropconnect)),
         "dropout rates must be in [0, 1)"),
    ]


def raise_failed(checks: list[tuple[bool, str]]) -> None:
    """Raise SettingsError with the first failed check's message."""
    for ok, message in checks:
        if not ok:
            raise SettingsError(message)


def live_ged_readings(value: str) -> tuple[str, ...]:
    """The GED readings named by ``train.live_ged`` ("paper", "exact", "paper,exact" or "none")."""
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if names == ("none",):
        return ()
    bad = [name for name in names if name not in LIVE_GED_READINGS]
    if bad or not names:
        raise SettingsError(f"train.live_ged must be 'none' or a comma-separated list of "
                            f"{', '.join(LIVE_GED_READINGS)}, got {value!r}")
    return names


def describe(settings: Any, width: int = 0) -> list[str]:
    """The resolved settings as ``name = value`` items, packed into lines of ``width`` (0: one per line)."""
    known = sections(settings)
    items = [f"{f.name} = {_shown(f.name, getattr(settings, f.name))}"
             for f in dataclasses.fields(settings) if f.name not in known]
    for name, section in known.items():
        items += [f"{name}.{f.name} = {getattr(section, f.name)}" for f in dataclasses.fields(section)]
    if width <= 0:
        return items
    def section(item: str) -> str:
        key = item.split(" = ")[0]
        return key.split(".")[0] if "." in key else ""

    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= width and section(lines[-1]) == section(item):
            lines[-1] += "; " + item
        else:
            lines.append(item)
    return lines


def _shown(name: str, value: Any) -> Any:
    return "(generated corpus)" if name == "data" and value is None else value
