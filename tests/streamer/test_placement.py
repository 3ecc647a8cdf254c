"""Spreading subscriptions over sockets within the IP's limits (10 sockets, 1,000 subscriptions)."""

from __future__ import annotations

from streamer.placement import place

COINS = [f"C{i:03d}" for i in range(228)]


def test_the_universe_is_spread_evenly_over_the_fewest_sockets_that_hold_it() -> None:
    placement = place(COINS, max_connections=4, per_connection=60, max_subscriptions=1000)
    sizes = [len(s) for s in placement.sockets]
    assert sizes == [57, 57, 57, 57] and not placement.unplaced
    assert sorted(c for s in placement.sockets for c in s) == sorted(COINS)


def test_the_most_traded_coins_are_dealt_round_robin_so_no_socket_holds_all_of_them() -> None:
    placement = place(COINS, max_connections=4, per_connection=60, max_subscriptions=1000)
    assert [s[0] for s in placement.sockets] == ["C000", "C001", "C002", "C003"]


def test_a_small_universe_needs_one_socket() -> None:
    assert place(COINS[:5], max_connections=4, per_connection=60, max_subscriptions=1000).sockets == (tuple(COINS[:5]),)


def test_past_the_socket_limit_sockets_grow_and_past_the_ip_limit_coins_are_left_out_and_named() -> None:
    many = [f"X{i}" for i in range(1200)]
    placement = place(many, max_connections=10, per_connection=60, max_subscriptions=1000)
    assert len(placement.sockets) == 10 and all(len(s) == 100 for s in placement.sockets)
    assert placement.unplaced == tuple(many[1000:])


def test_a_listing_joins_the_least_loaded_socket_and_nothing_already_placed_moves() -> None:
    before = place(COINS[:10], max_connections=2, per_connection=5, max_subscriptions=1000).sockets
    after = place(
        [c for c in COINS[:11] if c != "C002"], before, max_connections=2, per_connection=5, max_subscriptions=1000
    ).sockets
    assert "C002" not in after[0] and after[0] == tuple(c for c in before[0] if c != "C002") + ("C010",)
    assert after[1] == before[1]
