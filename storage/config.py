"""Settings owned by the storage layer (the ``[database]`` section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_SQLITE_URL = "sqlite://data/engage.sqlite3"


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default=DEFAULT_SQLITE_URL,
        description="sqlite://PATH (relative or /absolute) or postgres://user:pass@host:port/db",
    )
    pool_max: int = Field(default=10, ge=1, le=200, description="PostgreSQL pool size")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in {"sqlite", "postgres", "postgresql", "asyncpg"}:
            raise ValueError("must start with sqlite:// or postgres://")
        return value

    @property
    def is_postgres(self) -> bool:
        return not self.url.startswith("sqlite://")
