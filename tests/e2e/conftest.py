"""The e2e suite uses the session platform of tests/conftest.py."""
