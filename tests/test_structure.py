"""The shape of the code, as the layer contracts in pyproject.toml describe it: hw never
imports edge, component packages do not import each other, no import circles, small files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grimp

from .peers import venv_bin

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500


def _cycles() -> list[list[str]]:
    g = grimp.build_graph("edge", "hw", exclude_type_checking_imports=True)
    mods = sorted(m for m in g.modules if m.split(".")[0] in ("edge", "hw"))
    adj = {m: [i for i in g.find_modules_directly_imported_by(m) if i in g.modules and i.split(".")[0] in ("edge", "hw")]
           for m in mods}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for m in mods:
        if m not in index:
            visit(m)
    return found


def test_no_import_circles():
    assert _cycles() == []


def test_layer_contracts_hold():
    r = subprocess.run([venv_bin("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "BROKEN" not in r.stdout


def test_no_file_over_500_lines():
    big = {str(p.relative_to(ROOT)): n for p in list((ROOT / "edge").rglob("*.py")) + list((ROOT / "hw").rglob("*.py"))
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert big == {}
