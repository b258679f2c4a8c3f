"""The headless view: Rich progress bars for the epoch and its steps, one summary line per epoch.

It is only an event listener, so the trainer knows nothing about it; the dashboard is another
listener of the same events. When its output is not a terminal (a detached run writing
trainer.log, a job scheduler's log file) the bars would show nothing until the end, so it writes a
plain progress line every ``progress_every`` seconds instead (step, ppl, tokens/s, ETA): enough
for ``tail -f`` to say how far a run is.
"""

from __future__ import annotations

import datetime as dt
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .events import (
    AsgdSwitch, BufferFill, Checkpoint, ControllerStep, Derived, EpochEnd, EpochStart, Error, Event,
    RetrainResult, SessionEnd, SessionStart, SharedStep, Validation, Warning,
)


def _fmt(value: float | None, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if abs(value) < 1e6 else f"{value:.2e}"  # a diverged ppl stays short


class HeadlessView:
    """Listener that renders training progress to a Rich console."""

    def __init__(self, console: Console | None = None, progress_every: float = 5.0,
                 clock=time.monotonic):
        self.console = console or Console(highlight=False, soft_wrap=True)  # log lines never wrap
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.epoch_task = None
        self.step_task = None
        self.last_buffer: BufferFill | None = None
        self.lines = None if self.console.is_terminal else ProgressLines(progress_every, clock)
        self.retrain = False  # a retrain session: its epoch lines show lr and averaging, not rewards
        self.lr: float | None = None
        self.averaged = False

    def __enter__(self) -> "HeadlessView":
        if self.lines is None:  # the bars only mean something on a terminal
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lines is None:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)
        if self.lines is not None:
            self.lines.track(event)
            line = self.lines.due()
            if line:
                self.console.print(line)

    def _on_session_start(self, e: SessionStart) -> None:
        how = f"resumed from {e.resumed_from}" if e.resumed_from else "started"
        self.retrain = e.kind == "retrain"
        if self.retrain:
            origin = f"session {e.source}" if e.source else "--arch"
            self.console.print(f"retrain {e.session_id} {how}: cell {e.arch} (from {origin}) seed={e.seed} "
                               f"device={e.device}")
        else:
            self.console.print(f"session {e.session_id} {how}: controller={e.controller} seed={e.seed} "
                               f"device={e.device}")
        epochs = e.settings["train"]["epochs"]
        if self.epoch_task is None:
            self.epoch_task = self.progress.add_task("epochs", total=epochs, info="")
            self.step_task = self.progress.add_task("steps", total=1, info="")

    def _on_epoch_start(self, e: EpochStart) -> None:
        self.progress.update(self.epoch_task, completed=e.epoch - 1, total=e.epochs)
        self.progress.reset(self.step_task, total=e.shared_steps + e.controller_steps,
                            description=f"epoch {e.epoch}", info="")

    def _on_shared_step(self, e: SharedStep) -> None:
        self.lr = e.lr
        self.progress.update(self.step_task, advance=1, info=f"ppl {e.ppl:8.1f}  {e.tokens_per_s:7.0f} tok/s")

    def _on_controller_step(self, e: ControllerStep) -> None:
        self.progress.update(self.step_task, advance=1, info=f"reward {e.reward:6.3f}  entropy {e.entropy:5.2f}")

    def _on_buffer(self, e: BufferFill) -> None:
        self.last_buffer = e

    def _on_validation(self, e: Validation) -> None:
        self.averaged = e.averaged

    def _on_epoch_end(self, e: EpochEnd) -> None:
        self.progress.update(self.epoch_task, completed=e.epoch)
        if self.retrain:
            averaged = " (averaged)" if self.averaged else ""
            self.console.print(
                f"epoch {e.epoch:3d} | train ppl {_fmt(e.train_ppl, '8.2f')} | valid ppl {_fmt(e.valid_ppl, '8.2f')}"
                f"{averaged} | lr {_fmt(self.lr, '.3g')} | {e.elapsed_s:.1f}s")
            return
        buf = self.last_buffer
        buffer = f" buffer {buf.size}/{buf.capacity}{' sup' if buf.supervised else ''}" if buf else ""
        skipped = f" | {e.skipped_shared_steps} skipped" if e.skipped_shared_steps else ""
        self.console.print(
            f"epoch {e.epoch:3d} | train ppl {_fmt(e.train_ppl, '8.2f')}{skipped} | valid ppl "
            f"{_fmt(e.valid_ppl, '8.2f')} | reward {_fmt(e.reward, '.3f')} | entropy {_fmt(e.entropy, '.2f')}"
            f"{buffer} | {e.elapsed_s:.1f}s")

    def _on_derived(self, e: Derived) -> None:
        self.console.print(f"derived (best of {e.candidates}): {e.arch}  valid ppl {e.ppl:.2f}")

    def _on_asgd_switch(self, e: AsgdSwitch) -> None:
        self.console.print(f"switched to averaged SGD after step {e.step}: valid ppl {e.valid_ppl:.2f} is worse "
                           f"than {e.reference_ppl:.2f}, the best before the last {e.nonmono} checks")

    def _on_retrain_result(self, e: RetrainResult) -> None:
        weights = "averaged weights" if e.averaged else "weights"
        search = f"; search-phase ppl of this cell {e.search_ppl:.2f}" if e.search_ppl is not None else ""
        self.console.print(f"test ppl {_fmt(e.test_ppl, '.2f')} | valid ppl {_fmt(e.valid_ppl, '.2f')} "
                           f"({weights} of epoch {e.epoch}, {e.params:,} parameters){search}")

    def _on_warning(self, e: Warning) -> None:
        self.console.print(f"[yellow]warning:[/] {e.message}")

    def _on_error(self, e: Error) -> None:
        self.console.print(f"[red]error:[/] {e.message}")

    def _on_checkpoint(self, e: Checkpoint) -> None:
        if e.kind not in ("epoch", "best"):
            self.console.print(f"checkpoint saved: {e.path}")

    def _on_session_end(self, e: SessionEnd) -> None:
        best = f"; best valid ppl {e.best_ppl:.2f} ({e.best_arch})" if e.best_ppl is not None else ""
        self.console.print(f"session {e.status}: {e.message}{best}")


class ProgressLines:
    """A plain progress line every few seconds: epoch, step, ppl, tokens/s, reward, ETA."""

    def __init__(self, every: float = 5.0, clock=time.monotonic):
        self.every, self.clock = every, clock
        self.last_line = clock()
        self.epoch = self.epochs = 0
        self.steps = self.done = 0
        self.ppl = self.tokens_per_s = self.reward = None
        self.epoch_started: float | None = None
        self.durations: list[float] = []

    def track(self, e: Event) -> None:
        if isinstance(e, EpochStart):
            self.epoch, self.epochs = e.epoch, e.epochs
            self.steps, self.done = e.shared_steps + e.controller_steps, 0
            self.epoch_started = self.clock()
        elif isinstance(e, SharedStep):
            self.done += 1
            self.ppl, self.tokens_per_s = e.ppl, e.tokens_per_s
        elif isinstance(e, ControllerStep):
            self.done += 1
            self.reward = e.reward
        elif isinstance(e, EpochEnd):
            self.durations.append(e.elapsed_s)

    def due(self) -> str | None:
        """The line to print now, or None before ``every`` seconds have passed since the last one."""
        now = self.clock()
        if now - self.last_line < self.every or self.epoch_started is None:
            return None
        self.last_line = now
        return self.line(now)

    def line(self, now: float) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs}", f"step {self.done}/{self.steps}",
                 f"ppl {_fmt(self.ppl)}", f"{_fmt(self.tokens_per_s, ',.0f')} tok/s",
                 f"reward {_fmt(self.reward, '.3f')}"]
        epoch_rest, run_rest = self.eta(now)
        if epoch_rest is not None:
            eta = f"ETA epoch {_duration(epoch_rest)}"
            parts.append(eta + (f", run {_duration(run_rest)}" if run_rest is not None else ""))
        return " | ".join(parts)

    def eta(self, now: float) -> tuple[float | None, float | None]:
        """(rest of this epoch, rest of the run) in seconds, from this epoch's pace and the last epochs'."""
        if self.epoch_started is None or self.done <= 0 or self.steps <= 0:
            return None, None
        elapsed = now - self.epoch_started
        epoch_total = elapsed * self.steps / self.done
        epoch_rest = max(0.0, epoch_total - elapsed)
        recent = self.durations[-5:]
        per_epoch = sum(recent) / len(recent) if recent else epoch_total
        return epoch_rest, epoch_rest + max(0, self.epochs - self.epoch) * per_epoch


def _duration(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))
