"""Where the examples find Redis: $REDIS_URL, else the seed's 127.0.0.1:6379."""

from __future__ import annotations

import os

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
