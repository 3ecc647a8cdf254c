"""A failed run's console line names the innermost cause, as a traceback's last line does."""

from __future__ import annotations

from dagster._utils.error import SerializableErrorInfo

from market_assets.stack_runs import CAUSE_MAX_CHARS, cause_line


def error(message: str, cls_name: str, cause: SerializableErrorInfo | None = None) -> SerializableErrorInfo:
    return SerializableErrorInfo(message=message, stack=["  File x, line 1\n"], cls_name=cls_name, cause=cause)


def test_the_cause_is_the_innermost_errors_first_line() -> None:
    source = error("SourceError: defillama: HTTP 400 from /llama/protocols\nbody: bad\n", "SourceError")
    wrapped = error('dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "x":\n',
                    "DagsterExecutionStepExecutionError", cause=source)
    assert cause_line(wrapped) == "SourceError: defillama: HTTP 400 from /llama/protocols"


def test_a_long_cause_is_cut_to_one_bounded_line() -> None:
    line = cause_line(error("ValueError: " + "y" * 1000 + "\n", "ValueError"))
    assert len(line) == CAUSE_MAX_CHARS and line.endswith("…")
