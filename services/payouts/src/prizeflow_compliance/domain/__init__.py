"""Pay only whom you may (docs/adr/0012-pay-only-whom-you-may.md): the pure rules of compliance."""
