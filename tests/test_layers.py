"""The layers stay apart: the core never imports Textual; the watching paths never import torch.

Checked on the source (every import statement, at any depth, lazy ones included), so a stray import
inside a function fails here before it slows a laptop's start or breaks a torch-free install.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "enas_tui"

# Modules a watching-only laptop runs (attach, replay, compare, sessions, stop, pull; remote watching
# on both ends): no torch anywhere in them.
TORCH_FREE = ("events.py", "session_log.py", "sessions.py", "sources.py", "search_space.py",
              "similarity/", "diagnostics.py", "launcher.py", "commands.py", "tui/", "remote/",
              # what a retrain is, where its cell came from, what it measured
              "retrain/source.py", "retrain/settings.py", "retrain/outcome.py")


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module an import statement in ``path`` names (relative ones resolved), at any depth."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
    return names


def modules(selector: str) -> list[Path]:
    return sorted(PACKAGE.glob(f"{selector}**/*.py") if selector.endswith("/") else [PACKAGE / selector])


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if "tui" not in p.relative_to(PACKAGE).parts),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_never_imports_textual(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.split(".")[0] == "textual"}
    assert not bad, f"{path.name} imports {bad}: only enas_tui/tui may use Textual"


@pytest.mark.parametrize("path", [p for sel in TORCH_FREE for p in modules(sel)],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_watching_paths_never_import_torch(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.split(".")[0] == "torch"}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}: it must run where torch is not installed"


def test_event_sources_do_not_depend_on_the_dashboard() -> None:
    bad = {m for m in imported_modules(PACKAGE / "sources.py") if m.startswith("enas_tui.tui")}
    assert not bad, f"sources.py imports {bad}: the sources feed the dashboard, not the other way round"


def test_the_scan_sees_lazy_and_relative_imports() -> None:
    source = "def f():\n    import torch.nn\n    from ..trainer import Trainer\n    from . import state\n"
    found = imported_modules(PACKAGE / "tui" / "probe.py", source)
    assert found == {"torch.nn", "enas_tui.trainer", "enas_tui.tui"}
