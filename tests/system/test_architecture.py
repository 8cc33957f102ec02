"""The architecture check (`lint-imports`, the `[tool.importlinter]` contracts of
pyproject.toml) passes on the repository and can fail: on a copy of the first-party
packages with one forbidden import injected it exits non-zero and names the contract and
the offending import."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("ifns_paper", "sessions_app", "broker_app", "telemetry_app", "mirror_app")

ENGINE_PLAIN = "The engine is plain Python: no Django, Celery, Redis, apps or I/O modules"
APPS_LAYERED = "Apps depend downwards only: mirror_app -> sessions_app -> broker_app | telemetry_app"
TELEMETRY_STANDALONE = "telemetry_app imports no other app (callers pass what it needs)"
NO_CYCLES = "No import cycles between the modules of a package"
ALL_CONTRACTS = (ENGINE_PLAIN, APPS_LAYERED, TELEMETRY_STANDALONE, NO_CYCLES)


def _lint_imports(root: Path, cache_dir: Path) -> tuple[int, str]:
    """Run lint-imports on the packages found under ``root`` (cwd and first on PYTHONPATH),
    with a fresh cache of its own. Returns the exit code and the output, whitespace folded
    (the report wraps long lines)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST") and k != "DJANGO_SETTINGS_MODULE"}
    env |= {"PYTHONPATH": str(root), "COLUMNS": "1000", "NO_COLOR": "1"}
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--cache-dir", str(cache_dir)],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    return result.returncode, re.sub(r"\s+", " ", output)


def _copy_project(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _inject(path: Path, line: str) -> int:
    """Append ``line`` to ``path``; return its line number (the report cites it)."""
    text = path.read_text()
    if not text.endswith("\n"):
        text += "\n"
    text += line + "\n"
    path.write_text(text)
    return text.count("\n")


def test_repository_keeps_every_contract(tmp_path):
    code, output = _lint_imports(ROOT, tmp_path / ".import_linter_cache")
    assert code == 0, output
    for contract in ALL_CONTRACTS:
        assert f"{contract} KEPT" in output, output
    assert "Contracts: 4 kept, 0 broken." in output, output


def test_a_forbidden_app_import_breaks_the_telemetry_and_layers_contracts(tmp_path):
    copy = _copy_project(tmp_path / "copy")
    line = _inject(copy / "telemetry_app" / "selectors.py",
                   "from sessions_app.models import PaperSession  # noqa")

    code, output = _lint_imports(copy, copy / ".import_linter_cache")

    assert code != 0, output
    assert f"{TELEMETRY_STANDALONE} BROKEN" in output, output
    assert f"{APPS_LAYERED} BROKEN" in output, output
    assert f"{ENGINE_PLAIN} KEPT" in output and f"{NO_CYCLES} KEPT" in output, output
    assert "Contracts: 2 kept, 2 broken." in output, output
    assert "telemetry_app is not allowed to import sessions_app" in output, output
    # The copy was analysed, not the installed packages: the import exists only there, and
    # the report cites the line it was appended at.
    chains = re.findall(r"telemetry_app\.selectors -> sessions_app\.models \(l\.(\d+)\)", output)
    assert chains and set(chains) == {str(line)}, output
    assert (copy / ".import_linter_cache").is_dir()


@pytest.mark.parametrize(
    ("module", "line", "contract", "evidence"),
    [
        pytest.param(
            "ifns_paper/engine/ledger.py", "import django  # noqa", ENGINE_PLAIN,
            r"ifns_paper\.engine is not allowed to import django: - ifns_paper\.engine\.ledger -> django \(l\.{line}\)",
            id="engine-imports-django",
        ),
        pytest.param(
            "sessions_app/dispatch.py", "import sessions_app.tasks  # noqa", NO_CYCLES,
            r"No cycles are allowed in sessions_app\. .*- \.dispatch -> \.tasks \(1 import\)",
            id="cycle-dispatch-tasks",
        ),
    ],
)
def test_an_injected_violation_breaks_its_contract(tmp_path, module, line, contract, evidence):
    copy = _copy_project(tmp_path / "copy")
    lineno = _inject(copy / module, line)

    code, output = _lint_imports(copy, copy / ".import_linter_cache")

    assert code != 0, output
    assert f"{contract} BROKEN" in output, output
    assert "Contracts: 3 kept, 1 broken." in output, output
    for other in ALL_CONTRACTS:
        if other != contract:
            assert f"{other} KEPT" in output, output
    assert re.search(evidence.format(line=lineno), output), output
