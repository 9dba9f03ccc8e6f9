"""The base of every refusal the operator services make on purpose: a machine ``code`` and
the HTTP status it answers with, so the API and console need no per-service error table
(``bot.web.errors`` answers them all)."""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    code = "refused"
    status = 409

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.details = details  # more fields for the API's JSON error body
