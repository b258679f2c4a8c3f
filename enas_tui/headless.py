"""The headless view: Rich progress bars for the epoch and its steps, one summary line per epoch.

It is only an event listener, so the trainer knows nothing about it; the dashboard is another
listener of the same events.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .events import (
    BufferFill, Checkpoint, ControllerStep, Derived, EpochEnd, EpochStart, Error, Event, SessionEnd,
    SessionStart, SharedStep, Warning,
)


def _fmt(value: float | None, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if abs(value) < 1e6 else f"{value:.2e}"  # a diverged ppl stays short


class HeadlessView:
    """Listener that renders training progress to a Rich console."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False, soft_wrap=True)  # log lines never wrap
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.epoch_task = None
        self.step_task = None
        self.last_buffer: BufferFill | None = None

    def __enter__(self) -> "HeadlessView":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _on_session_start(self, e: SessionStart) -> None:
        how = f"resumed from {e.resumed_from}" if e.resumed_from else "started"
        self.console.print(f"session {e.session_id} {how}: controller={e.controller} seed={e.seed} device={e.device}")
        epochs = e.settings["train"]["epochs"]
        if self.epoch_task is None:
            self.epoch_task = self.progress.add_task("epochs", total=epochs, info="")
            self.step_task = self.progress.add_task("steps", total=1, info="")

    def _on_epoch_start(self, e: EpochStart) -> None:
        self.progress.update(self.epoch_task, completed=e.epoch - 1, total=e.epochs)
        self.progress.reset(self.step_task, total=e.shared_steps + e.controller_steps,
                            description=f"epoch {e.epoch}", info="")

    def _on_shared_step(self, e: SharedStep) -> None:
        self.progress.update(self.step_task, advance=1, info=f"ppl {e.ppl:8.1f}  {e.tokens_per_s:7.0f} tok/s")

    def _on_controller_step(self, e: ControllerStep) -> None:
        self.progress.update(self.step_task, advance=1, info=f"reward {e.reward:6.3f}  entropy {e.entropy:5.2f}")

    def _on_buffer(self, e: BufferFill) -> None:
        self.last_buffer = e

    def _on_epoch_end(self, e: EpochEnd) -> None:
        self.progress.update(self.epoch_task, completed=e.epoch)
        buf = self.last_buffer
        buffer = f" buffer {buf.size}/{buf.capacity}{' sup' if buf.supervised else ''}" if buf else ""
        skipped = f" | {e.skipped_shared_steps} skipped" if e.skipped_shared_steps else ""
        self.console.print(
            f"epoch {e.epoch:3d} | train ppl {_fmt(e.train_ppl, '8.2f')}{skipped} | valid ppl "
            f"{_fmt(e.valid_ppl, '8.2f')} | reward {_fmt(e.reward, '.3f')} | entropy {_fmt(e.entropy, '.2f')}"
            f"{buffer} | {e.elapsed_s:.1f}s")

    def _on_derived(self, e: Derived) -> None:
        self.console.print(f"derived (best of {e.candidates}): {e.arch}  valid ppl {e.ppl:.2f}")

    def _on_warning(self, e: Warning) -> None:
        self.console.print(f"[yellow]warning:[/] {e.message}")

    def _on_error(self, e: Error) -> None:
        self.console.print(f"[red]error:[/] {e.message}")

    def _on_checkpoint(self, e: Checkpoint) -> None:
        if e.kind != "epoch":
            self.console.print(f"checkpoint saved: {e.path}")

    def _on_session_end(self, e: SessionEnd) -> None:
        best = f"; best valid ppl {e.best_ppl:.2f} ({e.best_arch})" if e.best_ppl is not None else ""
        self.console.print(f"session {e.status}: {e.message}{best}")
