"""Runs over many subjects (coins, search terms, series): one subject's failure is kept, not fatal.

A source refusing one coin's ``fundingHistory`` says nothing about the other coins: the run keeps
what the others returned and records each failed subject's error, in one line, in its ledger
metadata under :data:`SUBJECT_ERRORS` (the dashboard warns ``partial_run`` on it). Only when every
subject failed is there nothing to keep: the run fails, and its error names them.

Only :class:`~market_assets.sources.errors.SourceError` is a subject's failure (the source
refused, timed out or answered nonsense); any other exception is a bug and fails the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from market_assets.sources.errors import SourceError

SUBJECT_ERRORS = "subject_errors"
"""The ledger metadata key of ``{subject: one-line error}`` (read by the dashboard's ``partial_run``)."""

MAX_ERROR_CHARS = 300
"""One subject's error is its cause's first line, cut to this: the ledger stays compact."""

MAX_NAMED_IN_ERROR = 10
"""A run that failed for every subject names this many of them, with their errors, in its error."""

T = TypeVar("T")


class AllSubjectsFailed(SourceError):
    """Every subject of a run failed: nothing was collected, so nothing is written.

    A :class:`SourceError` like the failures it gathers, so every caller that reports a source's
    refusal in one line (the CLI, the ledger) reports this one the same way.
    """

    def __init__(self, source: str, subjects: str, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        named = "; ".join(f"{subject}: {error}" for subject, error in list(self.errors.items())[:MAX_NAMED_IN_ERROR])
        more = len(self.errors) - MAX_NAMED_IN_ERROR
        super().__init__(
            source,
            f"every {subjects}",
            f"all {len(self.errors)} failed: {named}" + (f"; and {more} more" if more > 0 else ""),
        )


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text[:MAX_ERROR_CHARS]


async def each_subject(
    subjects: Iterable[str], fetch: Callable[[str], Awaitable[T]], errors: dict[str, str]
) -> dict[str, T]:
    """``fetch`` every subject concurrently; the results of those that answered, and each
    failed subject's one-line error added to ``errors``."""

    async def attempt(subject: str) -> tuple[str, T | None, str | None]:
        try:
            return subject, await fetch(subject), None
        except SourceError as exc:
            return subject, None, one_line(exc)

    results: dict[str, T] = {}
    for subject, value, error in await asyncio.gather(*(attempt(s) for s in subjects)):
        if error is not None:
            errors[subject] = error
        else:
            results[subject] = value  # type: ignore[assignment]
    return results


async def one_subject(subject: str, fetch: Awaitable[T], errors: dict[str, str]) -> T | None:
    """Await one subject's request; ``None`` and its error recorded if the source failed it."""
    try:
        return await fetch
    except SourceError as exc:
        errors[subject] = one_line(exc)
        return None


def subject_details(errors: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """A batch's details entry for its failed subjects: none when every subject answered."""
    return {SUBJECT_ERRORS: dict(errors)} if errors else {}


def refuse_if_all_failed(source: str, subjects: str, count: int, errors: Mapping[str, str]) -> None:
    """Raise :class:`AllSubjectsFailed` when every one of the ``count`` (> 0) ``subjects``
    (``coin``, ``search term``) failed."""
    if count > 0 and len(errors) >= count:
        raise AllSubjectsFailed(source, subjects, errors)
