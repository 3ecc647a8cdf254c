"""A process's log file is bounded: past its size it rolls over, keeping a fixed number of backups."""

from __future__ import annotations

from pathlib import Path

from market_assets.logs import RotatingLog


def test_a_log_rolls_over_at_its_size_and_keeps_only_its_backups(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "logs" / "api.log", max_bytes=100, backups=2)
    for index in range(40):
        log.write(f"line {index:02d} " + "x" * 20)  # 29 bytes a line: a roll-over every 4 lines
    log.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["api.log", "api.log.1", "api.log.2"]
    assert all(p.stat().st_size <= 100 + 29 for p in (tmp_path / "logs").iterdir())
    newest_first = [(tmp_path / "logs" / name).read_text().splitlines() for name in ("api.log", "api.log.1", "api.log.2")]
    kept = [line[:7] for lines in reversed(newest_first) for line in lines]
    assert kept == [f"line {i:02d}" for i in range(40 - len(kept), 40)]  # the newest lines, in order
