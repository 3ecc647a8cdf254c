"""The alerting policy (SPEC §6) as code: when a host monitor should tell a person.

* Notify when ``ok`` is false for two consecutive checks — one bad check (a run a little late,
  a restart) is not worth a page.
* Once notified, stay quiet while the worst status stays the same; notify again when it changes
  (``stale`` turning ``failed`` is news, and so is ``failed`` easing to ``stale``).
* On recovery, send one "resolved" message — only if a problem had been notified.
* ``failed`` outranks ``stale`` (``health.Severity``); the message lists the worst channel
  first, and a ``missing`` channel is named a setup/configuration failure (``health.explain``).
* A failing blocking asset check is ``failed`` (SPEC §12): it pages like a failed run, and its
  line names the check and its first problem (``health.explain``).

:func:`step` is pure: (state, health report, memory age) → (next state, message or ``None``).
The state lives in a small JSON file between checks, so a cron job calling ``market monitor
--once`` and a long-running ``market monitor`` follow the same policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from market_assets.health import ChannelHealth, HealthReport, Severity, Status, explain
from market_assets.redact import redact

CONSECUTIVE_BAD_CHECKS = 2
"""SPEC §6: notify when ``ok`` is false for two consecutive checks."""

_ICON = {Status.FAILED: ":red_circle:", Status.MISSING: ":red_circle:", Status.STALE: ":warning:"}
_HEADLINE = {
    Status.FAILED: "failed",
    Status.MISSING: "setup/configuration failure (missing)",
    Status.STALE: "stale",
}


class StateFileError(ValueError):
    """The state file holds something else than a monitor state."""


@dataclass(frozen=True)
class MonitorState:
    consecutive_bad: int = 0
    """Checks in a row whose ``ok`` was false."""
    notified: str | None = None
    """The worst status of the last notification; ``None`` when no problem is outstanding."""


@dataclass(frozen=True)
class Step:
    state: MonitorState
    message: str | None
    """What to send now, if anything."""


def step(state: MonitorState, report: HealthReport, memory_age_sec: int) -> Step:
    """Apply one check to ``state``."""
    if report.ok:
        if state.notified is None:
            return Step(MonitorState(), None)
        message = (
            f":large_green_circle: market: resolved, every channel is ok again "
            f"(after {state.consecutive_bad} bad checks; it was {state.notified})"
        )
        return Step(MonitorState(), message)

    bad = worst_first(report)
    worst = bad[0].status
    counted = MonitorState(state.consecutive_bad + 1, state.notified)
    if counted.consecutive_bad < CONSECUTIVE_BAD_CHECKS or worst.value == state.notified:
        return Step(counted, None)
    if state.notified is None:
        headline = f"not ok for {counted.consecutive_bad} consecutive checks, worst: {_HEADLINE[worst]}"
    else:
        headline = f"still not ok, worst is now {_HEADLINE[worst]} (was {state.notified})"
    lines = [f"{_ICON[worst]} market: {headline}"]
    lines += [f"• {h.channel.key}: {h.status.value}: {explain(h, memory_age_sec)}" for h in bad]
    # Ledger errors are redacted when written; rows from before that, or from elsewhere, here too.
    return Step(MonitorState(counted.consecutive_bad, worst.value), redact("\n".join(lines)))


def unsent(previous: MonitorState, attempted: Step) -> MonitorState:
    """The state to keep when ``attempted``'s message could not be delivered: the check counts,
    the notification does not, so the next check sends it again."""
    if attempted.state.consecutive_bad == 0:
        return previous  # an undelivered "resolved": the problem stays outstanding
    return MonitorState(attempted.state.consecutive_bad, previous.notified)


def check(path: Path, report: HealthReport, memory_age_sec: int, deliver: Callable[[str], None]) -> str | None:
    """One check against the state file at ``path``: the message delivered, if any.

    When ``deliver`` raises, the state that retries on the next check is saved first and the
    error propagates.
    """
    previous = load_state(path)
    outcome = step(previous, report, memory_age_sec)
    if outcome.message is not None:
        try:
            deliver(outcome.message)
        except BaseException:
            save_state(path, unsent(previous, outcome))
            raise
    save_state(path, outcome.state)
    return outcome.message


def worst_first(report: HealthReport) -> list[ChannelHealth]:
    """The channels that make ``ok`` false, most severe first (failed > missing > stale), then in
    registry order."""
    bad = [h for h in report.channels if h.severity > Severity.OK]
    return sorted(bad, key=lambda h: h.severity, reverse=True)


def load_state(path: Path) -> MonitorState:
    """The state saved by the previous check; a fresh one when there is none.

    A file that is not a state (hand-edited, truncated by a full disk) is an error naming the
    file: silently starting over could swallow a notification or repeat one.
    """
    try:
        raw = json.loads(path.read_text())
        return MonitorState(int(raw["consecutive_bad"]), raw["notified"])
    except FileNotFoundError:
        return MonitorState()
    except (ValueError, KeyError, TypeError) as exc:
        raise StateFileError(f"the monitor state file {path} is not a state ({exc}); delete it to start over") from exc


def save_state(path: Path, state: MonitorState) -> None:
    """Replace the state file atomically: a monitor killed mid-write leaves the previous state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(asdict(state), sort_keys=True) + "\n")
    os.replace(scratch, path)
