import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # `console_fakes`: the console in process
