"""Unit tests run on the in-memory stores of `tests/support`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # `settlement_fakes`: in-memory stores
