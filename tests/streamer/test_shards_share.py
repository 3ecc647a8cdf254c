"""A shard's share of the universe (``--shard I/N``): the N shares partition the coins, a listing
or a delisting moves no other coin, going from N to N+1 shards moves coins only to the new one, and
every process on every host computes the same share (no salted ``hash``). Bad ``I/N`` is refused
with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_assets.memory.shards import Shard, ShardError
from streamer.config import shard_from_env
from streamer.universe import Universe, shard_of

COIN = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=12)
COINS = st.lists(COIN, min_size=0, max_size=60, unique=True)
COUNT = st.integers(min_value=1, max_value=12)


def universe(coins: list[str]) -> Universe:
    return Universe(tuple(coins), {coin: float(len(coins) - i) for i, coin in enumerate(coins)}, ())


def shares(coins: list[str], count: int) -> list[tuple[str, ...]]:
    return [universe(coins).share(Shard(index, count)).coins for index in range(1, count + 1)]


@settings(max_examples=200, deadline=None)
@given(coins=COINS, count=COUNT)
def test_the_shares_partition_the_universe_keeping_its_order(coins: list[str], count: int) -> None:
    parts = shares(coins, count)
    followed = [coin for part in parts for coin in part]
    assert sorted(followed) == sorted(coins)  # every coin once: none left out, none twice
    for part in parts:
        assert list(part) == [coin for coin in coins if coin in part]  # most traded first, as given


@settings(max_examples=200, deadline=None)
@given(coins=COINS, changes=st.lists(COIN, min_size=1, max_size=10, unique=True), count=COUNT)
def test_a_listing_or_a_delisting_moves_no_other_coin(coins: list[str], changes: list[str], count: int) -> None:
    before = {coin: index for index, part in enumerate(shares(coins, count), 1) for coin in part}
    listed = coins + [coin for coin in changes if coin not in coins]
    delisted = [coin for coin in coins if coin not in changes]
    for after_coins in (listed, delisted):
        after = {coin: index for index, part in enumerate(shares(after_coins, count), 1) for coin in part}
        assert {coin: after[coin] for coin in after if coin in before} == {coin: before[coin] for coin in after if coin in before}


@settings(max_examples=200, deadline=None)
@given(coins=COINS, count=COUNT)
def test_one_more_shard_takes_coins_only_for_itself(coins: list[str], count: int) -> None:
    for coin in coins:
        assert shard_of(coin, count + 1) in (shard_of(coin, count), count + 1)


def test_shares_are_balanced_enough_for_a_real_universe() -> None:
    coins = [f"COIN{i}" for i in range(230)]  # about Hyperliquid's listed perps
    sizes = sorted(len(part) for part in shares(coins, 3))
    assert sum(sizes) == 230 and sizes[0] >= 50, sizes  # an even share is 76-77


def test_every_process_computes_the_same_share_whatever_its_hash_seed() -> None:
    coins = [f"COIN{i}" for i in range(40)] + ["BTC", "ETH", "kPEPE", "@107"]
    program = (
        "import sys, json; from streamer.universe import shard_of; "
        "print(json.dumps([shard_of(c, 4) for c in json.loads(sys.argv[1])]))"
    )
    here = [shard_of(coin, 4) for coin in coins]
    for seed in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", program, json.dumps(coins)], env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == here


@pytest.mark.parametrize(("text", "shard"), [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3)), (" 3 / 3 ", Shard(3, 3))])
def test_a_shard_is_read_from_its_text(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard
    assert shard_from_env({"MARKET_STREAM_SHARD": text}) == shard


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0/3", "shard 0/3: must be I/N with 0 < I <= N <= 1000"),
        ("4/3", "shard 4/3: must be I/N with 0 < I <= N <= 1000"),
        ("1/0", "shard 1/0: must be I/N with 0 < I <= N <= 1000"),
        ("2", "shard '2': expected I/N, e.g. 2/3 (shard 2 of 3)"),
        ("-1/2", "shard '-1/2': expected I/N, e.g. 2/3 (shard 2 of 3)"),
        ("a/b", "shard 'a/b': expected I/N, e.g. 2/3 (shard 2 of 3)"),
    ],
)
def test_bad_text_is_refused_with_one_line(text: str, error: str) -> None:
    with pytest.raises(ShardError) as refused:
        Shard.parse(text)
    assert str(refused.value) == error


def test_no_shard_set_follows_everything() -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"MARKET_STREAM_SHARD": " "}) is None
    assert universe(["BTC", "ETH"]).share(None).coins == ("BTC", "ETH")


def test_a_bad_shard_stops_the_streamer_before_it_opens_anything(tmp_path: Path) -> None:
    memory = tmp_path / "market.db"
    env = os.environ | {"MARKET_DB": str(memory)}
    refused = subprocess.run(
        [sys.executable, "-m", "streamer", "--shard", "3/2"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert (refused.returncode, refused.stderr.splitlines()) == (2, ["market stream: shard 3/2: must be I/N with 0 < I <= N <= 1000"])
    assert list(tmp_path.iterdir()) == []  # nothing opened, nothing created
