"""Where the market memory lives: a SQLite file (the default) or a PostgreSQL database.

``MARKET_DB`` and ``--db`` take either a path or a ``postgresql://`` URL; :func:`parse_target`
tells them apart once, and everything downstream holds a :data:`MemoryTarget`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from market_assets.redact import redact_url

POSTGRES_SCHEMES = ("postgresql", "postgres")


class PostgresUrl(str):
    """A libpq connection URL (``postgresql://user:secret@host:5432/market``).

    A ``str`` so it travels through environment variables and process arguments unchanged; its
    ``str()`` is the URL itself (with any password), so show :attr:`redacted` instead.
    """

    __slots__ = ()

    @property
    def redacted(self) -> str:
        """The URL with its password masked: what logs, errors and pages print."""
        return redact_url(self)

    @property
    def libpq(self) -> str:
        """The URL as libpq takes it (a SQLAlchemy-style ``postgresql+driver://`` loses the driver)."""
        scheme, sep, rest = self.partition("://")
        return f"postgresql{sep}{rest}" if "+" in scheme else str(self)


MemoryTarget = Path | PostgresUrl
"""A market memory: the path of its SQLite file, or the URL of its PostgreSQL database."""


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database (``postgresql://``, ``postgres://``, or a
    SQLAlchemy-style ``postgresql+psycopg://``) rather than a file."""
    scheme = urlsplit(text).scheme.lower()
    return scheme.split("+", 1)[0] in POSTGRES_SCHEMES and "://" in text


def parse_target(text: str | Path) -> MemoryTarget:
    """A ``--db`` / ``MARKET_DB`` value as a target; a path is expanded and made absolute."""
    if isinstance(text, PostgresUrl):
        return text
    if isinstance(text, str) and is_postgres_url(text):
        return PostgresUrl(text)
    return Path(text).expanduser().absolute()


def describe(target: MemoryTarget) -> str:
    """How a target is named in messages: the path, or the URL without its password."""
    return target.redacted if isinstance(target, PostgresUrl) else str(target)
