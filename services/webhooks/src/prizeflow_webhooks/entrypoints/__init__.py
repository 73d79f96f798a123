"""The edges: the webhook ingress (raw ASGI, signature-authenticated) and the operators' Litestar controller."""
