"""Panel 4: the rolling Table 1, Spearman correlations next to the paper's values.

For the latest probe set: the correlation between the L2 distance of final hidden states and each
similarity measure, its p-value, the value the paper reports for this controller setting, and the
history of the correlation over the run. Two columns have more than one reading (BRIEF decision
1): common activations (paper: parent and activation must match; aligned: same activation at the
same index) and GED (paper: the authors' structure-only approximation; aligned: our closed form
under node i <-> node i; exact); ``a`` and ``r`` cycle them, the default is the paper's.

Colour means one thing here, said on screen: a correlation is green when it has the paper's sign
and yellow when it has the opposite sign, with a mark (✓ / ✗) that says the same without colour.
A measure the trainer did not compute is "n/a" with the reason, never a silent dash. All four
rows are always drawn: a panel too short for them says how many rows it hides.
"""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text

from enas_tui.config import SettingsError, live_ged_readings
from enas_tui.tui.braille import Canvas, scale
from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import pvalue, runs, spark
from enas_tui.tui.state import READINGS, SPEARMAN_COLUMNS, DashboardState, Series, column_measure

NAMES = {
    "common_activations": "common acts",
    "common_connections": "common conns",
    "ged": "GED",
    "abs_perf_diff": "|perf diff|",
}
SHORT = {"common_activations": "acts", "common_connections": "conns", "ged": "GED", "abs_perf_diff": "|Δppl|"}
AGREE, DISAGREE = ("✓", "green"), ("✗", "yellow")
READING_KEYS = {"common_activations": "a", "ged": "r"}


def agreement(rho: float | None, paper: float | None) -> tuple[str, str] | None:
    """(mark, colour) for a correlation against the paper's value: same sign or not."""
    if rho is None or paper is None or not math.isfinite(rho) or paper == 0:
        return None
    return AGREE if (rho > 0) == (paper > 0) else DISAGREE


def rho_text(rho: float | None, paper: float | None) -> Text:
    """The correlation with its agreement mark (7 cells), or n/a."""
    if rho is None:
        return Text(f"{'n/a':>6} ", style="dim")
    mark = agreement(rho, paper)
    if mark is None:
        return Text(f"{rho:+6.3f} ", style="bold")
    return Text(f"{rho:+6.3f}", style=f"bold {mark[1]}") + Text(mark[0], style=mark[1])


class SpearmanPanel(Panel):
    TITLE = "rolling Table 1 (Spearman)"
    PARTS = ("spearman", "status")
    SEARCH_ONLY = "Table 1: the controller's hidden states against its cells"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.readings: dict[str, str] = {column: choices[0] for column, choices in READINGS.items()}

    def cycle_reading(self, column: str) -> str:
        """The next reading of ``column`` (paper -> aligned [-> exact] -> paper)."""
        choices = READINGS[column]
        self.readings[column] = choices[(choices.index(self.readings[column]) + 1) % len(choices)]
        self._stamp = None
        self.refresh()
        return self.readings[column]

    def need(self, width: int) -> Need:
        return Need(essential=5, full=6, grow=0)

    def title(self, state: DashboardState) -> str:
        diag = state.diagnostics
        if diag is None:
            return "rolling Table 1 (Spearman)"
        who = f" vs paper ({state.controller})" if state.paper_row else ""
        return f"rolling Table 1: n={diag.n} at e{diag.epoch}:{diag.step}{who}"

    # -- what each row says ---------------------------------------------------------------------
    def label(self, column: str, wide: bool) -> str:
        reading = self.readings.get(column)
        if wide:
            return NAMES[column] if reading is None else f"{SHORT[column]} ({reading})"
        return SHORT[column] if reading is None else f"{SHORT[column]}:{reading[:3]}"

    def reason(self, state: DashboardState, column: str, measure: str, wide: bool) -> str:
        """Why a measure has no value at this probe: computed on some probes only (the performance
        column and the GEDs of ``train.live_ged``, every ``train.perf_every``), or never live."""
        train = state.settings.get("train", {})
        every = train.get("perf_every")
        try:
            live = {f"ged_{r}" for r in live_ged_readings(str(train.get("live_ged", "none")))}
        except SettingsError:
            live = set()
        if column == "abs_perf_diff" or measure in live:
            return (f"every {every} probes" if every else "not at this probe") if wide else "not here"
        if measure not in state.spearman:
            return "not computed live" if wide else "not live"
        return "undefined here" if wide else "undef."

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        if state.diagnostics is None:
            return Text("no diagnostics yet: they follow each probe", style="dim")
        paper = state.paper_row or {}
        wide = width >= 38
        name_w = 14 if wide else 8
        fixed = name_w + 1 + 7 + 7 + (8 if wide else 0)
        room = width - fixed - 1
        # The first column's heading is the colour legend: it is on screen whenever the rows are.
        head = Text(AGREE[0], style=AGREE[1]) + Text(" paper " if wide else "=p ", style=AGREE[1])
        head += Text(DISAGREE[0], style=DISAGREE[1]) + Text(" not" if wide else "=n", style=DISAGREE[1])
        head.pad_right(name_w - head.cell_len)
        head.append(f" {'rho':>6}  {'paper':>6}" + (f" {'p':>7}" if wide else ""), style="dim")
        if room >= 8:
            head.append(" history, own range")
        rows = []
        for column in SPEARMAN_COLUMNS:
            measure = column_measure(column, self.readings.get(column))
            values = state.spearman.get(measure) or {}
            rho, ref = values.get("rho"), paper.get(column)
            row = Text(f"{self.label(column, wide):<{name_w}} ") + rho_text(rho, ref)
            row.append(f" {ref:+6.3f}" if ref is not None else f" {'-':>6}", style="italic")
            if rho is None:
                row.append(" " + self.reason(state, column, measure, wide), style="dim")
            else:
                if wide:
                    row.append(f" {pvalue(values.get('p')):>7}")
                if room >= 4:
                    row += self.history(state.spearman_history.get(measure), room)
            rows.append(row)
        lines = [head, *rows]
        if height >= 8 + 4 * len(SPEARMAN_COLUMNS) and width >= 30:
            lines += self.charts(state, width, (height - 8) // len(SPEARMAN_COLUMNS))
        lines.append(self.legend(wide))
        if not paper:
            lines.append(Text(f"no paper row for the {state.controller or 'unknown'} controller", style="dim"))
        if height < len(lines):
            return self.fit(lines, height)
        return lines_to_text(lines, height)

    @staticmethod
    def history(series: Series | None, room: int) -> Text:
        values = series.values() if series is not None else []
        if len(values) < 2:
            return Text("")
        label_room = 13 if room >= 24 else 0
        drawn = spark(values, room - label_room, robust=False)
        text = Text(" " + drawn.text, style="cyan")
        if label_room:
            text.append(f" {drawn.lo:+.2f}…{drawn.hi:+.2f}", style="dim")
        return text

    def charts(self, state: DashboardState, width: int, each: int) -> list[Text]:
        """Each measure's history as a Braille chart on its own range, the zero line dashed."""
        lines: list[Text] = [Text("")]
        rows = max(2, each - 1)
        for column in SPEARMAN_COLUMNS:
            measure = column_measure(column, self.readings.get(column))
            series = state.spearman_history.get(measure)
            values = np.asarray(series.values() if series is not None else [], dtype=np.float64)
            lines.append(Text(f"{self.label(column, True)}: rho per probe set, own range", style="bold"))
            if len(values) < 2:
                lines += [Text("  not enough probe sets yet", style="dim")] + [Text("")] * (rows - 1)
                continue
            lines += chart_lines(values, width, rows)
        return lines

    def legend(self, wide: bool) -> Text:
        text = Text(AGREE[0], style=AGREE[1]).append(" same sign as the paper, " if wide else " same sign, ")
        text.append(DISAGREE[0], style=DISAGREE[1]).append(" opposite")
        text.append(" · a, r: readings", style="dim")
        return text

    @staticmethod
    def fit(lines: list[Text], height: int) -> Text:
        """Too short for everything: the rows come first, and the panel says what it hides."""
        rows = lines[1:1 + len(SPEARMAN_COLUMNS)]
        if height >= len(rows) + 1:
            shown = [lines[0], *rows] + lines[1 + len(rows):][: height - len(rows) - 1]
            return lines_to_text(shown, height)
        hidden = len(rows) - (height - 1)
        return lines_to_text(rows[: height - 1] + [Text(f"+{hidden} rows: zoom (4)", style="bold yellow")], height)


def chart_lines(values: np.ndarray, width: int, rows: int) -> list[Text]:
    """A Braille line chart of ``values`` on their own range, labelled, with a dashed zero line."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01
    label_w = 7
    canvas = Canvas(width - label_w, rows)
    if lo < 0 < hi:
        canvas.hline(int(scale([0.0], lo, hi, canvas.dots_y, flip=True)[0]), layer=1)
    xs = scale(np.arange(len(values)), 0, max(1, len(values) - 1), canvas.dots_x)
    ys = scale(values, lo, hi, canvas.dots_y, flip=True)
    for i in range(1, len(values)):
        canvas.line(int(xs[i - 1]), int(ys[i - 1]), int(xs[i]), int(ys[i]), layer=2)
    if len(values) == 1:
        canvas.dot(int(xs[0]), int(ys[0]), layer=2)
    out = []
    zero_row = None if not lo < 0 < hi else int(scale([0.0], lo, hi, canvas.dots_y, flip=True)[0]) // 4
    for r, row in enumerate(canvas.rows()):
        label = f"{hi:+.2f} " if r == 0 else (f"{lo:+.2f} " if r == rows - 1 else ("   0  " if r == zero_row else ""))
        line = Text(f"{label:>{label_w}}", style="dim")
        line += runs((cell.char, "cyan" if cell.layer >= 2 else "dim") for cell in row)
        out.append(line)
    return out
