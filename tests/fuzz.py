"""The damage fuzz: a seeded corpus of damaged copies of one real finished session, run through
every command a user would point at it, with the outcome each one must have.

Damage applied (each case one kind, a few combined): truncations, flipped bytes, zeroed spans,
trailing zeros and garbage, bad payloads inside valid frames (not JSON, wrong field types, missing
fields), a huge length field with a valid checksum, duplicated records, a damaged header, and
meta.json / status.json files missing, not JSON, with missing keys, wrong types or bad timestamps.

What every case must give:
- ``enas-tui sessions`` (one real subprocess for the whole corpus): every session listed, the
  expected status, no traceback; damaged files named;
- the records read back: exactly the original records minus those the damage touched (a record is
  lost only where its own bytes were damaged: that is all the framing could not save);
- replay and attach (Textual's Pilot, at the log's end): the app opens (or a one-line error for a
  log that is not one), the header shows the expected status and a notice when the log is damaged;
- ``train --resume``, ``analyze`` and ``report`` (real subprocesses, a seeded sample): exit 0 or a
  one-line error, no traceback; a resume keeps every byte before the damage it set aside.

The expected status follows sessions.py's rule: the log's end record if it survives, else
status.json's ending if usable, else "damaged" when the log's end is torn or damaged.

Run ``python tests/fuzz.py`` for the counts (or ``pytest tests/test_fuzz.py -s``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from helpers import TINY  # noqa: E402

from enas_tui.session_log import HEADER_SIZE, LogError, LogReader, encode_frame, read_log  # noqa: E402
from enas_tui.sessions import Session  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
SETS = [arg for item in TINY for arg in ("--set", item)]


@dataclass
class Case:
    """One damaged copy: what was done, and what every command must make of it."""

    name: str
    kind: str
    lost: set[int] = field(default_factory=set)  # seqs of records whose bytes were damaged
    status: str = "finished"  # what sessions, replay and attach must say
    log_damaged: bool = False  # the dashboard must show a notice
    log_unreadable: bool = False  # not a session log any more: a one-line error
    settings_lost: bool = False  # neither meta.json nor the log can give the settings
    noticed: bool = False  # the listing or the dashboard told the user about the damage


@dataclass
class Counts:
    cases: int = 0
    clean_errors: int = 0  # a command refused the case with a one-line error and a non-zero exit
    notices: int = 0  # cases whose damage the dashboard or the listing showed
    tracebacks: int = 0
    wrong_statuses: int = 0
    records_lost: int = 0  # records the framing could have saved but a reader did not return
    false_records: int = 0  # records read back that were never written
    commands: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def fail(self, case: Case, what: str) -> None:
        self.failures.append(f"{case.name} ({case.kind}): {what}")

    def summary(self) -> str:
        timing = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        return (f"fuzz: {self.cases} cases, {self.commands} command runs: {self.clean_errors} clean errors, "
                f"{self.notices} notices, {self.tracebacks} tracebacks, {self.wrong_statuses} wrong statuses, "
                f"{self.records_lost} records lost, {self.false_records} false records" +
                (f" ({timing})" if timing else ""))


# -- the base session ------------------------------------------------------------------------------
def make_base(root: Path) -> Session:
    """One real finished session at TINY settings (two epochs, supervised: every event type)."""
    out = subprocess.run([sys.executable, "-m", "enas_tui", "train", "--controller", "supervised", "--headless",
                          "--epochs", "2", "--sessions-dir", str(root), *SETS],
                         capture_output=True, text=True, env=ENV, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"base session failed: {out.stderr}")
    (path,) = [p for p in root.iterdir() if p.is_dir()]
    return Session(path)


@dataclass
class Base:
    session: Session
    data: bytes
    frames: list[tuple[int, int, int]]  # (offset, end, seq) of every record

    @classmethod
    def of(cls, session: Session) -> Base:
        with LogReader(session.log_path) as reader:
            frames = [(r.offset, r.end, r.seq) for r in reader.read_records()]
        return cls(session, session.log_path.read_bytes(), frames)

    def touched(self, start: int, end: int) -> set[int]:
        """Seqs of the records with a byte in [start, end)."""
        return {seq for off, stop, seq in self.frames if off < end and start < stop}


# -- the corpus ------------------------------------------------------------------------------------
LOG_KINDS = ("truncate", "flip", "zero_span", "trailing_zeros", "trailing_garbage", "bad_payload",
             "huge_length", "duplicate", "header")
META_KINDS = ("meta_missing", "meta_not_json", "meta_list", "meta_missing_keys", "meta_wrong_types",
              "meta_bad_time", "status_missing", "status_not_json", "status_missing_keys",
              "status_wrong_types", "status_bad_word", "status_bad_time", "both_json_missing")
COMBOS = ("torn_without_status", "zeros_without_status", "flip_and_meta_missing")


def corpus(base: Base, root: Path, n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    kinds = [*LOG_KINDS, *META_KINDS, *COMBOS]
    cases = []
    for i in range(n):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        name = f"case-{i:03d}-{kind}"
        folder = root / name
        shutil.copytree(base.session.path, folder)
        case = Case(name, kind)
        apply(case, Session(folder), base, rng)
        cases.append(case)
    return cases


def apply(case: Case, session: Session, base: Base, rng: random.Random) -> None:
    kind = case.kind
    if kind in LOG_KINDS:
        damage_log(case, session, base, rng, kind)
    elif kind.startswith("meta") or kind.startswith("status") or kind == "both_json_missing":
        damage_json(case, session, rng, kind)
    elif kind == "torn_without_status":
        damage_log(case, session, base, rng, "truncate", inside=True)
        session.status_path.unlink()
        case.status = "damaged"
    elif kind == "zeros_without_status":
        damage_log(case, session, base, rng, "trailing_zeros")
        session.status_path.unlink()
    elif kind == "flip_and_meta_missing":
        damage_log(case, session, base, rng, "flip")
        session.meta_path.unlink()


def write_log(session: Session, data: bytes) -> None:
    session.log_path.write_bytes(data)


def damage_log(case: Case, session: Session, base: Base, rng: random.Random, kind: str, inside: bool = False) -> None:
    data, frames = bytearray(base.data), base.frames
    pick = lambda: frames[rng.randrange(len(frames))]  # noqa: E731
    if kind == "truncate":
        off, stop, _ = pick()
        cut = rng.randrange(off + 1, stop) if inside or rng.random() < 0.8 else off
        write_log(session, bytes(data[:cut]))
        case.lost = {seq for o, s, seq in frames if s > cut}
        case.log_damaged = any(o < cut < s for o, s, _ in frames)  # a torn tail is shown; a clean cut is not damage
    elif kind == "flip":
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(HEADER_SIZE, len(data))
            data[at] ^= 1 << rng.randrange(8)
            case.lost |= base.touched(at, at + 1)
        write_log(session, bytes(data))
    elif kind == "zero_span":
        start = rng.randrange(HEADER_SIZE, len(data) - 1)
        end = min(len(data), start + rng.randint(1, 2000))
        data[start:end] = bytes(end - start)
        case.lost = base.touched(start, end)
        write_log(session, bytes(data))
    elif kind == "trailing_zeros":
        write_log(session, bytes(data) + bytes(rng.randint(1, 8192)))
    elif kind == "trailing_garbage":
        write_log(session, bytes(data) + rng.randbytes(rng.randint(1, 5000)))
    elif kind == "bad_payload":
        off, stop, seq = pick()
        payload = json.loads(data[off + 12 : stop - 4])
        variant = rng.choice(["not_json", "list", "wrong_type", "missing_field", "seq_string"])
        if variant == "not_json":
            new = b"{" + rng.randbytes(20)
        elif variant == "list":
            new = b"[1, 2, 3]"
        else:
            if variant == "wrong_type":  # any typed field (settings is free-form: any value is one)
                key = rng.choice([k for k in payload if k not in ("type", "settings")])
                payload[key] = {"oops": [1]}
            elif variant == "missing_field":  # a field without a default
                payload.pop(rng.choice(["seq", "t", *sorted(_required(payload["type"]))]))
            else:
                payload["seq"] = str(payload["seq"])
            new = json.dumps(payload).encode()
        write_log(session, bytes(data[:off]) + encode_frame(new) + bytes(data[stop:]))
        case.lost = {seq}
        case.kind = f"bad_payload:{variant}"
    elif kind == "huge_length":
        off, stop, seq = pick()
        raw = rng.randint(stop - off, 200 * 1024 * 1024).to_bytes(8, "little")
        data[off : off + 12] = raw + zlib.crc32(raw).to_bytes(4, "little")
        write_log(session, bytes(data))
        case.lost = {seq}
    elif kind == "duplicate":
        off, stop, seq = pick()
        copy = bytes(data[off:stop])
        if rng.random() < 0.5:
            write_log(session, bytes(data) + copy)  # an old record again at the end
        else:
            write_log(session, bytes(data[:stop]) + copy + bytes(data[stop:]))
    elif kind == "header":
        data[rng.randrange(0, HEADER_SIZE - 1)] ^= 0x20
        write_log(session, bytes(data))
        case.log_unreadable = True
        case.lost = set()  # not a session log any more: nothing a reader may claim from it
    if kind not in ("truncate", "header"):
        case.log_damaged = True


def _required(kind: str) -> frozenset[str]:
    from enas_tui import events

    return events._field_types(events.event_types()[kind])[1]


def damage_json(case: Case, session: Session, rng: random.Random, kind: str) -> None:
    meta, status = json.loads(session.meta_path.read_text()), json.loads(session.status_path.read_text())
    if kind == "meta_missing":
        session.meta_path.unlink()
    elif kind == "meta_not_json":
        session.meta_path.write_text('{"controller": "supervised", ')
    elif kind == "meta_list":
        session.meta_path.write_text("[]")
    elif kind == "meta_missing_keys":
        for key in rng.sample(["controller", "started", "settings", "seed"], 2):
            meta.pop(key, None)
        session.meta_path.write_text(json.dumps(meta))
    elif kind == "meta_wrong_types":
        meta.update(controller=[1], settings={"train": {"epochs": "many"}}, seed="zero")
        session.meta_path.write_text(json.dumps(meta))
    elif kind == "meta_bad_time":
        session.meta_path.write_text(json.dumps(meta).replace(f'"started": {meta["started"]}',
                                                              rng.choice(['"started": NaN', '"started": -1e300',
                                                                          '"started": "yesterday"',
                                                                          '"started": 1e300'])))
    elif kind == "status_missing":
        session.status_path.unlink()
    elif kind == "status_not_json":
        session.status_path.write_text("\x00\x01 not json")
    elif kind == "status_missing_keys":
        session.status_path.write_text(json.dumps({k: v for k, v in status.items() if k not in ("status", "epoch")}))
    elif kind == "status_wrong_types":
        status.update(epoch="2", best_ppl="low", pid=[1], host=5)
        session.status_path.write_text(json.dumps(status))
    elif kind == "status_bad_word":
        status.update(status="exploded")
        session.status_path.write_text(json.dumps(status))
    elif kind == "status_bad_time":
        status.update(updated="noon")
        session.status_path.write_text(json.dumps(status))
    elif kind == "both_json_missing":
        session.meta_path.unlink()
        session.status_path.unlink()


# -- the checks ------------------------------------------------------------------------------------
def one_line_error(stderr: str) -> bool:
    return stderr.startswith("enas-tui: error: ") and stderr.count("\n") == 1


def check_traceback(counts: Counts, case: Case, what: str, stderr: str) -> bool:
    if "Traceback" in stderr:
        counts.tracebacks += 1
        counts.fail(case, f"{what}: traceback: {stderr.strip().splitlines()[-1]}")
        return True
    return False


def check_records(counts: Counts, case: Case, base: Base, session: Session) -> None:
    """The records read back are the originals minus exactly the damaged ones."""
    try:
        got = read_log(session.log_path)
    except LogError:
        if not case.log_unreadable:
            counts.fail(case, "log unreadable")
        return
    original = {seq for _, _, seq in base.frames}
    seqs = [e.seq for e in got.events]
    expected = original - case.lost
    lost = expected - set(seqs)
    extra = set(seqs) - original
    counts.records_lost += len(lost)
    counts.false_records += len(extra) + len(seqs) - len(set(seqs))
    if lost or extra or seqs != sorted(seqs):
        counts.fail(case, f"records: lost {sorted(lost)[:5]}, extra {sorted(extra)[:5]}")
    if case.log_damaged and not (got.damage or got.torn_tail):
        counts.fail(case, "damage not reported by the reader")


def check_sessions(counts: Counts, cases: list[Case], root: Path) -> None:
    """One ``enas-tui sessions`` over the whole corpus: every case listed, with its expected status."""
    by_name = {c.name: c for c in cases}
    for args in (["--json"], []):
        out = subprocess.run([sys.executable, "-m", "enas_tui", "sessions", *args, "--sessions-dir", str(root)],
                             capture_output=True, text=True, env=ENV, timeout=300)
        counts.commands += 1
        if out.returncode != 0 or out.stderr:
            counts.tracebacks += "Traceback" in out.stderr
            counts.failures.append(f"sessions {args}: exit {out.returncode}: {out.stderr.strip()[-300:]}")
            continue
        if args:
            rows = {r["id"]: r for r in map(json.loads, out.stdout.splitlines())}
            missing = set(by_name) - set(rows)
            if missing:
                counts.failures.append(f"sessions: {len(missing)} sessions not listed, e.g. {sorted(missing)[0]}")
            for name, row in rows.items():
                case = by_name.get(name)
                if case is None:
                    continue
                if row["status"] != case.status:
                    counts.wrong_statuses += 1
                    counts.fail(case, f"sessions says {row['status']} ({row['reason']}), expected {case.status}")
                # the base log is smaller than the listing's tail window: all of its framing and seq
                # damage is visible there (payloads are checked only for the records the listing uses)
                if row["damaged"] is not None or row["status"] == "damaged":
                    case.noticed = True
                elif (case.log_damaged or case.log_unreadable or case.kind not in LOG_KINDS) \
                        and not case.kind.startswith("bad_payload"):
                    counts.fail(case, "sessions does not name the damage")


async def replay_header(session: Session) -> tuple[str, str, str]:
    from enas_tui.tui.app import ReplayApp

    app = ReplayApp(session, start=None)
    async with app.run_test(size=(200, 30)) as pilot:
        await pilot.pause(0.05)
        app.panel("eventlog").text()  # the panel draws (the damage line may be scrolled back)
        # the status line's word for the recording (the panels show the cursor's state)
        return app.recording[0], app.status_bar.render().plain, "\n".join(ln.text for ln in app.state.log)


async def attach_header(session: Session) -> tuple[str, str]:
    from enas_tui.tui.app import AttachApp

    app = AttachApp(session, check_every=0.0)
    async with app.run_test(size=(200, 30)) as pilot:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await pilot.pause(0.05)
            source = app.source
            if source.error or (source.caught_up and (source.ended or app.state.trainer is not None)):
                break
        await pilot.pause(0.15)
        return app.state.run_status, app.status_bar.render().plain


def check_dashboard(counts: Counts, case: Case, session: Session, attach: bool) -> None:
    """Replay (and attach) at the log's end: the expected status and a notice of the damage."""
    from enas_tui.sources import SourceError

    counts.commands += 1 + attach
    if attach:
        check_attach(counts, case, session)
    try:
        status, header, events = asyncio.run(replay_header(session))
    except SourceError as err:  # run_replay prints it as one line and exits 1
        if case.log_unreadable and "\n" not in str(err):
            counts.clean_errors += 1
        else:
            counts.fail(case, f"replay refused: {err}")
        return
    except Exception as err:  # noqa: BLE001 - anything else is a crash the user would see
        counts.tracebacks += 1
        counts.fail(case, f"replay crashed: {type(err).__name__}: {err}")
        return
    if status != case.status:
        counts.wrong_statuses += 1
        counts.fail(case, f"replay says {status}, expected {case.status}: {header}")
    if case.log_damaged:
        if "⚠" in header and ("log damaged" in events or "incomplete record" in header):
            case.noticed = True
        else:
            counts.fail(case, f"replay shows no notice: {header}")


def check_attach(counts: Counts, case: Case, session: Session) -> None:
    """Attach, caught up: the expected status ("error" for a file that is not a log) and the notice."""
    try:
        status, header = asyncio.run(attach_header(session))
    except Exception as err:  # noqa: BLE001 - anything escaping the app is a crash the user would see
        counts.tracebacks += 1
        counts.fail(case, f"attach crashed: {type(err).__name__}: {err}")
        return
    expected = "error" if case.log_unreadable else case.status  # "✖ LOG ERROR: not a session log"
    if status != expected:
        counts.wrong_statuses += 1
        counts.fail(case, f"attach says {status}, expected {expected}: {header}")
    if case.log_damaged and "⚠" not in header:
        counts.fail(case, f"attach shows no notice: {header}")


def check_command(counts: Counts, case: Case, session: Session, args: list[str], root: Path) -> None:
    """A real subprocess: exit 0, or a one-line error; never a traceback."""
    before = session.log_path.read_bytes() if session.log_path.exists() else b""
    out = subprocess.run([sys.executable, "-m", "enas_tui", *args, "--sessions-dir", str(root)],
                         capture_output=True, text=True, env=ENV, timeout=600, cwd=root)
    counts.commands += 1
    if check_traceback(counts, case, args[0], out.stderr):
        return
    if out.returncode != 0:
        if one_line_error(out.stderr):
            counts.clean_errors += 1
            expected = case.log_unreadable or case.settings_lost or args[0] in ("analyze", "report")
            if not expected:
                counts.fail(case, f"{args[0]} refused: {out.stderr.strip()}")
        else:
            counts.fail(case, f"{args[0]} exit {out.returncode} without a one-line error: {out.stderr[-200:]!r}")
        return
    if args[0] == "train":
        check_resumed(counts, case, session, before)


def check_resumed(counts: Counts, case: Case, session: Session, before: bytes) -> None:
    """A resume keeps every byte before what it set aside, and the side file holds the rest."""
    after = session.log_path.read_bytes()
    sides = sorted(session.path.glob("events.log.*-*"))
    kept = len(before) - sum(p.stat().st_size for p in sides)
    if after[:kept] != before[:kept]:
        counts.fail(case, "resume rewrote recorded bytes")
    if sides and b"".join(p.read_bytes() for p in sides) != before[kept:]:
        counts.fail(case, "the side file does not hold the bytes set aside")
    if session.state().status != "finished":
        counts.fail(case, f"after resume: {session.state().status}")


def run(base_session: Session, work: Path, n: int = 100, seed: int = 0, pilot_every: int = 3,
        resumes: int = 6, analyses: int = 3, reports: int = 2) -> Counts:
    """Build the corpus under ``work``, run every check, return the counts."""
    base = Base.of(base_session)
    root = work / "corpus"
    root.mkdir(parents=True)
    cases = corpus(base, root, n, seed)
    counts = Counts(cases=len(cases))
    first = base.frames[0][2]
    for case in cases:  # a resume needs the settings: meta.json's, else the log's session_start
        case.settings_lost = case.kind == "flip_and_meta_missing" and first in case.lost
    clock = time.perf_counter()
    check_sessions(counts, cases, root)
    counts.seconds["sessions"] = time.perf_counter() - clock
    rng = random.Random(seed + 1)
    for case in cases:
        check_records(counts, case, base, Session(root / case.name))
    clock = time.perf_counter()
    for i, case in enumerate(cases):
        if i % pilot_every == 0 or case.log_unreadable:
            check_dashboard(counts, case, Session(root / case.name), attach=i % (2 * pilot_every) == 0)
    counts.seconds["replay/attach"] = time.perf_counter() - clock
    counts.notices = sum(case.noticed for case in cases)
    clock = time.perf_counter()
    sample = rng.sample(cases, min(len(cases), resumes + analyses + reports))
    for j, case in enumerate(sample):
        session = Session(root / case.name)
        if j < resumes:
            check_command(counts, case, session, ["train", "--resume", case.name, "--epochs", "3"], root)
        elif j < resumes + analyses:
            check_command(counts, case, session, ["analyze", case.name, "--n", "6", "--format", "json"], root)
        else:
            check_command(counts, case, session, ["report", case.name, "--n", "6", "--out", str(work / case.name)],
                          root)
    counts.seconds["resume/analyze/report"] = time.perf_counter() - clock
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pilot-every", type=int, default=1, help="open replay (and attach) for every k-th case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        base = make_base(work / "base")
        counts = run(base, work, n=args.cases, seed=args.seed, pilot_every=args.pilot_every)
        print(counts.summary())
        print(f"({time.perf_counter() - started:.0f} s)")
        for failure in counts.failures:
            print("  " + failure)


if __name__ == "__main__":
    main()
