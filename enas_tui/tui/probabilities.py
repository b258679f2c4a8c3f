"""Panel 1: the controller's action probabilities (the paper's Fig. 1 and Fig. 4, live).

For each of the 2N-1 decisions: the controller's distribution over its options (one bar per
option, averaged over the probe architectures) and the probability of its most likely action
across the probe architectures as a min-median-max band. A collapsed controller (Fig. 4,
unsupervised) shows thin bands: its certainty does not depend on the earlier decisions.
When the panel is too short for a row per decision it draws Fig. 4 itself: one column per step.
The title says how the probe was taken (Probe.mode: "derive", logits over the temperature as the
authors analysed, or "train", with the tanh constant) where the log records it.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text

from enas_tui.search_space import decision_is_parent, decision_labels, num_decisions
from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import band, level, ticks
from enas_tui.tui.state import DashboardState, ProbeSummary

LABEL = 9  # "parent 11"


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
        return Need(essential=4, full=2 + steps if table else 12, grow=3)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        summary = state.probe_summary()
        if summary is None:
            return Text("no probe yet: the first comes after train.probe_every controller steps", style="dim")
        steps = len(summary.sizes)
        head = self.caption(state, summary)
        k = summary.mean.shape[1]
        if height >= steps + 2 and width >= LABEL + k + 7:
            lines = [head, self.header(summary, width), *self.rows(state, summary, width)]
            spare = height - len(lines)
            if spare >= 6:  # room for Fig. 4 under the table as well
                lines += [Text(""), *self.chart(state, summary, width, min(spare - 1, 12))]
            return lines_to_text(lines, height)
        half = (steps + 1) // 2
        if height >= half + 2 and width >= 2 * (LABEL + k + 13) + 2:  # the table in two columns
            col = (width - 2) // 2
            rows = self.rows(state, summary, col)
            left, right = rows[:half], rows[half:]
            lines = [head, self.header(summary, col) + Text("  ") + self.header(summary, col)]
            for i, row in enumerate(left):
                line = row.copy()
                line.pad_right(col - line.cell_len)
                if i < len(right):
                    line += Text("  ") + right[i]
                lines.append(line)
            return lines_to_text(lines, height)
        return lines_to_text([head, *self.chart(state, summary, width, height - 1)], height)

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
    def header(summary: ProbeSummary, width: int) -> Text:
        k = summary.mean.shape[1]
        rest = width - (LABEL + 1 + k + 1 + 4 + 1)
        axis = "" if rest < 6 else "min─median─max, 0…1"[: rest]
        return Text(f"{'step':<{LABEL}} {'options':<{k}} maxp {axis}", style="dim")

    @staticmethod
    def rows(state: DashboardState, summary: ProbeSummary, width: int) -> list[Text]:
        steps, k = summary.mean.shape
        labels = decision_labels(steps // 2 + 1)[:steps]
        rest = width - (LABEL + 1 + k + 1 + 4 + 1)
        out = []
        for d in range(steps):
            row = Text(f"{labels[d]:<{LABEL}} ")
            size = summary.sizes[d]
            row.append("".join(level(float(p)) for p in summary.mean[d, :size]).ljust(k), style="cyan")
            lo, mid, hi = float(summary.max_min[d]), float(summary.max_median[d]), float(summary.max_max[d])
            row.append(f" {mid:.2f}")
            if rest >= 6:
                row.append(" " + band(lo, mid, hi, rest), style="green")
            out.append(row)
        return out

    @staticmethod
    def chart(state: DashboardState, summary: ProbeSummary, width: int, height: int) -> list[Text]:
        """Fig. 4 in text: a column per step, rows for probability, the band and its median."""
        steps = len(summary.sizes)
        rows = max(1, height - 1)
        cw = max(1, min(3, (width - 4) // steps))
        lines = []
        for r in range(rows):
            top = 1 - r / rows
            bottom = 1 - (r + 1) / rows
            line = Text("1.0 " if r == 0 else ("0.0 " if r == rows - 1 else "    "), style="dim")
            for d in range(steps):
                lo, mid, hi = summary.max_min[d], summary.max_median[d], summary.max_max[d]
                if bottom <= mid <= top or (r == rows - 1 and mid < bottom):
                    cell = "●"
                elif hi >= bottom and lo <= top:
                    cell = "│"
                else:
                    cell = " "
                line.append(cell.center(cw) if cw > 1 else cell, style="green")
            lines.append(line)
        if height >= 2:
            lines.append(Text("step" + ticks(steps, cw, max(0, width - 4)), style="dim"))
        return lines
