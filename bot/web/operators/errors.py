"""The base of every refusal the operator services make on purpose: a machine ``code`` and
the HTTP status it answers with, so the API and console need no per-service error table."""

from __future__ import annotations


class Refusal(Exception):
    code = "refused"
    status = 409

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
