"""Settings read from the environment once, in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from market_assets.memory.target import MemoryTarget, PostgresUrl, parse_target
from market_assets.sources.endpoints import REAL_ENDPOINTS, SourceEndpoints

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000

_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750's b64token: what an ``Authorization: Bearer`` header can carry."""


ARCHIVE_ENV = "MARKET_ARCHIVE"
HOME_ENV = "MARKET_HOME"


def archive_path(db_path: MemoryTarget | str, env: Mapping[str, str]) -> Path:
    """The Parquet archive's folder: ``MARKET_ARCHIVE`` if set, else ``archive/`` in the
    memory's home (:func:`home_dir`: beside a SQLite memory)."""
    configured = env.get(ARCHIVE_ENV)
    if configured:
        return Path(configured).expanduser().absolute()
    return home_dir(parse_target(db_path), env) / "archive"


def home_dir(target: MemoryTarget, env: Mapping[str, str]) -> Path:
    """This host's folder for what belongs to the host, not to the memory: logs, the monitor's
    state, the Hyperliquid weight ledger (the budget is per IP) and, by default, the archive.
    ``MARKET_HOME`` if set; else the folder of a SQLite memory, or ``$XDG_DATA_HOME/market``
    beside a PostgreSQL one."""
    configured = env.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().absolute()
    if isinstance(target, PostgresUrl):
        return default_db_path(env).parent
    return target.parent


def default_db_path(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/market/market.db``: outside the source tree, per user, survives a re-clone."""
    data_home = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(data_home) / "market" / "market.db"


class Profile(StrEnum):
    """``full`` follows every listed perp and search term; ``local`` is capped for a laptop
    (the runbook's ``ingest:local``)."""

    FULL = "full"
    LOCAL = "local"


LOCAL_MAX_COINS = 5
LOCAL_MAX_SEARCH_TERMS = 3
DEFAULT_SEARCH_TERMS = ("bitcoin", "ethereum", "solana", "fed rates", "election", "recession", "etf")
"""Polymarket discovery searches these terms unless ``MARKET_SEARCH_TERMS`` (comma-separated) is set."""


def _project_dagster_home() -> Path:
    """The repository's ``dagster_home/`` (with its dagster.yaml) beside the package."""
    return Path(__file__).resolve().parents[1] / "dagster_home"


@dataclass(frozen=True)
class Settings:
    db_path: MemoryTarget
    """The market memory: a SQLite file, or a PostgreSQL database (``postgresql://…``)."""
    api_host: str = DEFAULT_API_HOST
    api_port: int = DEFAULT_API_PORT
    alert_webhook_url: str | None = None
    """Slack-compatible incoming webhook for Dagster alerts; alerts are off without one."""
    endpoints: SourceEndpoints = REAL_ENDPOINTS
    """Real hosts by default; ``MARKET_REPLAY_HTTP`` + ``MARKET_REPLAY_WS`` point every source at a
    replay server (offline mode)."""
    profile: Profile = Profile.FULL
    search_terms: tuple[str, ...] = DEFAULT_SEARCH_TERMS
    hip3_dexes: tuple[str, ...] = ()
    """HIP-3 builder dexes to follow besides the main perp dex (opt-in, ``MARKET_HIP3_DEXES``)."""
    dagster_home: Path = field(default_factory=_project_dagster_home)
    dashboard_requires_admin: bool = False
    """The dashboard, the admin page and /metrics are public (the runbook's default) unless this
    is set (``MARKET_DASHBOARD_REQUIRES_ADMIN``): then an ``x-user-id`` of ``admin_user_ids`` or a
    bearer token of ``api_tokens``."""
    admin_user_ids: tuple[str, ...] = ()
    """``MARKET_ADMIN_USER_IDS``, comma-separated. ``x-user-id`` is an identity header a trusted
    front proxy sets, not authentication (api/auth.py)."""
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    """``MARKET_API_TOKENS``, comma-separated: bearer tokens for machines (monitors, Prometheus),
    accepted wherever ``x-user-id`` is and counted as an admin. Kept out of ``repr``."""
    warm_start_minutes: int = 1440
    """``MARKET_WARM_START_MINUTES``: the streamer's start (and a new listing) queues the minutes
    of this many before now that are not stored confirmed for REST repair."""
    archive_root: Path | None = None
    """The Parquet archive (``MARKET_ARCHIVE``, :func:`archive_path`); ``None`` only when built by hand."""
    home_root: Path | None = None
    """``MARKET_HOME`` (:func:`home_dir`); ``None`` when built by hand: then :attr:`home` derives it."""

    @property
    def home(self) -> Path:
        """This host's folder: logs, monitor state, the weight ledger (:func:`home_dir`)."""
        return self.home_root or home_dir(self.db_path, os.environ)

    @property
    def max_coins(self) -> int | None:
        return LOCAL_MAX_COINS if self.profile is Profile.LOCAL else None

    @property
    def max_search_terms(self) -> int | None:
        return LOCAL_MAX_SEARCH_TERMS if self.profile is Profile.LOCAL else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, db_path: MemoryTarget | str | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); an explicit ``db_path`` (``--db``) wins.
        ``MARKET_DB`` and ``db_path`` take a file path or a ``postgresql://`` URL."""
        env = os.environ if env is None else env
        path = parse_target(db_path or env.get("MARKET_DB") or default_db_path(env))
        return cls(
            db_path=path,
            api_host=env.get("MARKET_API_HOST", DEFAULT_API_HOST),
            api_port=int(env.get("MARKET_API_PORT", DEFAULT_API_PORT)),
            alert_webhook_url=env.get("MARKET_ALERT_WEBHOOK_URL") or None,
            endpoints=_endpoints(env),
            profile=Profile(env.get("MARKET_PROFILE", Profile.FULL.value)),
            search_terms=_csv(env.get("MARKET_SEARCH_TERMS")) or DEFAULT_SEARCH_TERMS,
            hip3_dexes=_csv(env.get("MARKET_HIP3_DEXES")),
            dagster_home=Path(env["DAGSTER_HOME"]).expanduser().absolute()
            if env.get("DAGSTER_HOME")
            else _project_dagster_home(),
            dashboard_requires_admin=_flag(env.get("MARKET_DASHBOARD_REQUIRES_ADMIN")),
            admin_user_ids=_csv(env.get("MARKET_ADMIN_USER_IDS")),
            api_tokens=_tokens(env.get("MARKET_API_TOKENS")),
            warm_start_minutes=int(env.get("MARKET_WARM_START_MINUTES", "1440")),
            archive_root=archive_path(path, env),
            home_root=home_dir(path, env),
        )


def _endpoints(env: Mapping[str, str]) -> SourceEndpoints:
    http, ws = env.get("MARKET_REPLAY_HTTP"), env.get("MARKET_REPLAY_WS")
    if bool(http) != bool(ws):
        raise ValueError("offline mode needs both MARKET_REPLAY_HTTP and MARKET_REPLAY_WS")
    return SourceEndpoints.replay(http, ws) if http and ws else REAL_ENDPOINTS


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _tokens(text: str | None) -> tuple[str, ...]:
    """Bearer tokens; one a header cannot carry is refused by its position, never echoed."""
    tokens = _csv(text)
    for position, token in enumerate(tokens, start=1):
        if not _BEARER_TOKEN.fullmatch(token):
            raise ValueError(
                f"MARKET_API_TOKENS: token {position} of {len(tokens)} has characters a bearer token cannot "
                "carry (use letters, digits and -._~+/, e.g. `openssl rand -hex 32`)"
            )
    return tokens


def _flag(text: str | None) -> bool:
    value = (text or "").strip().lower()
    if value in {"", "0", "false", "no", "off"}:
        return False
    if value in {"1", "true", "yes", "on"}:
        return True
    raise ValueError(f"MARKET_DASHBOARD_REQUIRES_ADMIN must be true or false, not {text!r}")
