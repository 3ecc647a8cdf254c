"""How request handlers declare the app's shared objects (``create_app`` provides them)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Dependency

from market_assets.settings import Settings

SettingsDependency = Annotated[Settings, Dependency(skip_validation=True)]
"""The app's settings, passed as they are: Litestar would otherwise convert them field by field,
and cannot convert ``Settings.db_path`` (a path or a PostgreSQL URL: two custom types)."""
