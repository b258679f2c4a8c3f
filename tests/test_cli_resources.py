"""Running out of resources for real: a full disk, a file-size limit, a read-only sessions folder.

The full disk is a real tmpfs, mounted in a private mount namespace (``unshare --user --mount``)
so the test needs no privileges where user namespaces are allowed and leaves no mount behind; the
test is skipped (with the reason) where they are not. The file-size limit (RLIMIT_FSIZE: the
kernel refuses a write past it with EFBIG) needs nothing special and runs everywhere.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enas_tui import checkpoints
from enas_tui.session_log import read_log
from enas_tui.sessions import Session, all_sessions

from helpers import TINY

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SETS = [arg for item in TINY for arg in ("--set", item)]
TRAIN = [sys.executable, "-m", "enas_tui", "train", "--controller", "supervised", "--headless"]

# Inside the namespace: mount, run the command (optionally filling the disk once the log passes
# FILL_AFTER bytes), then copy what it left out of the mount before the namespace goes away.
SCRIPT = r"""
mnt=$1; out=$2; opts=$3; fill_after=$4; shift 4
mount -t tmpfs -o "$opts" tmpfs "$mnt" || exit 99
"$@" > "$out/stdout" 2> "$out/stderr" &
pid=$!
if [ "$fill_after" -gt 0 ]; then
  while kill -0 $pid 2>/dev/null; do
    size=$(cat "$mnt"/sessions/*/events.log 2>/dev/null | wc -c)
    if [ "$size" -gt "$fill_after" ]; then dd if=/dev/zero of="$mnt/filler" bs=4k 2>/dev/null; break; fi
    sleep 0.02
  done
fi
wait $pid
echo $? > "$out/rc"
rm -f "$mnt/filler"
cp -a "$mnt/." "$out/files/"
"""


def in_private_mount(tmp_path: Path, opts: str, args: list[str], fill_after: int = 0) -> tuple[int, str, Path]:
    """Run ``args`` (``{mnt}`` replaced by the mount point) on a fresh tmpfs; (exit code, stderr, files)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed: cannot mount a private tmpfs")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    (out / "files").mkdir(parents=True)
    command = [a.replace("{mnt}", str(mnt)) for a in args]
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT, "sh",
                           str(mnt), str(out), opts, str(fill_after), *command],
                          capture_output=True, text=True, env=ENV, timeout=300)
    if done.returncode != 0 or not (out / "rc").exists():
        pytest.skip(f"cannot mount a private tmpfs here (unshare/mount: {done.stderr.strip()[:120]!r})")
    return int((out / "rc").read_text()), (out / "stderr").read_text(), out / "files"


def assert_failed_cleanly(session: Session, stderr: str, reason: str) -> None:
    """Status failed, one line, no temporary file left, the last good checkpoint loads, the log whole."""
    assert stderr.count("\n") == 1 and stderr.startswith("enas-tui: error: ") and reason in stderr, stderr
    assert "Traceback" not in stderr
    status = session.status()
    assert status["status"] == "failed" and reason in status["message"]
    assert [p.name for p in session.path.rglob("*") if p.name.endswith(".tmp")] == []
    log = read_log(session.log_path)
    assert log.damage == [] and log.torn_tail is None  # a write cut short by the full disk was taken back
    latest = session.latest_checkpoint()
    if latest is not None:  # intact; at most the epoch whose checkpoint failed is to be redone
        state = checkpoints.load(latest)
        assert state["position"]["epoch"] in (status["epoch"], status["epoch"] + 1)
    end = [e for e in log.events if e.type == "session_end"]
    if end:  # written when the failure freed space (a checkpoint's temporary file removed)
        assert end[-1].status == "failed" and end[-1].epoch == status["epoch"]


def test_full_disk_when_a_checkpoint_does_not_fit(tmp_path):
    # 1 MiB holds two TINY epoch checkpoints (~380 KB each) and the log, not a third checkpoint
    rc, err, files = in_private_mount(tmp_path, "size=1m", [*TRAIN, "--epochs", "3", "--sessions-dir",
                                                             "{mnt}/sessions", *SETS])
    assert rc == 1
    (session,) = all_sessions(files / "sessions")
    assert_failed_cleanly(session, err, "No space left on device")
    assert "cannot save checkpoint epoch-0003.pt" in err  # epoch 3 ran; its checkpoint did not fit
    assert session.status()["epoch"] == 3 and session.latest_checkpoint().name == "epoch-0002.pt"
    listing = subprocess.run([sys.executable, "-m", "enas_tui", "sessions", "--json", "--sessions-dir",
                              str(files / "sessions")], capture_output=True, text=True, env=ENV, timeout=60)
    assert json.loads(listing.stdout)["status"] == "failed"
    resumed = subprocess.run([sys.executable, "-m", "enas_tui", "train", "--resume", session.id, "--sessions-dir",
                              str(files / "sessions")], capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr  # with room again, the run goes on from epoch 2
    assert session.status()["status"] == "finished" and session.status()["epoch"] == 3


def test_full_disk_in_the_middle_of_an_epoch(tmp_path):
    # the disk is filled to the last block while the trainer runs: whichever write fails first
    # (the log, a checkpoint, status.json), it ends "failed" with nothing half-written left behind
    rc, err, files = in_private_mount(tmp_path, "size=4m", [*TRAIN, "--epochs", "3", "--sessions-dir",
                                                             "{mnt}/sessions", *SETS], fill_after=60_000)
    assert rc == 1
    (session,) = all_sessions(files / "sessions")
    assert_failed_cleanly(session, err, "No space left on device")


def test_file_size_limit(tmp_path):
    """RLIMIT_FSIZE: the kernel refuses to grow a file past the limit (EFBIG), here the checkpoint."""
    root = tmp_path / "sessions"
    first = subprocess.run([*TRAIN, "--epochs", "1", "--sessions-dir", str(root), *SETS],
                           capture_output=True, text=True, env=ENV, timeout=300)
    assert first.returncode == 0, first.stderr
    (session,) = all_sessions(root)
    limit = 200_000  # above the log and status files, below a checkpoint (~380 KB)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run([sys.executable, "-m", "enas_tui", "train", "--resume", session.id, "--epochs", "2",
                          "--sessions-dir", str(root)], capture_output=True, text=True, env=ENV, timeout=300,
                         preexec_fn=limited)
    assert out.returncode == 1
    assert_failed_cleanly(session, out.stderr, "File too large")
    assert session.latest_checkpoint().name == "epoch-0001.pt" and session.status()["epoch"] == 2


def test_read_only_sessions_folder(tmp_path):
    if os.geteuid() != 0:  # an ordinary user: a folder without write permission
        root = tmp_path / "ro"
        root.mkdir()
        root.chmod(0o555)
        args, reason = ["--sessions-dir", str(root)], "Permission denied"
        out = subprocess.run([*TRAIN, "--epochs", "1", *args, *SETS], capture_output=True, text=True, env=ENV,
                             timeout=300)
        rc, err = out.returncode, out.stderr
        root.chmod(0o755)
        files = root
    else:  # root writes anywhere: a read-only file system
        rc, err, files = in_private_mount(tmp_path, "ro,size=1m", [*TRAIN, "--epochs", "1", "--sessions-dir",
                                                                   "{mnt}", *SETS])
        reason = "Read-only file system"
    assert rc == 1
    assert err.startswith("enas-tui: error: cannot create a session in ") and err.endswith(f": {reason}\n")
    assert err.count("\n") == 1 and not list(files.iterdir())
