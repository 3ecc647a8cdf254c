"""Secrets and text (issue 14): a URL's credentials never reach a terminal, a log, a tick or the
ledger, while the request still goes to the full URL; source text cannot break Rich markup."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from market_assets.ledger import Ledger
from market_assets.memory import connect, open_memory
from market_assets.memory.connection import close
from market_assets.memory.runs import runs_of
from market_assets.redact import redact, redact_url
from market_assets.registry import DEFILLAMA_MACRO, POLYMARKET_DISCOVERY

from .conftest import MARKET
from .webhook import webhook_receiver

SLACK_SECRET = "T0SECRET/B0SECRET/xoxbSlackSecret42"
QUERY_SECRET = "qs-3cr3t-token"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/***"),
        ("https://discord.com/api/webhooks/1234/tok-en_x", "https://discord.com/api/webhooks/1234/***"),
        ("https://chat.example.org/hooks/abc123", "https://chat.example.org/hooks/***"),
        ("https://api.telegram.org/bot123:AAH-x/sendMessage", "https://api.telegram.org/bot***/sendMessage"),
        ("https://alice:pa55@example.com/feed", "https://***@example.com/feed"),
        ("https://ghp_token@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("https://api.x.io/v1?api_key=k1&limit=5&apiKey=k2", "https://api.x.io/v1?api_key=***&limit=5&apiKey=***"),
        ("https://b.s3.amazonaws.com/o?X-Amz-Signature=ab&X-Amz-Date=1", "https://b.s3.amazonaws.com/o?X-Amz-Signature=***&X-Amz-Date=1"),
        ("https://x.io/cb#access_token=t&state=s", "https://x.io/cb#access_token=***&state=s"),
        ("https://x.io/a?token=t&secret=s&signature=g", "https://x.io/a?token=***&secret=***&signature=***"),
        ("https://gamma-api.polymarket.com/public-search?q=bitcoin&limit_per_type=50",
         "https://gamma-api.polymarket.com/public-search?q=bitcoin&limit_per_type=50"),
        ("https://api.hyperliquid.xyz/info", "https://api.hyperliquid.xyz/info"),
    ],
)
def test_a_url_is_shown_with_its_credentials_masked_and_nothing_else_changed(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_every_url_inside_a_text_is_redacted_where_it_stands() -> None:
    text = (
        "Client error '404 Not Found' for url 'https://hooks.slack.com/services/T/B/S?token=q'\n"
        "retrying https://u:p@h.io/x (attempt 2)"
    )
    assert redact(text) == (
        "Client error '404 Not Found' for url 'https://hooks.slack.com/services/***?token=***'\n"
        "retrying https://***@h.io/x (attempt 2)"
    )


def monitor_once(db: Path, state: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")} | {"MARKET_ALERT_WEBHOOK_URL": url}
    return subprocess.run(
        [str(MARKET), "--db", str(db), "monitor", "--once", "--state", str(state)],
        capture_output=True, text=True, env=env, timeout=60,
    )


def test_a_webhook_refusing_an_alert_is_reported_without_its_token_while_the_post_went_to_the_full_url(
    tmp_path: Path,
) -> None:
    db, state = tmp_path / "market.db", tmp_path / "monitor.json"
    close(connect(db))
    with webhook_receiver(status=404, path=f"/services/{SLACK_SECRET}?token={QUERY_SECRET}") as hook:
        first, second = monitor_once(db, state, hook.url), monitor_once(db, state, hook.url)
    assert (first.returncode, second.returncode) == (0, 1)
    assert hook.paths == [f"/services/{SLACK_SECRET}?token={QUERY_SECRET}"]  # the full URL was used
    [line] = second.stderr.splitlines()
    assert line.startswith("market monitor: the alert webhook refused the notification (HTTPStatusError: ")
    assert "404 Not Found" in line and "/services/***?token=***" in line
    for output in (first.stdout, first.stderr, second.stdout, second.stderr, state.read_text()):
        assert "Secret" not in output and QUERY_SECRET not in output


def test_a_run_s_error_naming_a_secret_url_is_kept_redacted_in_the_ledger_and_status(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    with webhook_receiver(status=404, path=f"/v1/tvl?api_key={QUERY_SECRET}") as source:
        with open_memory(db) as conn:
            with pytest.raises(httpx.HTTPStatusError):
                with Ledger(conn).run(DEFILLAMA_MACRO):
                    httpx.post(source.url, json={}, timeout=5).raise_for_status()
            [run] = runs_of(conn, DEFILLAMA_MACRO.source, DEFILLAMA_MACRO.name)
    assert source.paths == [f"/v1/tvl?api_key={QUERY_SECRET}"]
    assert run.error is not None and run.error.startswith("HTTPStatusError: Client error '404 Not Found' for url ")
    assert "/v1/tvl?api_key=***" in run.error and QUERY_SECRET not in run.error
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")}
    for command in (("status",), ("check",)):
        result = subprocess.run([str(MARKET), "--db", str(db), *command], capture_output=True, text=True, env=env, timeout=60)
        assert "api_key=***" in result.stdout and QUERY_SECRET not in result.stdout + result.stderr


def test_source_text_with_rich_markup_is_shown_as_written(tmp_path: Path) -> None:
    """A Gamma error once carried ``[/]``; Rich read it as a closing tag and `market status` crashed."""
    db = tmp_path / "market.db"
    error = "PayloadError: gamma answered 'closing tag [/] at position 12' for [bold]Will BTC hit 100k?[/bold]"
    with open_memory(db) as conn:
        run = Ledger(conn).start(POLYMARKET_DISCOVERY)
        run.fail(error)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")} | {"COLUMNS": "400"}
    result = subprocess.run([str(MARKET), "--db", str(db), "status"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    [explained] = [line for line in result.stdout.splitlines() if line.startswith("polymarket/discovery: ")]
    assert explained.endswith(f"ago: {error}")
