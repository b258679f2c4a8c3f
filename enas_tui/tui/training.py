"""Panel 5: training progress and curves.

Epoch and step progress with an ETA (from the recorded event times, so replay shows the ETA the
run had then), tokens per second, and sparklines of shared perplexity, validation perplexity,
reward, baseline and entropy with their latest values. Short panels keep the top lines.
"""

from __future__ import annotations

from rich.text import Text

from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import duration, gauge, sparkline
from enas_tui.tui.state import DashboardState, Series, fmt

CURVES = (  # label, series attribute, digits, log scale
    ("shared ppl", "shared_ppl", 1, True),
    ("valid ppl", "valid_ppl", 1, True),
    ("reward", "reward", 3, False),
    ("baseline", "baseline", 3, False),
    ("entropy", "entropy", 2, False),
)
LABEL = 11


class TrainingPanel(Panel):
    TITLE = "training"
    PARTS = ("progress", "training", "status")

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        if state.epoch == 0 and not state.shared_ppl:
            return Text("waiting for the first epoch", style="dim")
        lines = [self.progress(state, width), self.speed(state)]
        for label, name, digits, log in CURVES:
            lines.append(self.curve(label, getattr(state, name), digits, log, width))
        return lines_to_text(lines, height)

    @staticmethod
    def progress(state: DashboardState, width: int) -> Text:
        head = f"epoch {state.epoch}/{state.epochs or '?'} "
        tail = (f" {state.epoch_fraction:4.0%} shared {state.shared_done}/{state.shared_steps}"
                f" ctrl {state.ctrl_done}/{state.controller_steps}")
        room = width - len(head) - len(tail)
        line = Text(head, style="bold")
        if room >= 4:
            line.append(gauge(state.epoch_fraction, min(room, 24)), style="blue")
        return line + Text(tail)

    @staticmethod
    def speed(state: DashboardState) -> Text:
        epoch_rest, run_rest = state.eta_seconds()
        line = Text(f"ETA epoch {duration(epoch_rest)}, run {duration(run_rest)}")
        if state.tokens_per_s is not None:
            line.append(f" · {state.tokens_per_s:,.0f} tok/s")
        return line

    @staticmethod
    def curve(label: str, series: Series, digits: int, log: bool, width: int) -> Text:
        value = fmt(series.last, digits)
        room = width - LABEL - len(value) - 2
        line = Text(f"{label:<{LABEL}}", style="dim")
        line.append(sparkline(series.values(), room, log=log).ljust(max(0, room)) if room > 0 else "", style="yellow")
        return line + Text(f" {value}")
