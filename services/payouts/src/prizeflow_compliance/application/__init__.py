"""Pay only whom you may (docs/adr/0012-pay-only-whom-you-may.md): identity verification, sanctions screening and the
risk policy's gate, the use cases over the ports in `ports.py`."""
