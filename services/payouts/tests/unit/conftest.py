import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # `paypal_fakes`: the rail's books in memory
