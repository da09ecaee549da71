"""The style gates CI runs with the tests: ruff (lint and format), mypy, and the size rule (no file in bridge/
over 500 lines, no function over 80 lines unless a comment right above it says why).
Every file is held to every gate: there is no allow-list.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("bridge", "tests", "bench")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
WHY_LONG = "# long:"  # a comment line right above a long function, saying why it stays long


def _python_files() -> list[str]:
    files: list[str] = []
    for top in SOURCES:
        files += [str(p.relative_to(ROOT)) for p in sorted((ROOT / top).rglob("*.py")) if "node_modules" not in p.parts]
    return files


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint() -> None:
    done = _run("ruff", "check", "--no-cache", "--output-format", "concise", *_python_files())
    assert done.returncode == 0, f"ruff check:\n{done.stdout}{done.stderr}"


def test_ruff_format() -> None:
    done = _run("ruff", "format", "--no-cache", "--check", "--diff", *SOURCES)
    assert done.returncode == 0, f"ruff format --check (run `ruff format <file>`):\n{done.stdout}{done.stderr}"


def test_mypy() -> None:
    done = _run("mypy")  # what and how strictly: [tool.mypy] in pyproject.toml
    assert done.returncode == 0, f"mypy:\n{done.stdout}{done.stderr}"


def _long_functions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            above = lines[first - 2].strip() if first >= 2 else ""
            if length > MAX_FUNCTION_LINES and not above.startswith(WHY_LONG):
                found.append(f"{node.name} ({length} lines)")
    return found


def test_files_and_functions_stay_small() -> None:
    problems = []
    for name in _python_files():
        if not name.startswith("bridge/"):
            continue
        path = ROOT / name
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_FILE_LINES:
            problems.append(f"{name}: {count} lines (at most {MAX_FILE_LINES}: split it by concern)")
        problems += [
            f"{name}: {f} (at most {MAX_FUNCTION_LINES}, or a '{WHY_LONG} ...' comment above)"
            for f in _long_functions(path)
        ]
    assert problems == []
