"""Panel 6: the best architecture so far (a retrain's: its cell), drawn as a tree, with its text form.

Every node of an ENAS cell has exactly one parent, so the cell is a tree under node 0 (which reads
x_t and h_{t-1}); the leaves are averaged into the output. The panel draws the tallest form that
fits: the tree top-down (a line per node), or sideways (a line per leaf: chains stay on one
line), or only the summary and the text form, which are always shown.
"""

from __future__ import annotations

from rich.text import Text

from enas_tui.search_space import ACTIVATIONS, Architecture, ArchitectureError
from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.state import DashboardState, fmt

LEAF = "◆"
SHORT_NAMES = {"tanh": "tanh", "relu": "relu", "identity": "id", "sigmoid": "sig"}


def tree_lines(arch: Architecture) -> list[str]:
    """The cell as an indented tree: ``x,h ─ 0 tanh`` then ``├─ 1 relu`` ... with leaves marked."""
    leaves = set(arch.leaves)

    def name(node: int) -> str:
        return f"{node} {ACTIVATIONS[arch.activations[node]]}" + (f" {LEAF}" if node in leaves else "")

    lines = [f"x,h ─ {name(0)}"]

    def walk(node: int, prefix: str) -> None:
        kids = arch.children(node)
        for i, child in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(f"{prefix}{'└─' if last else '├─'} {name(child)}")
            walk(child, prefix + ("   " if last else "│  "))

    walk(0, "      ")
    return lines


def sideways_lines(arch: Architecture) -> list[str]:
    """The cell as a sideways tree, a line per leaf: ``0 tanh ┬ 1 relu ─ 3 id◆`` ..."""
    leaves = set(arch.leaves)

    def label(node: int) -> str:
        name = SHORT_NAMES[ACTIVATIONS[arch.activations[node]]]
        return f"{node} {name}" + (LEAF if node in leaves else "")

    def draw(node: int) -> list[str]:
        own = label(node)
        kids = arch.children(node)
        if not kids:
            return [own]
        pad = " " * len(own)
        out = []
        for i, kid in enumerate(kids):
            first, last = i == 0, i == len(kids) - 1
            if len(kids) == 1:
                lead, rest = "──", "  "
            else:
                lead = "┬─" if first else ("└─" if last else "├─")
                rest = "  " if last else "│ "
            for j, line in enumerate(draw(kid)):
                out.append(f"{own if first and j == 0 else pad} {lead if j == 0 else rest} {line}")
        return out

    return draw(0)


def wrap(text: str, width: int) -> list[str]:
    """Break an architecture's text form after commas to fit ``width``."""
    lines, line = [], ""
    for part in text.split(","):
        piece = part if not line else "," + part
        if line and len(line) + len(piece) > width:
            lines.append(line + ",")
            line = part
        else:
            line += piece
    return [*lines, line]


class ArchitecturePanel(Panel):
    TITLE = "best architecture"
    PARTS = ("arch",)

    def title(self, state: DashboardState) -> str:
        return "retrained cell" if state.is_retrain else self.TITLE

    @staticmethod
    def shown(state: DashboardState) -> str | None:
        """The architecture drawn: a retrain's cell from its first event, else the best validated."""
        return state.cell if state.is_retrain else state.best_arch

    def need(self, width: int) -> Need:
        state = self.state
        nodes = state.num_nodes if state is not None else 12
        text = self.shown(state) if state is not None else None
        form = len(wrap(text, max(10, width))) if text else 2
        return Need(essential=1 + form, full=1 + nodes + 1 + form, grow=0)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        text = self.shown(state)
        if not text:
            return Text("no validated architecture yet", style="dim")
        try:
            arch = Architecture.parse(text)
        except ArchitectureError as err:
            return Text(f"unreadable architecture: {err}", style="red")
        head = self.headline(state)
        head.append(f" · {len(arch.leaves)} leaves, depth {max(arch.depths)}", style="dim")
        form = [Text(line, style="cyan") for line in wrap(text, max(10, width))]
        legend = Text(f"{LEAF} leaf: averaged into the output", style="dim")
        tree = tree_lines(arch)
        if height >= 1 + len(tree) + 1 + len(form) and max(map(len, tree)) <= width:
            return lines_to_text([head, *map(Text, tree), legend, *form], height)
        side = sideways_lines(arch)
        if height >= 1 + len(side) + len(form) and max(map(len, side)) <= width:
            extra = [legend] if height >= 2 + len(side) + len(form) else []
            return lines_to_text([head, *map(Text, side), *extra, *form], height)
        return lines_to_text([head, *form], height)

    @staticmethod
    def headline(state: DashboardState) -> Text:
        """Best validation ppl and its epoch; a retrain's test ppl once tested, or where its cell came from."""
        when = f" (epoch {state.best_epoch})" if state.best_epoch else ""
        head = Text(f"valid ppl {fmt(state.best_ppl, 2)}{when}", style="bold")
        if state.is_retrain and state.result is not None:
            head = Text.assemble((f"test ppl {fmt(state.result.test_ppl, 2)}", "bold green"), " · ",
                                 (f"valid {fmt(state.best_ppl, 2)}{when}", "bold"))
        elif state.is_retrain:
            head.append(f" · from {state.source or '--arch'}", style="dim")
        return head
