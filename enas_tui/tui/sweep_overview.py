"""The sweep overview: one live table of a sweep's runs, the aggregates over seeds below it.

``enas-tui watch NAME`` opens it on its own (``WatchApp``); the dashboard of any session that
belongs to a sweep opens it over the panels with ``o`` (or the palette's "Sweep overview"), and
``Esc`` returns. Each row is a run: controller, seed, the varied settings, host, status, epoch,
best ppl, collapse index and the Table 1 row; under the table, the cursor's run in full and the
error of every failed run (a few, the cursor's first, when many failed). The rows sort by
any column (``s`` / ``S`` the next / previous column, ``i`` the other way round, or a click on a
header); ``Enter`` opens the run in the dashboard. ``a`` and ``r`` cycle Table 1's readings as
in the dashboard. Everything shown comes from ``sweep.overview.SweepOverview``, re-read every
second; no torch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from enas_tui import diagnostics
from enas_tui.replication import Interval
from enas_tui.sweep.overview import SORT_KEYS, GroupSummary, RunRow, SweepOverview, sort_rows
from enas_tui.sweep.record import this_host
from enas_tui.tui.dialogs import HelpScreen

REFRESH_S = 1.0
MAX_ERRORS = 3  # failed runs whose error is listed under a narrow table
WIDE = 100  # from this width the table adds host, attempts and (when they vary) settings columns
STATUS_STYLE = {"running": "bold green", "trained": "yellow", "finished": "bold cyan", "stopped": "yellow",
                "crashed": "bold red", "failed": "bold red", "damaged": "bold red", "pending": "dim"}
OUTCOME_STYLE = {"PASS": "bold green", "FAIL": "bold red", "UNDECIDED": "yellow"}
SHORT = {"common_activations": "c.act", "common_connections": "c.con", "ged": "GED", "abs_perf_diff": "|perf|"}

CSS = """
OverviewScreen { layout: vertical; }
OverviewScreen #ov-head { height: auto; background: $panel; }
OverviewScreen #ov-runs { height: 1fr; min-height: 4; }
OverviewScreen #ov-detail { height: auto; }
OverviewScreen #ov-aggregates { height: auto; max-height: 40%; border-top: solid $primary-darken-1; }
"""


@dataclass(frozen=True)
class OpenRun:
    """What the overview was asked to open: a run's session, and what the dashboard should say."""

    session: str
    notice: str | None = None
    host: str | None = None  # a run going on another machine: followed there over ssh (HOST:ID)


@dataclass(frozen=True)
class Column:
    key: str  # a sort key (sweep.overview.SORT_KEYS)
    label: str
    right: bool = False


class OverviewScreen(Screen[OpenRun | None]):
    """The sweep's runs and aggregates; dismissed with the run to open, or None (Esc / q)."""

    CSS = CSS
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "sort(1)", "Sort: next column"),
        Binding("S", "sort(-1)", "Sort: previous column"),
        Binding("i", "invert", "Reverse the order"),
        Binding("a", "reading('common_activations')", "Table 1: next common-activations reading", show=False),
        Binding("r", "reading('ged')", "Table 1: next GED reading", show=False),
        Binding("question_mark,f1", "help", "Keys"),
    ]

    def __init__(self, overview: SweepOverview, can_go_back: bool = True, current: str | None = None):
        """``can_go_back``: Esc returns to what opened it (the dashboard); False in ``watch``, where
        ``q`` quits. ``current``: the session the dashboard shows (its row is marked)."""
        super().__init__()
        self.overview = overview
        self.can_go_back = can_go_back
        self.current = current
        self.sort_key = "run"
        self.descending = False
        self.wide: bool | None = None
        self.order: list[str] = []  # session ids in table order

    # -- building ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="ov-head")
        yield DataTable(id="ov-runs", cursor_type="row", zebra_stripes=True, cell_padding=0, header_height=2)
        yield Static(id="ov-detail")
        with VerticalScroll(id="ov-aggregates"):
            yield Static(id="ov-groups")
        yield Footer()

    def on_mount(self) -> None:
        self.table = self.query_one(DataTable)
        self.table.focus()
        if not self.overview.refreshed:
            self.overview.refresh()
        self.paint()
        self.set_interval(REFRESH_S, self.refresh_view)

    def on_resize(self, event: Resize) -> None:
        if (event.size.width >= WIDE) != self.wide:
            self.paint()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """In ``watch`` there is nothing behind the overview: Esc falls through to the app (quit)."""
        return self.can_go_back if action == "back" else True

    def columns(self) -> list[Column]:
        """The table's columns at this width; labels are two lines (the measure, then its reading)."""
        shown = self.overview.shown
        columns = [Column("controller", "\ncontroller"), Column("seed", "\nseed", True)]
        if self.wide:
            varies = any(row.group for row in self.overview.rows)
            columns += [*([Column("settings", "\nsettings")] if varies else []), Column("host", "\nhost")]
        columns += [Column("status", "\nstatus"), Column("epoch", "\nepoch", True),
                    Column("best ppl", "best\nppl", True), Column("collapse", "col-\nlapse", True)]
        columns += [Column(c, _measure_label(c, shown[c]), True) for c in diagnostics.TABLE1_COLUMNS]
        if self.wide:
            columns.append(Column("attempts", "\ntries", True))
        return columns

    # -- painting ---------------------------------------------------------------------------
    def refresh_view(self) -> None:
        """Re-read the sweep on a thread (a large sweep's logs take a while), then repaint."""
        self.run_worker(self._reread, thread=True, exclusive=True, group="overview")

    def _reread(self) -> None:
        try:
            self.overview.refresh()
        except OSError as err:  # e.g. shared storage gone for a moment: say so, keep the last rows
            self.overview.error = f"cannot read the sweep: {err}"
        with contextlib.suppress(RuntimeError):  # the app closed meanwhile
            self.app.call_from_thread(self.paint)

    def paint(self) -> None:
        self.wide = self.size.width >= WIDE
        rows = sort_rows(self.overview.rows, self.sort_key, self.descending, self.overview.shown)
        columns = self.columns()
        table = self.table
        if self.order:
            cursor = self.order[table.cursor_row] if 0 <= table.cursor_row < len(self.order) else None
        else:
            cursor = self.current  # the first paint: the cursor starts on the dashboard's own run
        with self.app.batch_update():
            table.clear(columns=True)
            for column in columns:
                table.add_column(self._header(column), key=column.key)
            for row in rows:
                table.add_row(*(_padded(self._cell(row, column)) for column in columns), key=row.session)
            self.order = [row.session for row in rows]
            if cursor in self.order:
                table.move_cursor(row=self.order.index(cursor), animate=False)
            self.query_one("#ov-head", Static).update(self._head())
            self.query_one("#ov-groups", Static).update(self._groups())
            self._detail()

    def _header(self, column: Column) -> Text:
        label = column.label
        if column.key == self.sort_key:
            label += "▼" if self.descending else "▲"
        return Text("\n".join(" " + line for line in label.split("\n")), style="bold",
                    justify="right" if column.right else "left")

    def _cell(self, row: RunRow, column: Column) -> Text:
        state, key = row.state, column.key
        numbers = "" if row.source == "final" else "dim"
        if key == "controller":
            mark = "▶ " if row.session == self.current else ""
            return Text(mark + state.run.controller)
        if key == "seed":
            return Text(str(state.run.seed), justify="right")
        if key == "settings":
            return Text(row.group or "-")
        if key == "host":
            host = state.host or "-"
            return Text(host + (" (here)" if host == this_host() else ""))
        if key == "status":
            return Text(state.word, style=STATUS_STYLE.get(state.word, ""))
        if key == "epoch":
            return Text(f"{state.epoch}/{state.epochs}" if state.epochs else "-", justify="right")
        if key == "best ppl":
            return Text("-" if state.best_ppl is None else f"{state.best_ppl:.1f}", justify="right")
        if key == "collapse":
            return Text("-" if row.collapse is None else f"{row.collapse:.3f}", style=numbers, justify="right")
        if key == "attempts":
            return Text(str(state.run.attempts), justify="right")
        rho = row.rho(key, self.overview.shown)
        return Text("-" if rho is None else f"{rho:+.3f}", style=numbers, justify="right")

    def _head(self) -> Text:
        ov = self.overview
        tally = ov.counts()
        order = ("running", "trained", "finished", "stopped", "crashed", "failed", "damaged", "pending")
        text = Text(f" sweep {ov.name}", style="bold")
        text.append(f" · {len(ov.rows)} runs: ")
        text.append_text(Text(", ").join(Text(f"{tally[w]} {w}", style=STATUS_STYLE.get(w, ""))
                                          for w in order if tally.get(w)) or Text("none"))
        text.append(f" · by {self.sort_key}{'▼' if self.descending else '▲'}")
        text.append("\n rho, collapse: final analysis of ")
        text.append("finished", style="bold cyan")
        text.append(" runs, else last live probe ")
        text.append("(dim)", style="dim")
        if ov.error:
            text.append(f"\n {ov.error} (showing the last readable state)", style="bold red")
        return text

    def _detail(self) -> None:
        """The cursor's run in full (id, settings, host, where its numbers come from) and the error
        of each failed run (the cursor's first)."""
        detail = self.query_one("#ov-detail", Static)
        row = self.cursor_row()
        if row is None:
            detail.update(Text(" no runs", style="dim"))
            return
        state = row.state
        text = Text(f" {row.session}", style="bold")
        if row.group:
            text.append(f"  {row.group}")
        text.append(f"  on {state.host or '-'}, {state.run.attempts} attempt(s)")
        if row.source:
            text.append(f"; {'final analysis' if row.source == 'final' else 'live probe'} of epoch {row.at_epoch}")
        lines = [text]
        failed = sorted((r for r in self.overview.rows if r.state.error and not r.state.done),
                        key=lambda r: r is not row)  # the cursor's first
        shown = MAX_ERRORS * (2 if self.wide else 1)
        lines += [Text(f" {r.session}: {r.state.error}", style="bold red") for r in failed[:shown]]
        if len(failed) > shown:
            lines.append(Text(f" ... and {len(failed) - shown} more failed run(s): their rows say which", style="red"))
        detail.update(Text("\n").join(lines))

    def _groups(self) -> Text:
        if not self.overview.groups:
            return Text(" no runs", style="dim")
        narrow = not self.wide
        parts = [_group_text(g, self.overview.shown, narrow) for g in self.overview.groups]
        return Text("\n").join(parts)

    def cursor_row(self) -> RunRow | None:
        if not self.order or not 0 <= self.table.cursor_row < len(self.order):
            return None
        sid = self.order[self.table.cursor_row]
        return next((r for r in self.overview.rows if r.session == sid), None)

    # -- keys -------------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        row = self.cursor_row()
        if row is None:
            return
        if row.state.status == "pending" or not (self.overview.root / row.session).is_dir():
            self.notify(f"{row.session} has not started yet: nothing to attach to", severity="warning")
            return
        if row.remote and row.state.status == "running":  # its trainer writes there: follow it over ssh
            self.dismiss(OpenRun(row.session, host=row.state.host))
            return
        notice = None
        if row.remote:
            notice = (f"{row.session} ran on {row.state.host}: its log is read through the shared sessions "
                      f"folder ({self.overview.root})")
        self.dismiss(OpenRun(row.session, notice))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORT_KEYS:
            self.descending = not self.descending if key == self.sort_key else False
            self.sort_key = key
            self.paint()

    def action_sort(self, step: int) -> None:
        keys = [c.key for c in self.columns() if c.key in SORT_KEYS]
        keys = ["run", *keys]
        at = keys.index(self.sort_key) if self.sort_key in keys else 0
        self.sort_key = keys[(at + step) % len(keys)]
        self.descending = False
        self.paint()

    def action_invert(self) -> None:
        self.descending = not self.descending
        self.paint()

    def action_reading(self, column: str) -> None:
        choices = diagnostics.READINGS[column]
        now = diagnostics.choose_readings(self.overview.readings)[column]
        reading = choices[(choices.index(now) + 1) % len(choices)]
        self.overview.set_reading(column, reading)
        self.notify(f"Table 1 {'GED' if column == 'ged' else 'common activations'}: {reading} reading", timeout=2)
        self.paint()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_help(self) -> None:
        keys = [(b.key, b.description) for b in self.BINDINGS if b.description]
        keys = [("enter", "open the run in the dashboard"), ("↑↓, pgup/pgdn", "move the cursor"), *keys]
        if not self.can_go_back:
            keys = [(k, d) for k, d in keys if k != "escape"] + [("q, esc", "Quit")]
        self.app.push_screen(HelpScreen([("sweep overview keys", [(_key(k), d) for k, d in keys])]))


def _padded(cell: Text) -> Text:
    """A cell with the one space that separates it from the column before (the table has no padding)."""
    out = Text(" ") + cell
    out.justify = cell.justify
    return out


def _key(key: str) -> str:
    return {"escape": "esc", "question_mark,f1": "?, f1"}.get(key, key)


def _measure_label(column: str, measure: str) -> str:
    """A two-line header: the column, then the reading it shows (when it has several)."""
    short = SHORT[column]
    if column in diagnostics.READINGS:
        return f"{short}\n{measure.rsplit('_', 1)[1]}"
    return f"\n{short}"


def _interval(cell: Interval | None, digits: int, narrow: bool) -> str:
    if cell is None or cell.mean is None:
        return "-"
    if cell.half_width is None:
        return f"{cell.mean:+.{digits}f}"
    return f"{cell.mean:+.{digits}f}{'±' if narrow else ' ± '}{cell.half_width:.{digits}f}"


def _group_text(group: GroupSummary, shown: dict[str, str], narrow: bool) -> Text:
    """A group's Table 1 over seeds (mean ± 95% interval per cell, n analysed runs) and its claims."""
    title = Text(" Table 1 over seeds", style="bold")
    title.append(f", {group.label}" if group.label else "")
    title.append(f" (mean ± 95% CI of final analyses): {group.analysed} of {group.runs} runs analysed")
    if group.summary is None:
        return title + Text("\n no run analysed yet", style="dim")
    digits = 2 if narrow else 3
    columns = diagnostics.TABLE1_COLUMNS
    header = ["controller", "n", *(_measure_label(c, shown[c]).replace("\n", " ").strip() for c in columns),
              "collapse"]
    rows = [header]
    for name, c in group.summary.controllers.items():
        rows.append([name, str(len(c.seeds)), *(_interval(c.spearman.get(shown[col]), digits, narrow) for col in columns),
                     _interval(c.collapse.get("hidden"), 3, narrow).lstrip("+")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [title]
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append(Text(" " + (" " if narrow else "  ").join(cells), style="bold" if i == 0 else ""))
    verdicts = Text(" claims:")
    for i, claim in enumerate(group.claims):
        verdicts.append(f"{',' if i else ''} {claim.key} ")
        verdicts.append(claim.outcome, style=OUTCOME_STYLE.get(claim.outcome, ""))
    lines.append(verdicts)
    return Text("\n").join(lines)


class WatchApp(App[int]):
    """``enas-tui watch NAME``: the overview on its own; ``q`` (or Esc) quits, Enter opens a run
    (the caller opens its dashboard, and shows the overview again when that one quits)."""

    TITLE = "enas-tui watch"
    BINDINGS = [Binding("q,escape", "quit_watch", "Quit"),
                Binding("ctrl+q", "quit_watch", "Quit", show=False, priority=True)]

    def __init__(self, overview: SweepOverview):
        super().__init__()
        self.overview = overview
        self.choice: OpenRun | None = None

    def on_mount(self) -> None:
        self.push_screen(OverviewScreen(self.overview, can_go_back=False), self._chosen)

    def _chosen(self, choice: OpenRun | None) -> None:
        self.choice = choice
        self.exit(0, return_code=0)

    def action_quit_watch(self) -> None:
        self.exit(0, return_code=0)
