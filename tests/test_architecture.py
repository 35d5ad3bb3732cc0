"""The dependency rule of docs/architecture.md, held for every module (imports inside functions too).

- ``bot/`` is the product. Outside ``bot/server/`` it imports neither Rasa (``rasa``, ``rasa_sdk``),
  nor the web framework the Rasa server runs on (``sanic``), nor ``bot.server``.
- ``bot/server/`` is what runs inside the Rasa server (and the action server's launcher).
- ``actions/`` holds only the Rasa SDK actions: thin adapters that call the core.
- Nothing in ``bot/`` imports ``actions``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA = ("rasa", "rasa_sdk", "sanic")


def modules(folder: str) -> List[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """Every module ``path`` imports, absolute names (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # "from bot import server" imports bot.server
                yield node.lineno, f"{name}.{alias.name}"


def top(name: str) -> str:
    return name.split(".", 1)[0]


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


CORE = [p for p in modules("bot") if not within(".".join(p.relative_to(ROOT).parts), "bot.server")]


def test_the_tree_is_there():
    assert len(CORE) > 40 and modules("bot/server") and modules("actions")


@pytest.mark.parametrize("path", CORE, ids=rel)
def test_the_core_knows_nothing_of_rasa(path):
    bad = [
        (line, name) for line, name in imports(path) if top(name) in RASA or within(name, "bot.server") or top(name) == "actions"
    ]
    assert not bad, f"{rel(path)} imports {bad}: Rasa-facing code belongs in bot/server/ or actions/"


@pytest.mark.parametrize("path", modules("bot/server"), ids=rel)
def test_the_server_never_imports_the_actions(path):
    bad = [(line, name) for line, name in imports(path) if top(name) == "actions"]
    assert not bad, f"{rel(path)} imports {bad}"


@pytest.mark.parametrize("path", modules("actions"), ids=rel)
def test_actions_are_only_rasa_sdk_adapters(path):
    names = [name for _, name in imports(path)]
    assert not any(within(n, "bot.server") or top(n) == "rasa" for n in names), (
        f"{rel(path)}: actions call the core, not the Rasa server"
    )
    if path.name != "__init__.py":
        assert any(top(n) == "rasa_sdk" for n in names), f"{rel(path)} is no Rasa SDK action: move it to bot/"


def test_the_rule_catches_a_breach(tmp_path):
    """The checker itself: a core module importing Rasa lazily, inside a function, is found."""
    sneaky = ROOT / "bot" / "_sneaky_probe.py"
    sneaky.write_text("def f():\n    from rasa.shared.core.events import SlotSet\n    from ..server import serve\n")
    try:
        found = [name for _, name in imports(sneaky)]
    finally:
        sneaky.unlink()
    assert "rasa.shared.core.events" in found and "bot.server.serve" in found
