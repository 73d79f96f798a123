import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # `webhooks_fakes`: in-memory ports
