"""Compliance's adapters: the verification records and policy versions (`records_pg.py`), the sanctions lists
(`sanctions/`), the KYC vendor (`kyc/`) and `books.bind`: its stores on the deployable's one transaction."""
