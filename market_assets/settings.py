"""Settings read from the environment once, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000


def default_db_path(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/market/market.db``: outside the source tree, per user, survives a re-clone."""
    data_home = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(data_home) / "market" / "market.db"


@dataclass(frozen=True)
class Settings:
    db_path: Path
    api_host: str = DEFAULT_API_HOST
    api_port: int = DEFAULT_API_PORT
    alert_webhook_url: str | None = None
    """Slack-compatible incoming webhook for Dagster alerts; alerts are off without one."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, db_path: Path | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); an explicit ``db_path`` (``--db``) wins."""
        env = os.environ if env is None else env
        path = db_path or (Path(env["MARKET_DB"]) if env.get("MARKET_DB") else default_db_path(env))
        return cls(
            db_path=path.expanduser().absolute(),
            api_host=env.get("MARKET_API_HOST", DEFAULT_API_HOST),
            api_port=int(env.get("MARKET_API_PORT", DEFAULT_API_PORT)),
            alert_webhook_url=env.get("MARKET_ALERT_WEBHOOK_URL") or None,
        )
