"""The stores `Books` holds (`application/books.py`), by topic: each a Protocol bound to one transaction, with the
values it speaks. `application/ports.py` is where the use cases import them from."""
