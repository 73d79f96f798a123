"""Reconciliation's use cases: runs (`runs.py`), the exception queue (`queue.py`), the finance exports
(`exports.py`), over the stores of `books.py` (ports in `ports.py`)."""
