"""Panel 1: the controller's action probabilities (the paper's Fig. 1 and Fig. 4, live).

For each of the 2N-1 decisions: the controller's distribution over its options (one bar per
option, averaged over the probe architectures) and the probability of its most likely action
across the probe architectures as a min-median-max band. A collapsed controller (Fig. 4,
unsupervised) shows thin bands: its certainty does not depend on the earlier decisions.
When the panel is too short for a row per decision it draws Fig. 4 itself: one column per step.
The title says how the probe was taken (Probe.mode: "derive", logits over the temperature as the
authors analysed, or "train", with the tanh constant) where the log records it.

Fig. 1 live: where the log holds the controller's untrained probe (events.UntrainedProbe: the
random controller, read the same way), every step also marks the random controller's median top
probability (``○``, beside the trained median ``●``: like with like; zoomed, the table's ``rand``
column), and a caption line gives Fig. 1's gap as ``enas-tui paper`` computes claim (a): per step
the mean over the probe architectures, trained minus random, averaged over the steps, and the
number of steps at which the trained controller is the more certain. Older logs have no reference
and show neither.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text

from enas_tui.search_space import decision_is_parent, decision_labels, num_decisions
from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import band, level, ticks
from enas_tui.tui.state import DashboardState, Fig1Gap, ProbeSummary

LABEL = 9  # "parent 11"
MARK, MARK_STYLE = "○", "bold magenta"  # the random (untrained) controller's median top probability
WIDE_CAPTION = 56  # narrower: Fig. 1's comparison replaces the caption instead of adding a line


class ProbabilitiesPanel(Panel):
    TITLE = "action probabilities"
    PARTS = ("probe",)
    SEARCH_ONLY = "the controller's action probabilities"

    def title(self, state: DashboardState) -> str:
        mode, where = state.probe_mode, state.probe_state
        if not mode:
            return self.TITLE
        return f"{self.TITLE} ({mode}" + (f", {where}" if where and where != "emit_last" else "") + ")"

    def need(self, width: int) -> Need:
        state = self.state
        steps = num_decisions(state.num_nodes) if state is not None else 23
        k = max(state.decision_sizes) if state is not None else 11
        table = width >= LABEL + k + 7
        # Fig. 1's line under the caption (narrower panels fold it into the caption)
        ref = int(state is not None and state.untrained is not None and width >= WIDE_CAPTION)
        return Need(essential=4 + ref, full=2 + ref + steps if table else 12 + ref, grow=3)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        summary = state.probe_summary()
        if summary is None:
            return Text("no probe yet: the first comes after train.probe_every controller steps", style="dim")
        steps = len(summary.sizes)
        gap = state.fig1_gap()
        if gap is None:
            head = [self.caption(state, summary)]
        elif width >= WIDE_CAPTION:
            head = [self.caption(state, summary), self.gap_line(gap, width)]
        else:  # one line, so the chart keeps its rows in a small terminal
            head = [self.gap_line(gap, width, alone=True)]
        k = summary.mean.shape[1]
        if height >= steps + 1 + len(head) and width >= LABEL + k + 7:
            lines = [*head, self.header(summary, width, gap), *self.rows(state, summary, width, gap)]
            spare = height - len(lines)
            if spare >= 6:  # room for Fig. 4 under the table as well
                lines += [Text(""), *self.chart(state, summary, width, min(spare - 1, 12), gap)]
            return lines_to_text(lines, height)
        half = (steps + 1) // 2
        if height >= half + 1 + len(head) and width >= 2 * (LABEL + k + 13) + 2:  # the table in two columns
            col = (width - 2) // 2
            rows = self.rows(state, summary, col, gap)
            left, right = rows[:half], rows[half:]
            lines = [*head, self.header(summary, col, gap) + Text("  ") + self.header(summary, col, gap)]
            for i, row in enumerate(left):
                line = row.copy()
                line.pad_right(col - line.cell_len)
                if i < len(right):
                    line += Text("  ") + right[i]
                lines.append(line)
            return lines_to_text(lines, height)
        return lines_to_text([*head, *self.chart(state, summary, width, height - len(head), gap)], height)

    @staticmethod
    def caption(state: DashboardState, summary: ProbeSummary) -> Text:
        """The mean over steps of the median top probability (split by kind), then which probe."""
        probe = state.probe
        med = summary.max_median
        parents = np.array(decision_is_parent(len(summary.sizes) // 2 + 1)[: len(med)])
        text = Text(f"max p {np.mean(med):.2f}", style="bold")
        if parents.any() and (~parents).any():
            text.append(f" (act {np.mean(med[~parents]):.2f} par {np.mean(med[parents]):.2f})")
        text.append(f" n={len(probe.archs)} e{probe.epoch}:{probe.step}", style="dim")
        return text

    @staticmethod
    def gap_line(gap: Fig1Gap, width: int, alone: bool = False) -> Text:
        """Fig. 1's comparison in as many words as fit: the per-step means over the probe averaged
        over the steps, trained and random, their gap and the steps above. ``alone``: the panel's
        only caption line, so it names the trained figure too."""
        trained, random, steps = float(np.mean(gap.trained)), float(np.mean(gap.untrained)), len(gap.trained)
        if alone:
            forms = [(f"mean top p {trained:.2f} vs random ", f" {random:.2f}: gap ", f", {gap.above}/{steps} above"),
                     (f"top p {trained:.2f} vs random ", f" {random:.2f}: ", f", {gap.above}/{steps} above"),
                     (f"top p {trained:.2f} vs random", f"{random:.2f} ", f" {gap.above}/{steps}")]
        else:
            forms = [(f"Fig. 1 mean {trained:.2f} vs random ", f" {random:.2f}: gap ",
                      f", above at {gap.above}/{steps} steps"),
                     (f"mean {trained:.2f} vs random ", f" {random:.2f}: gap ", f", above {gap.above}/{steps}")]
        before, middle, after = next((f for f in forms if sum(map(len, f)) + len(MARK) + 5 <= width), forms[-1])
        text = Text(before)
        text.append(MARK, style=MARK_STYLE)
        text.append(middle)
        text.append(f"{gap.gap:+.2f}", style="bold green" if gap.gap > 0 else "bold red")
        text.append(after)
        return text

    @staticmethod
    def header(summary: ProbeSummary, width: int, gap: Fig1Gap | None = None) -> Text:
        k = summary.mean.shape[1]
        extra = 5 if gap is not None else 0
        rest = width - (LABEL + 1 + k + 1 + 4 + extra + 1)
        axis = "" if rest < 6 else "min─median─max, 0…1"[: rest]
        return Text(f"{'step':<{LABEL}} {'options':<{k}} maxp{' rand' if extra else ''} {axis}", style="dim")

    @staticmethod
    def rows(state: DashboardState, summary: ProbeSummary, width: int, gap: Fig1Gap | None = None) -> list[Text]:
        steps, k = summary.mean.shape
        labels = decision_labels(steps // 2 + 1)[:steps]
        extra = 5 if gap is not None else 0
        rest = width - (LABEL + 1 + k + 1 + 4 + extra + 1)
        out = []
        for d in range(steps):
            row = Text(f"{labels[d]:<{LABEL}} ")
            size = summary.sizes[d]
            row.append("".join(level(float(p)) for p in summary.mean[d, :size]).ljust(k), style="cyan")
            lo, mid, hi = float(summary.max_min[d]), float(summary.max_median[d]), float(summary.max_max[d])
            row.append(f" {mid:.2f}")
            ref = None if gap is None else float(gap.untrained_median[d])
            if ref is not None:
                row.append(f" {ref:.2f}", style=MARK_STYLE)
            if rest >= 6:
                row.append(" ")
                row.append_text(marked_band(lo, mid, hi, ref, rest))
            out.append(row)
        return out

    @staticmethod
    def chart(state: DashboardState, summary: ProbeSummary, width: int, height: int,
              gap: Fig1Gap | None = None) -> list[Text]:
        """Fig. 4 in text: a column per step, rows for probability, the band and its median (and
        the random controller's median, where the log has it)."""
        steps = len(summary.sizes)
        rows = max(1, height - 1)
        cw = max(1, min(3, (width - 4) // steps))
        lines = []
        for r in range(rows):
            top = 1 - r / rows
            bottom = 1 - (r + 1) / rows

            def here(p: float) -> bool:
                return bottom <= p <= top or (r == rows - 1 and p < bottom)

            line = Text("1.0 " if r == 0 else ("0.0 " if r == rows - 1 else "    "), style="dim")
            for d in range(steps):
                lo, mid, hi = summary.max_min[d], summary.max_median[d], summary.max_max[d]
                style = "green"
                if here(mid):
                    cell = "●"
                elif gap is not None and here(float(gap.untrained_median[d])):
                    cell, style = MARK, MARK_STYLE
                elif hi >= bottom and lo <= top:
                    cell = "│"
                else:
                    cell = " "
                line.append(cell.center(cw) if cw > 1 else cell, style=style)
            lines.append(line)
        if height >= 2:
            lines.append(Text("step" + ticks(steps, cw, max(0, width - 4)), style="dim"))
        return lines


def marked_band(lo: float, mid: float, hi: float, ref: float | None, width: int) -> Text:
    """plot.band, with the random controller's median marked where it does not hide the trained one."""
    chars = band(lo, mid, hi, width)
    text = Text(chars, style="green")
    if ref is not None and width > 0:
        at = min(width - 1, max(0, int(round(ref * (width - 1)))))
        if chars[at] != "●":
            text = Text(chars[:at], style="green") + Text(MARK, style=MARK_STYLE) + Text(chars[at + 1:], style="green")
    return text
