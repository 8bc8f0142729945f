"""The failures that reading the host is expected to meet; any other exception is a bug.

A process or a cgroup can vanish between two reads, a hierarchy may be absent, and a
kernel file may hold what its parser does not know.  For these the core serves the
host's file without counting an error; everything else (a KeyError in a view, say) is
counted and logged with its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast


class Unavailable(Exception):
    """What the host cannot give right now: the reader gets the host's file."""


class ProcessGone(Unavailable, ProcessLookupError):
    """The process exited (ENOENT or ESRCH on its /proc directory) or its namespace emptied.

    Also an OSError, as the failed read was: code that catches OSError keeps catching it.
    """


class ParseError(Unavailable, ValueError):
    """A kernel file's text is not what its parser knows."""


F = TypeVar("F", bound=Callable[..., Any])


def parser(func: F) -> F:
    """Mark func as a parser of kernel text: the errors malformed text causes become ParseError."""

    def failed(err: Exception) -> ParseError:
        return ParseError(f"{func.__name__}: {err!r}")

    # Most parsers take the text alone, and several run on every read: no argument packing.
    if func.__code__.co_argcount == 1 and not func.__defaults__:

        @functools.wraps(func)
        def parse(text: Any) -> Any:
            try:
                return func(text)
            except ParseError:
                raise
            except (ValueError, IndexError, KeyError) as err:
                raise failed(err) from err

    else:

        @functools.wraps(func)
        def parse(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except ParseError:
                raise
            except (ValueError, IndexError, KeyError) as err:
                raise failed(err) from err

    parse.parses_kernel_text = True  # type: ignore[attr-defined]
    return cast(F, parse)
