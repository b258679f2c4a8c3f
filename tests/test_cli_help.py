"""The help text of every command, as printed: plain metavars, no typer type tags on flags or
arguments, the sessions folder's default shown; and the demo command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from enas_tui import tui
from enas_tui.sessions import Session

ENV = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}

USAGE = {
    (): "enas-tui [OPTIONS] COMMAND [ARGS]...",
    ("train",): "enas-tui train [OPTIONS]",
    ("attach",): "enas-tui attach [OPTIONS] [SESSION | HOST:[ID]]",
    ("replay",): "enas-tui replay [OPTIONS] SESSION | HOST:ID",
    ("compare",): "enas-tui compare [OPTIONS] S1 S2 [S3]",
    ("stop",): "enas-tui stop [OPTIONS] SESSION | HOST:ID",
    ("pull",): "enas-tui pull [OPTIONS] HOST:ID",
    ("demo",): "enas-tui demo [OPTIONS]",
    ("sessions",): "enas-tui sessions [OPTIONS]",
    ("analyze",): "enas-tui analyze [OPTIONS] SESSION",
    ("report",): "enas-tui report [OPTIONS] SESSION...",
    ("paper",): "enas-tui paper [OPTIONS]",
    ("data", "download"): "enas-tui data download [OPTIONS] CORPUS",
    ("arch", "distance"): "enas-tui arch distance [OPTIONS] A B",
}
HAS_SESSIONS_DIR = {("train",), ("attach",), ("replay",), ("compare",), ("sessions",), ("analyze",), ("report",),
                    ("paper",), ("stop",), ("pull",)}


def help_text(*command: str) -> str:
    out = subprocess.run([sys.executable, "-m", "enas_tui", *command, "--help"], capture_output=True, text=True,
                         env=ENV, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("command", list(USAGE), ids=lambda c: " ".join(c) or "enas-tui")
def test_help_text(command):
    text = help_text(*command)
    assert f"Usage: {USAGE[command]}" in text
    assert "<bool>" not in text and "<list[" not in text  # flags and arguments carry no type tags
    assert not re.search(r"\{[A-Za-z .\[\]]+\}", text)  # no {SESSION} / {a} wrapping
    assert "[[" not in text and not re.search(r" \.(\s|$)", text)  # no [markup] eaten from a help text
    assert not any(ord(c) > 0x2FFF for c in text)  # no emoji made of ":ID:" and the like
    if command in HAS_SESSIONS_DIR:
        assert "Sessions folder (default: ./sessions)." in text and "ENAS_TUI_SESSIONS" in text
    if command == ("train",):
        assert "SECTION.FIELD=VALUE" in text and "--headless" in text
    if command == ():
        assert "demo" in text


def test_demo_needs_a_terminal_and_a_known_controller():
    out = subprocess.run([sys.executable, "-m", "enas_tui", "demo"], capture_output=True, text=True, env=ENV,
                         timeout=60)
    assert out.returncode == 1 and out.stderr.strip() == "enas-tui: error: the demo is a dashboard: run it in a terminal"
    out = subprocess.run([sys.executable, "-m", "enas_tui", "demo", "--controller", "huge"], capture_output=True,
                         text=True, env=ENV, timeout=60)
    assert out.returncode == 2 and "unknown controller 'huge'" in out.stderr


def test_run_demo_writes_a_synthetic_session_and_removes_it(monkeypatch):
    seen = {}

    def fake_run(app):  # the dashboard itself is tested with Pilot (test_tui_replay); here: its folder
        seen["path"] = app.session.path
        seen["events"] = app.session.log_path.stat().st_size
        seen["mode"] = app.MODE
        return 0

    from enas_tui.tui.app import DemoApp

    monkeypatch.setattr(DemoApp, "run", fake_run)
    assert tui.run_demo("unsupervised") == 0
    assert seen["mode"] == "demo" and seen["events"] > 0
    assert seen["path"].name == "synthetic-unsupervised" and not seen["path"].exists()
    assert Path(tempfile.gettempdir()) in seen["path"].parents


# -- the commands the app prints ----------------------------------------------------------------
def test_printed_commands_name_the_sessions_folder_and_quote_it(tmp_path, monkeypatch):
    from enas_tui.commands import attach_command, resume_command, wrap_command

    monkeypatch.delenv("ENAS_TUI_SESSIONS", raising=False)
    monkeypatch.chdir(tmp_path)
    default = Session(Path("sessions") / "20260101-000000-supervised-abcd")
    assert resume_command(default) == "enas-tui train --resume 20260101-000000-supervised-abcd"
    assert attach_command(default) == "enas-tui attach 20260101-000000-supervised-abcd"
    elsewhere = Session(tmp_path / "my runs" / "s1")
    assert resume_command(elsewhere) == f"enas-tui train --resume s1 --sessions-dir '{tmp_path}/my runs'"
    monkeypatch.setenv("ENAS_TUI_SESSIONS", "/somewhere/else")  # ./sessions is not where it would look
    assert resume_command(default).endswith("--sessions-dir sessions")


def test_wrapped_commands_fit_and_rejoin():
    from enas_tui.commands import attach_command, resume_command, wrap_command

    command = "enas-tui train --resume 20260101-000000-supervised-abcd --sessions-dir '/data/my runs/x'"
    lines = wrap_command(" continue with:", command, 60)
    assert len(lines) == 3 and all(len(line) <= 60 for line in lines)
    joined = " ".join(line.removeprefix(" continue with:").rstrip("\\").strip() for line in lines)
    assert joined == command
    assert wrap_command("go:", "enas-tui attach s", 80) == ["go: enas-tui attach s"]


def test_run_live_prints_commands_that_work_when_pasted(tmp_path, monkeypatch, capsys):
    """What `enas-tui train` prints when its dashboard quits: attach or resume, with the folder."""
    import shlex

    from enas_tui.sources import TrainerSource
    from enas_tui.tui.app import LiveApp
    from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session

    from helpers import FakeProcess

    root = tmp_path / "my runs"
    session = write_synthetic_session(root, SyntheticRun(epochs=1, end=None))

    def start(self, args, launch=None, command="train"):  # the child is tested in test_cli; here: what is printed
        self.process = FakeProcess(session.id, alive=True, returncode=None)
        return self

    monkeypatch.setattr(TrainerSource, "start", start)
    for outcome, lead, verb in (("detached", "watch it with: ", ["attach"]),
                                ("stopped", "continue with: ", ["train", "--resume"])):
        monkeypatch.setattr(LiveApp, "run", lambda self, o=outcome: setattr(self, "outcome", o))
        assert tui.run_live([], root) == 0
        printed = capsys.readouterr().out.split(lead)[1].strip()
        assert shlex.split(printed) == ["enas-tui", *verb, session.id, "--sessions-dir", str(root)]
