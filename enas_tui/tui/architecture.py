"""Panel 6: the best architecture so far, drawn as a small DAG in text, and its text form.

Every node of an ENAS cell has exactly one parent, so the cell is a tree under node 0 (which reads
x_t and h_{t-1}); the leaves are averaged into the output. The tree is drawn with box characters,
leaves marked; short panels show the summary and text form only.
"""

from __future__ import annotations

from rich.text import Text

from enas_tui.search_space import ACTIVATIONS, Architecture, ArchitectureError
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.state import DashboardState, fmt

LEAF = "◆"


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

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        if not state.best_arch:
            return Text("no validated architecture yet", style="dim")
        try:
            arch = Architecture.parse(state.best_arch)
        except ArchitectureError as err:
            return Text(f"unreadable architecture: {err}", style="red")
        when = f" (epoch {state.best_epoch})" if state.best_epoch else ""
        head = Text(f"valid ppl {fmt(state.best_ppl, 2)}{when}", style="bold")
        head.append(f" · {len(arch.leaves)} leaves, depth {max(arch.depths)}", style="dim")
        form = [Text(line, style="cyan") for line in wrap(state.best_arch, max(10, width))]
        tree = [Text(line) for line in tree_lines(arch)]
        if height >= 1 + len(tree) + len(form) + 1:
            legend = Text(f"{LEAF} leaf: averaged into the output", style="dim")
            return lines_to_text([head, *tree, legend, *form], height)
        if height >= 1 + len(tree):
            return lines_to_text([head, *tree], height)
        return lines_to_text([head, *form], height)
