"""Configuration from the environment (`LOADBAY_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every setting has a working default for the embedded, single-process mode."""

    model_config = SettingsConfigDict(env_prefix="LOADBAY_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    storage_url: str | None = None  # file:///path or s3://bucket/prefix
    secret_key: str | None = None
    public_url: str | None = None
    fetch_allow: str = ""
    # a source_url's answer must bring its head within this many seconds, then its body at
    # least 64 KiB in every such span (fetcher.download)
    fetch_timeout: float = Field(default=30.0, gt=0)
    max_upload_bytes: int = 2 * 1024**3
    max_body_bytes: int = Field(default=32 * 1024**2, ge=1)  # a JSON or XML body read whole
    max_head_bytes: int = Field(default=32 * 1024, ge=1024)  # a request's line and headers
    head_timeout: float = Field(default=10.0, gt=0)  # seconds for a request head to arrive whole
    body_timeout: float = Field(default=30.0, gt=0)  # seconds a request body may send nothing
    max_record_bytes: int = Field(default=1024**2, ge=1)  # bytes of a CSV row, JSON Lines line, array item
    chunk_size: int = Field(default=4000, ge=1)
    lease_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)  # attempts whose work raised, per chunk or validation
    max_interruptions: int = Field(default=20, ge=1)  # attempts whose worker died, lost its lease, …
    lock_timeout: float = Field(default=10.0, gt=0)  # PostgreSQL: seconds a statement waits for a lock
    poll_interval: float = Field(default=0.5, gt=0)
    signed_url_ttl: int = Field(default=3600, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)  # a worker process's heartbeat; 3 missed: not live
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)  # `loadbay worker` serves /metrics
    worker_metrics_host: str = Field(default="127.0.0.1", min_length=1)  # where that port listens
    fusebill_process_wait: float = Field(default=5.0, ge=0)  # seconds Fusebill's Process waits for the job
    # webhooks: seconds an attempt waits for an answer; seconds a delivery is retried (from its
    # event, or a redeliver); the first retry's delay (doubled each time, jittered, at most an
    # hour); seconds an endpoint may fail every attempt before it is disabled
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_retry_for: float = Field(default=24 * 3600.0, ge=0)
    webhook_backoff: float = Field(default=10.0, gt=0)
    webhook_disable_after: float = Field(default=5 * 24 * 3600.0, gt=0)
    retention_days: float = Field(default=0, ge=0)  # files of batches final this long are removed; 0: kept
    log_level: Literal["debug", "info", "warning", "error"] = "info"  # of the server and worker processes

    @field_validator("storage_url")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        if value and not value.startswith(("file://", "s3://")):
            raise ValueError("LOADBAY_STORAGE_URL is file:///path or s3://bucket/prefix")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: LOADBAY_DATABASE_URL, or SQLite in the data dir."""
        url = self.database_url or f"sqlite:///{self.data_dir.resolve() / 'loadbay.db'}"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    def resolved_storage_dir(self) -> Path:
        """Where the local blob store keeps files."""
        if not self.storage_url:
            return self.data_dir.resolve() / "blobs"
        if self.storage_url.startswith("file://"):
            return Path(self.storage_url.removeprefix("file://"))
        raise ValueError(f"LOADBAY_STORAGE_URL={self.storage_url!r} is not a directory")

    def base_url(self, host: str = "127.0.0.1", port: int = 8000) -> str:
        """The URL clients reach this server at, for signed links."""
        return (self.public_url or f"http://{host}:{port}").rstrip("/")
