"""Developer machine defaults (the default settings module)."""

import os

os.environ.setdefault("DEBUG", "1")

from ifns_paper.settings.base import *  # noqa: E402,F403
