"""The engine and the config loader are plain Python: no Django, no Celery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_and_config_import_without_django_or_celery():
    code = (
        "import sys, pkgutil, importlib, ifns_paper.engine as e, ifns_paper.config\n"
        "for m in pkgutil.walk_packages(e.__path__, 'ifns_paper.engine.'): importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('django', 'celery', 'rest_framework', 'channels'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "", "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.test"})
    assert out.stdout.strip() == ""
