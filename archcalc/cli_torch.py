"""The torch-backed commands (verify, export). torch is imported only inside them."""

from __future__ import annotations


def register(app):
    pass
