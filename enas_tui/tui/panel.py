"""The base of every dashboard panel: a focusable, zoomable widget drawn from a DashboardState.

Panels never see events: the app folds events into the state and hands the state to every panel
at most ``refresh_hz`` times a second. A panel repaints only when the parts of the state it draws
changed (or a different state object arrived, after a seek), so a burst of events costs one
repaint, not one per event. A panel about the controller (``SEARCH_ONLY``) says so in a retrain
session, which has none, and asks for no more than those lines.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from enas_tui.tui.layout import Need
from enas_tui.tui.state import DashboardState


class Panel(Widget, can_focus=True):
    """A titled box drawing part of the state; ``draw`` is what each panel implements."""

    ALLOW_MAXIMIZE = True
    TITLE = "panel"
    PARTS: tuple[str, ...] = ()  # the DashboardState parts this panel draws
    SEARCH_ONLY = ""  # what a search shows here, for a panel about the controller ("" elsewhere)
    DEFAULT_CSS = """
    Panel {
        border: round $primary-darken-1;
        border-title-color: $text;
        padding: 0 1;
        height: 1fr;
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    Panel:focus {
        border: round $accent;
    }
    """

    def __init__(self, number: int | None = None, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.number = number
        self.state: DashboardState | None = None
        self._stamp: tuple | None = None
        self.border_title = self.TITLE if number is None else f"{number} {self.TITLE}"

    def show(self, state: DashboardState, generation: int = 0) -> bool:
        """Take a new state; repaint only if what this panel draws changed. True if it will repaint."""
        stamp = (generation, *(state.touched.get(part, 0) for part in self.PARTS))
        if stamp == self._stamp and state is self.state:
            return False
        self.state, self._stamp = state, stamp
        title = self.title(state)
        self.border_title = title if self.number is None else f"{self.number} {title}"
        self.refresh()
        return True

    def title(self, state: DashboardState) -> str:
        """The border title (panels may say more than their name, e.g. how a probe was taken)."""
        return self.TITLE

    def need(self, width: int) -> Need:
        """Content lines this panel wants at ``width`` (the layout gives it at least ``essential``)."""
        return Need(essential=1, full=None, grow=1)

    def layout_need(self, width: int) -> Need:
        """What the layout gives: ``need``, or the search-only note's line in a retrain."""
        return Need(essential=1, full=1, grow=0) if self.search_only() is not None else self.need(width)

    def search_only(self) -> Text | None:
        """The note a controller panel shows in a retrain session (None: the panel draws as usual):
        one line that says why it is empty, and what a search shows there when zoomed."""
        if not self.SEARCH_ONLY or self.state is None or not self.state.is_retrain:
            return None
        return Text.assemble(("search only: no controller in a retrain", "dim"), "\n",
                             (f"(a retrain trains one fixed cell; a search shows {self.SEARCH_ONLY} here)", "dim"))

    def render(self) -> RenderableType:
        if self.state is None:
            return Text("waiting for events…", style="dim")
        note = self.search_only()
        if note is not None:
            note.no_wrap, note.overflow = True, "ellipsis"
            return note
        size = self.content_size
        drawn = self.draw(self.state, max(1, size.width), max(1, size.height))
        if isinstance(drawn, Text):
            drawn.no_wrap, drawn.overflow = True, "ellipsis"
        return drawn

    def draw(self, state: DashboardState, width: int, height: int) -> RenderableType:
        raise NotImplementedError

    def text(self) -> str:
        """What the panel shows, as plain text (for tests and the command palette)."""
        if self.state is None:
            return ""
        note = self.search_only()
        if note is not None:
            return note.plain
        size = self.content_size
        drawn = self.draw(self.state, max(1, size.width), max(1, size.height))
        return drawn.plain if isinstance(drawn, Text) else str(drawn)


def lines_to_text(lines: list[Text], height: int) -> Text:
    """Join at most ``height`` lines into one Text; long lines are cut with an ellipsis, not wrapped."""
    text = Text("\n").join(lines[: max(1, height)])
    text.no_wrap, text.overflow = True, "ellipsis"
    return text
