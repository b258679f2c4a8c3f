"""Panel 4: the rolling Table 1, Spearman correlations next to the paper's values.

For the latest probe set: the correlation between the L2 distance of final hidden states and each
similarity measure, its p-value, the value the paper reports for this controller setting, and the
history of the correlation over the run as a sparkline. A controller whose hidden state reflects
the architecture has negative correlations for the "common" counts and a positive one for GED.
"""

from __future__ import annotations

from rich.text import Text

from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import pvalue, sparkline
from enas_tui.tui.state import SPEARMAN_COLUMNS, DashboardState

NAMES = {
    "common_activations": "common acts",
    "common_connections": "common conns",
    "ged": "GED",
    "abs_perf_diff": "|perf diff|",
}
SHORT = {"common_activations": "acts", "common_connections": "conns", "ged": "GED", "abs_perf_diff": "|Δppl|"}


def rho_text(rho: float | None) -> Text:
    if rho is None:
        return Text(f"{'-':>6}", style="dim")
    return Text(f"{rho:+6.3f}", style="bold " + ("green" if rho < 0 else "red"))


class SpearmanPanel(Panel):
    TITLE = "rolling Table 1 (Spearman)"
    PARTS = ("spearman",)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        diag = state.diagnostics
        paper = state.paper_row or {}
        if diag is None:
            return Text("no diagnostics yet: they follow each probe", style="dim")
        wide = width >= 34  # room for full names and p-values; else short names, rho and paper
        name_w = 12 if wide else 6
        fixed = name_w + 1 + 6 + (8 if wide else 0) + 7
        spark = width - fixed - 1
        head = Text(f"{'measure' if wide else '':<{name_w}} {'rho':>6}" + (f" {'p':>7}" if wide else "") + f" {'paper':>6}",
                    style="dim")
        if spark >= 8:
            head.append(" history")
        lines = [head]
        for name in SPEARMAN_COLUMNS:
            values = diag.spearman.get(name) or {}
            label = NAMES[name] if wide else SHORT[name]
            row = Text(f"{label:<{name_w}} ") + rho_text(values.get("rho"))
            if wide:
                row.append(f" {pvalue(values.get('p')):>7}")
            ref = paper.get(name)
            row.append(f" {ref:+6.3f}" if ref is not None else f" {'-':>6}", style="italic")
            if spark >= 4:
                row.append(" " + sparkline(state.spearman_history[name].values(), spark, lo=-1.0, hi=1.0),
                           style="cyan")
            lines.append(row)
        who = f"paper: {state.controller}" if paper else "no paper row for this controller"
        lines.append(Text(f"n={diag.n} probe at e{diag.epoch} step {diag.step}; {who}", style="dim"))
        return lines_to_text(lines, height)
