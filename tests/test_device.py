"""Devices, as far as a machine without a GPU can prove them: choosing one, a checkpoint moving
between the CPU and a GPU, and running out of memory.

What needs a GPU itself (CUDA against the CPU, checkpoints written there) is in test_cuda.py.
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enas_tui import checkpoints, config
from enas_tui import trainer as trainer_module
from enas_tui.cli import main
from enas_tui.retrain import trainer as retrain_module
from enas_tui.data import Corpus, load_corpus
from enas_tui.session_log import read_events
from enas_tui.sessions import all_sessions, create_session
from enas_tui.trainer import DeviceError, new_run, pick_device, resume_run

from helpers import TINY

SETS = [arg for item in TINY for arg in ("--set", item)]
RETRAIN_SETS = [arg for item in ("model.hidden=16", "model.batch_size=8", "model.bptt=10", "model.eval_batch_size=4",
                                 "train.steps_per_epoch=4", "train.test_batch_size=4", "train.threads=1")
                for arg in ("--set", item)]
CELL = "tanh,0:relu,1:identity,1:sigmoid,0:tanh,2:relu,3:identity,3:tanh,5:sigmoid,1:relu,4:identity,10:tanh"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:6000], valid=full.valid[:2000],
                  test=full.test[:2000], source="generated corpus (test slice)")


def only_session(root: Path):
    (session,) = all_sessions(root)
    return session


# -- choosing the device ---------------------------------------------------------------------------

def test_named_devices():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match=r"unknown device 'gpu0' \(use auto, cpu, cuda or cuda:N\)"):
        pick_device("gpu0")


@no_cuda
def test_without_cuda_auto_is_the_cpu_and_every_cuda_device_is_an_error():
    assert pick_device("auto") == pick_device(None) == torch.device("cpu")
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(DeviceError, match=f"^device '{name}': CUDA is not available on this machine$"):
            pick_device(name)


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_a_missing_gpu_is_one_line_before_any_session_exists(tmp_path, capsys, device):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--device", device, "--headless", "--sessions-dir", str(tmp_path), *SETS])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"enas-tui: error: --device: device '{device}': "
                                       f"CUDA is not available on this machine\n")
    assert not list(tmp_path.iterdir())


@no_cuda
def test_auto_trains_on_the_cpu_with_the_cpu_preset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--device", "auto", "--headless", "--epochs", "1", "--sessions-dir", str(tmp_path), *SETS])
    assert exit_info.value.code == 0, capsys.readouterr().err
    session = only_session(tmp_path)
    assert session.meta()["preset"] == "cpu"
    start = read_events(session.log_path)[0]
    assert start.type == "session_start" and start.device == "cpu" and start.settings["device"] == "auto"
    assert session.status()["status"] == "finished"


# -- checkpoints between the CPU and a GPU ------------------------------------------------------------

def cuda_generator_state(seed: int, offset: int = 0) -> torch.Tensor:
    """A CUDA generator's state as torch.Generator("cuda").get_state() returns it: the Philox seed
    and offset, 16 bytes (a CPU generator's Mersenne Twister state is 5,056)."""
    return torch.tensor(list(struct.pack("<Qq", seed, offset)), dtype=torch.uint8)


def as_written_on_a_gpu(session, epoch: int, device_key: bool = True) -> dict:
    """Rewrite an epoch checkpoint's random states as a CUDA run writes them (everything else a
    CUDA run saves is on the CPU already: checkpoints are loaded with map_location="cpu")."""
    state = checkpoints.load(session.epoch_checkpoint(epoch))
    rng = state["rng"]
    rng.update(sample=cuda_generator_state(1, 4), probe=cuda_generator_state(2, 8), cuda=[cuda_generator_state(0, 12)])
    if device_key:
        rng["device"] = "cuda"
    else:  # written before checkpoints named their device
        del rng["device"]
    del state["format"]
    checkpoints.save(session, state, f"epoch-{epoch:04d}.pt")
    return state


def first_epoch(tmp_path, corpus, name="s"):
    settings = config.resolve("supervised", "cpu", device="cpu", overrides=TINY, epochs=1)
    session = create_session(tmp_path / name, "supervised")
    assert new_run(settings, session, corpus, listeners=[]).run() == "finished"
    return session


@pytest.mark.parametrize("device_key", [True, False])
def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path, corpus, device_key):
    """The weights, optimiser state, position and carried state come back exactly; the sampling
    generators' CUDA states cannot, so they are reseeded (reproducibly) and the log says so."""
    records = []
    for name in ("a", "b"):
        session = first_epoch(tmp_path, corpus, name)
        state = as_written_on_a_gpu(session, 1, device_key)
        trainer = resume_run(session, lambda s: corpus, listeners=[], epochs=2)
        for key, value in trainer.net.state_dict().items():
            assert torch.equal(value, state["supernet"][key]), key
        assert torch.equal(trainer.hidden, state["hidden"]) and trainer.pos.epoch == 2
        assert trainer.run() == "finished"
        events = read_events(session.log_path)
        warnings = [e for e in events if e.type == "warning"]
        assert [w.kind for w in warnings] == ["device_changed"]
        written_on = "cuda" if device_key else "another kind of device"
        assert warnings[0].message == (f"checkpoint written on {written_on}, resumed on cpu: the architecture "
                                       f"sampling was reseeded, so the run goes on as a different draw")
        records.append([(e.type, getattr(e, "loss", None)) for e in events[events.index(warnings[0]):]])
    assert records[0] == records[1]  # reseeded from the run's seed and position: reproducible


def test_a_cpu_checkpoint_resumes_on_the_cpu_exactly_without_a_warning(tmp_path, corpus):
    session = first_epoch(tmp_path, corpus)
    state = checkpoints.load(session.epoch_checkpoint(1))
    assert state["rng"]["device"] == "cpu" and state["rng"]["cuda"] == []
    del state["rng"]["device"], state["format"]  # as written before checkpoints named their device
    checkpoints.save(session, state, "epoch-0001.pt")
    trainer = resume_run(session, lambda s: corpus, listeners=[], epochs=2)
    assert torch.equal(trainer.sample_gen.get_state(), state["rng"]["sample"])
    assert trainer.run() == "finished"
    assert not [e for e in read_events(session.log_path) if e.type == "warning"]


# -- out of memory ----------------------------------------------------------------------------------

CUDA_OOM = ("CUDA out of memory. Tried to allocate 1.95 GiB. GPU 0 has a total capacity of 79.19 GiB of which "
            "1.02 GiB is free. Including non-PyTorch memory, this process has 78.16 GiB memory in use. Of the "
            "allocated memory 75.50 GiB is allocated by PyTorch, and 1.10 GiB is reserved by PyTorch but "
            "unallocated. If reserved but unallocated memory is large try setting "
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.")


def test_out_of_gpu_memory_in_a_shared_step_is_one_line_naming_the_settings(tmp_path, capsys, monkeypatch):
    """The one fake in this module, since a machine without a GPU cannot run out of GPU memory: the
    6th shared step (the second of epoch 2) raises torch.cuda.OutOfMemoryError, with CUDA's own
    wording, from inside the step. Everything after it is real: the CLI's exit and message, the
    session's status, the record of the steps before it and the checkpoint of epoch 1."""
    real, calls = trainer_module.train_step, []

    def step(*args):
        calls.append(args)
        if len(calls) == 6:
            raise torch.cuda.OutOfMemoryError(CUDA_OOM)
        return real(*args)

    monkeypatch.setattr(trainer_module, "train_step", step)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--headless", "--epochs", "3", "--sessions-dir", str(tmp_path), *SETS])
    message = ("out of memory on cpu in a shared step (tried to allocate 1.95 GiB): lower model.batch_size, "
               "model.bptt or model.hidden; stopped with the last checkpoint intact")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"enas-tui: error: {message}\n"
    session = only_session(tmp_path)
    assert session.status()["status"] == "failed" and session.status()["message"] == message
    assert session.latest_checkpoint() == session.epoch_checkpoint(1)
    assert checkpoints.load(session.latest_checkpoint())["position"]["epoch"] == 2
    events = read_events(session.log_path)
    assert [e.step for e in events if e.type == "shared_step"] == [1, 2, 3, 4, 5]  # step 5 ran: recorded
    assert [(e.type, e.message) for e in events[-2:-1]] == [("error", message)]
    assert events[-1].type == "session_end" and events[-1].status == "failed" and events[-1].epoch == 1


def run_limited(tmp_path: Path, *args: str, command: tuple[str, ...] = ("train", *SETS),
                limit: int = 3 << 30) -> subprocess.CompletedProcess:
    """``enas-tui train`` (or ``command``) in a process whose address space is capped at ``limit``
    bytes: an allocation past it fails at once, as it does when memory runs out, without using any."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "enas_tui", command[0], "--headless", "--sessions-dir",
                           str(tmp_path), *command[1:], *args], capture_output=True, text=True, env=ENV,
                          timeout=300, preexec_fn=cap)


def test_a_real_allocation_failure_in_the_supervised_loss(tmp_path):
    """A supervised batch of 20 million architectures (3.4 GiB of decisions) in a process capped at
    3 GiB: epoch 1 runs (the supervised loss starts in epoch 2), then the allocation fails for real."""
    out = run_limited(tmp_path, "--epochs", "3", "--set", "buffer.supervised_batch=20000000")
    message = ("out of memory on cpu in the supervised loss (tried to allocate 3.43 GiB): lower "
               "buffer.supervised_batch; stopped with the last checkpoint intact")
    assert out.returncode == 1 and out.stderr == f"enas-tui: error: {message}\n"
    session = only_session(tmp_path)
    assert session.status()["status"] == "failed" and session.status()["message"] == message
    assert session.latest_checkpoint() == session.epoch_checkpoint(1)
    assert checkpoints.load(session.latest_checkpoint())["position"]["epoch"] == 2
    events = read_events(session.log_path)
    assert events[-1].type == "session_end" and events[-1].status == "failed"
    assert len([e for e in events if e.type == "shared_step"]) == 8  # both epochs' shared steps


def test_a_model_too_large_to_build_is_one_line_naming_model_hidden(tmp_path):
    out = run_limited(tmp_path, "--set", "model.hidden=20000")
    message = ("out of memory on cpu in setting up (tried to allocate 2.98 GiB): lower model.hidden "
               "(the shared weights are num_nodes*(num_nodes-1)/2 x hidden x 2*hidden)")
    assert out.returncode == 1 and out.stderr == f"enas-tui: error: {message}\n", out.stderr
    session = only_session(tmp_path)
    assert session.status()["status"] == "failed" and session.status()["message"] == message


def test_out_of_gpu_memory_in_a_retrain_step_is_one_line_naming_the_settings(tmp_path, capsys, monkeypatch):
    """The retrain shares the run loop (session_run): CUDA's error from its 7th step (the third of
    epoch 2) is the same one line, naming the retrain's settings, with epoch 1's checkpoint kept."""
    real, calls = retrain_module.train_step, []

    def step(*args):
        calls.append(args)
        if len(calls) == 7:
            raise torch.cuda.OutOfMemoryError(CUDA_OOM)
        return real(*args)

    monkeypatch.setattr(retrain_module, "train_step", step)
    with pytest.raises(SystemExit) as exit_info:
        main(["retrain", "--arch", CELL, "--headless", "--epochs", "3", "--sessions-dir", str(tmp_path),
              *RETRAIN_SETS])
    message = ("out of memory on cpu in a training step (tried to allocate 1.95 GiB): lower model.batch_size, "
               "model.bptt or model.hidden; stopped with the last checkpoint intact")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"enas-tui: error: {message}\n"
    session = only_session(tmp_path)
    assert session.status()["status"] == "failed" and session.status()["message"] == message
    assert session.latest_checkpoint() == session.epoch_checkpoint(1)
    events = read_events(session.log_path)
    assert [e.step for e in events if e.type == "shared_step"] == [1, 2, 3, 4, 5, 6]
    assert [(e.type, e.message) for e in events[-2:-1]] == [("error", message)]


def test_a_retrain_model_too_large_to_build_is_one_line_naming_model_hidden(tmp_path):
    out = run_limited(tmp_path, "--set", "model.hidden=20000", command=("retrain", "--arch", CELL, *RETRAIN_SETS))
    message = "out of memory on cpu in setting up (tried to allocate 2.98 GiB): lower model.hidden"
    assert out.returncode == 1 and out.stderr == f"enas-tui: error: {message}\n", out.stderr
    session = only_session(tmp_path)
    assert session.status()["status"] == "failed" and session.status()["message"] == message


def test_an_error_that_is_not_an_allocation_failure_is_not_reported_as_one(tmp_path, corpus, monkeypatch):
    def broken(*args):
        raise RuntimeError("expected all tensors to be on the same device")

    monkeypatch.setattr(trainer_module, "train_step", broken)
    settings = config.resolve("random", "cpu", device="cpu", overrides=TINY, epochs=1)
    session = create_session(tmp_path, "random")
    with pytest.raises(RuntimeError, match="same device"):
        new_run(settings, session, corpus, listeners=[]).run()
    assert session.status()["message"] == "RuntimeError: expected all tensors to be on the same device"
