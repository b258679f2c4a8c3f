"""Panel 5: training progress and curves.

Epoch and step progress with an ETA (from the recorded event times, so replay shows the ETA the
run had then), tokens per second, and sparklines of the shared model's training perplexity,
validation perplexity, reward (with the baseline) and entropy with their latest values. The
lines come in order of importance, so a short panel keeps progress, both perplexities, reward and
entropy. Perplexities are drawn on a log scale and every curve on its robust range: one exploded
step cannot flatten the rest, and the cells it falls in are drawn as an arrow (↑) and counted.

A retrain has no controller: its lines are progress, training and validation perplexity (the
latter on NT-ASGD's averaged weights once it switched), the learning rate of the schedule, the
switch to averaged SGD (or the rule that will trigger it), and at the end the test perplexity.
"""

from __future__ import annotations

from rich.text import Text

from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import CLIP_HIGH, duration, gauge, runs, spark
from enas_tui.tui.state import DashboardState, Series, fmt

LABEL = 10


class TrainingPanel(Panel):
    TITLE = "training"
    PARTS = ("progress", "training", "status")

    def need(self, width: int) -> Need:
        return Need(essential=5, full=7, grow=0)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        if state.epoch == 0 and not state.shared_ppl:
            return Text("waiting for the first epoch", style="dim")
        if state.is_retrain:
            return self.draw_retrain(state, width, height)
        eta = self.speed(state)
        progress = self.progress(state, width)
        if progress.cell_len + 2 + eta.cell_len <= width:
            progress += Text("  ") + eta
            eta = None
        reward = self.curve("reward", state.reward, 3, False, width, extra=self.baseline_note(state, width))
        lines = [
            progress,
            self.curve("train ppl", state.shared_ppl, 1, True, width, extra=self.skipped_note(state)),
            self.curve("valid ppl", state.valid_ppl, 1, True, width),
            reward,
            self.curve("entropy", state.entropy, 2, False, width),
        ]
        if eta is not None:
            lines.append(eta)
        if "baseline" not in reward.plain:
            lines.append(self.curve("baseline", state.baseline, 3, False, width))
        return lines_to_text(lines, height)

    def draw_retrain(self, state: DashboardState, width: int, height: int) -> Text:
        eta = self.speed(state)
        progress = self.progress(state, width)
        if progress.cell_len + 2 + eta.cell_len <= width:
            progress += Text("  ") + eta
            eta = None
        averaged = Text(" avg", style="bold cyan") if state.averaged else None
        lines = [
            progress,
            self.curve("train ppl", state.shared_ppl, 1, True, width, extra=self.skipped_note(state)),
            self.curve("valid ppl", state.valid_ppl, 1, True, width, extra=averaged),
            self.curve("lr", state.lr_history, 2, False, width),
            self.asgd_line(state),
        ]
        if state.result is not None:
            lines.insert(1, self.result_line(state))
        if eta is not None:
            lines.append(eta)
        return lines_to_text(lines, height)

    @staticmethod
    def asgd_line(state: DashboardState) -> Text:
        """NT-ASGD: when it switched and why, or the rule that will switch it."""
        line = Text(f"{'ASGD':<{LABEL}}", style="dim")
        e = state.asgd
        if e is not None:
            line.append("on", style="bold cyan")
            return line.append(f" since epoch {e.epoch}: valid {fmt(e.valid_ppl, 1)} > {fmt(e.reference_ppl, 1)}, "
                               f"the best before the last {e.nonmono} checks (after step {e.step})")
        nonmono = state.settings.get("train", {}).get("nonmono")
        line.append("off", style="bold")
        if nonmono:
            return line.append(f": on when a check is worse than the best before the last {nonmono}", style="dim")
        return line.append(": never (train.nonmono = 0)", style="dim")

    @staticmethod
    def result_line(state: DashboardState) -> Text:
        r = state.result
        weights = "averaged weights" if r.averaged else "weights"
        line = Text(f"{'test ppl':<{LABEL}}", style="dim")
        line.append(fmt(r.test_ppl, 2), style="bold green")
        return line.append(f" ({weights} of epoch {r.epoch}: valid {fmt(r.valid_ppl, 2)})")

    @staticmethod
    def progress(state: DashboardState, width: int) -> Text:
        head = f"epoch {state.epoch}/{state.epochs or '?'} "
        tail = (f" {state.epoch_fraction:4.0%} steps {state.shared_done}/{state.shared_steps}" if state.is_retrain
                else f" {state.epoch_fraction:4.0%} shared {state.shared_done}/{state.shared_steps}"
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
    def skipped_note(state: DashboardState) -> Text | None:
        """Non-finite shared steps skipped in the last epoch (EpochEnd.skipped_shared_steps), if any."""
        if not state.skipped:
            return None
        return Text(f" {state.skipped} skipped", style="bold yellow")

    @staticmethod
    def baseline_note(state: DashboardState, width: int) -> Text | None:
        if width < 56 or state.baseline.last is None:
            return None
        return Text(f" baseline {fmt(state.baseline.last, 3)}", style="dim")

    @staticmethod
    def curve(label: str, series: Series, digits: int, log: bool, width: int, extra: Text | None = None) -> Text:
        value = fmt(series.last, digits)
        extra = extra or Text("")
        room = width - LABEL - len(value) - 1 - extra.cell_len
        drawn = spark(series.values(), room, log=log) if room > 0 else None
        clip = Text("")
        if drawn is not None and drawn.clipped:
            clip = Text(f" {CLIP_HIGH}{drawn.clipped}", style="bold red")
            drawn = spark(series.values(), room - clip.cell_len, log=log)
        line = Text(f"{label:<{LABEL}}", style="dim")
        if drawn is not None and room > 0:
            cells = drawn.text.ljust(max(0, room - clip.cell_len))
            line += runs((ch, "bold red" if ch in "↑↓" else "yellow") for ch in cells)
        return line + clip + Text(f" {value}") + extra
