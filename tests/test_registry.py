"""SPEC §2: one registry declares every channel; nothing restates a cadence or threshold."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from market_assets import registry
from market_assets.registry import CANDLES, REGISTRY, STALE_FACTOR, Channel, DataLocation, channel

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("market_assets", "streamer", "api")

# Names that carry a cadence, a stale threshold, a freshness window or a retention period.
TIMING_NAME = re.compile(r"cadence|stale|retention|fresh|warn_window|fail_window|(^|_)ttl(_|$)|max_age", re.I)
CRON = re.compile(r"^\s*[\d*/,-]+(\s+[\d*/,-]+){4}\s*$")


def test_registry_declares_the_seven_spec_channels_in_order() -> None:
    assert [c.key for c in REGISTRY] == [
        "hyperliquid/candles",
        "hyperliquid/funding",
        "hyperliquid/features",
        "hyperliquid/maintenance",
        "polymarket/discovery",
        "polymarket/summary",
        "defillama/macro",
    ]


def test_candles_match_the_runbook_example() -> None:
    assert (CANDLES.expected_cadence_sec, CANDLES.stale_after_sec) == (60, 360)


def test_stale_threshold_defaults_to_six_cadences() -> None:
    assert STALE_FACTOR == 6
    for declared in REGISTRY:
        assert declared.stale_after_sec == STALE_FACTOR * declared.expected_cadence_sec


def test_an_explicit_stale_threshold_wins() -> None:
    custom = Channel("s", "c", 60, "d", DataLocation("t", "ts", "x"), stale_after_sec=100)
    assert custom.stale_after_sec == 100


def test_a_threshold_shorter_than_the_cadence_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the cadence"):
        Channel("s", "c", 60, "d", DataLocation("t", "ts", "x"), stale_after_sec=30)


def test_unknown_channel_names_what_is_registered() -> None:
    assert channel("hyperliquid", "funding").name == "funding"
    with pytest.raises(KeyError, match="hyperliquid/candles"):
        channel("hyperliquid", "orderbook")


def test_every_channel_points_at_a_table_of_the_schema() -> None:
    from market_assets.memory.schema import MIGRATIONS

    ddl = " ".join(statement for migration in MIGRATIONS for statement in migration)
    for declared in REGISTRY:
        table = declared.data.table
        assert f"CREATE TABLE {table} (" in ddl, table
        columns = ddl.split(f"CREATE TABLE {table} (", 1)[1].split(")", 1)[0]
        for column in (declared.data.time_column, declared.data.subject_column, *declared.data.scope):
            assert re.search(rf"\b{column}\b", columns), f"{table}.{column}"


def timing_literals(source: str) -> list[str]:
    """Numbers bound to cadence/threshold/retention names, and cron strings, in a module's source."""
    found: list[str] = []
    tree = ast.parse(source)
    # Enum members (e.g. exit-code severities named STALE) are labels, not durations.
    enum_members = {
        id(statement)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any("Enum" in ast.unparse(base) for base in node.bases)
        for statement in node.body
    }
    for node in ast.walk(tree):
        if id(node) in enum_members:
            continue
        bindings: list[tuple[str, ast.expr | None]] = []
        if isinstance(node, ast.Assign):
            bindings += [(ast.unparse(t), node.value) for t in node.targets]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            bindings.append((ast.unparse(node.target), node.value))
        elif isinstance(node, ast.keyword) and node.arg:
            bindings.append((node.arg, node.value))
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            bindings += list(zip((a.arg for a in positional[len(positional) - len(node.defaults):]), node.defaults))
            bindings += [(a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
        elif isinstance(node, ast.Dict):
            bindings += [
                (k.value, v) for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and isinstance(k.value, str)
            ]
        for name, value in bindings:
            if value is not None and TIMING_NAME.search(name) and _has_number(value):
                found.append(f"{name} = {ast.unparse(value)}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and CRON.match(node.value):
            found.append(f"cron {node.value!r}")
    return found


def _has_number(value: ast.expr) -> bool:
    return any(
        isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool) and n.value not in (0, 1)
        for n in ast.walk(value)
    )


def test_the_checker_catches_restated_cadences() -> None:
    offending = """
STALE_AFTER_SEC = 360
schedule = ScheduleDefinition(cron_schedule="*/5 * * * *", job=job)
policy = FreshnessPolicy.time_window(fail_window=timedelta(seconds=21600))
def wait(cadence_sec=60): ...
row = {"expectedCadenceSec": 900}
"""
    assert len(timing_literals(offending)) == 5
    assert timing_literals("cadence = channel.expected_cadence_sec\nstale = cadence * factor\n") == []


def test_no_cadence_or_threshold_is_written_outside_the_registry() -> None:
    registry_file = Path(registry.__file__).resolve()
    offenders = {
        str(path.relative_to(ROOT)): found
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.resolve() != registry_file and (found := timing_literals(path.read_text()))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("cadence_sec", "cron"),
    [(60, "* * * * *"), (300, "*/5 * * * *"), (900, "*/15 * * * *"), (3600, "0 * * * *"),
     (21600, "0 */6 * * *"), (86400, "0 0 * * *")],
)
def test_cron_is_derived_from_the_cadence(cadence_sec: int, cron: str) -> None:
    assert Channel("s", "c", cadence_sec, "d", DataLocation("t", "ts", "x")).cron_schedule == cron


@pytest.mark.parametrize("cadence_sec", [90, 420, 5400, 172800])
def test_a_cadence_cron_cannot_keep_is_refused(cadence_sec: int) -> None:
    with pytest.raises(ValueError, match="cannot be written as a cron schedule"):
        Channel("s", "c", cadence_sec, "d", DataLocation("t", "ts", "x"))


def test_freshness_warns_before_it_fails_and_never_under_a_minute() -> None:
    for declared in REGISTRY:
        assert 60 <= declared.freshness_warn_sec < declared.stale_after_sec
    assert CANDLES.freshness_warn_sec == 180
