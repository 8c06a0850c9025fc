"""Shared helpers of the CLI commands: error handling, logging, input files."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from llmrouter_core.data.defects import DefectError
from llmrouter_core.errors import LLMRouterError

logger = logging.getLogger("llmrouter_core.cli")

# No emoji codes (":x:" in a path would become a picture) and no highlighting: user text
# (paths, model names, error messages) is printed as given. Markup is only ever parsed in
# our own format strings, and every user value in them goes through :func:`plain`.
err_console = Console(stderr=True, highlight=False, emoji=False)
console = Console(highlight=False, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])

TrustEndpointsOpt = Annotated[
    bool,
    typer.Option(
        "--trust-endpoints",
        help="Use the endpoints, key variables and headers saved in the router directory "
        "(ignored by default: a router directory is untrusted input).",
    ),
]


def plain(value: object) -> str:
    """``value`` as text that rich prints literally (brackets are not markup)."""
    return escape(str(value))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line to stderr and exit non-zero.

    The message is plain text, never parsed as markup: a path such as ``runs/[v2]/a.csv``
    is printed as given.
    """
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    line = Text.assemble(("error:", "bold red"), " ", one_line)
    err_console.print(line, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors on bad input into one line on stderr and exit code 1.

    Anything else is a bug, still reported as one line (``error: internal error: ...``,
    asking for a report); ``-vv`` logs its traceback.
    """
    try:
        yield
    except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
        raise
    except DefectError as exc:
        fail(_defect_line(exc))
    except (LLMRouterError, OSError) as exc:
        fail(_one_line(exc))
    except (ValueError, TypeError) as exc:
        fail(_one_line(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # a bug: one line, not a traceback
        logger.debug("internal error", exc_info=True)
        fail(
            f"internal error: {type(exc).__name__}: {_one_line(exc)} (please report this; "
            "-vv shows the traceback)"
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return lines[0] if len(lines) == 1 else lines[0] + " " + " ".join(x.strip() for x in lines[1:4])


def _defect_line(exc: DefectError) -> str:
    """One line for data with defects under ``--on-defect error``; -v logs the full report."""
    report = exc.report
    logger.info("%s", report.summary())
    first = next((d for kind in report.items.values() for d in kind), None)
    head = report.summary().splitlines()[0]
    example = f"; first: {first}" if first is not None else ""
    return f"{head}{example}. Use --on-defect drop to drop exactly these rows; -v lists them all"


def setup_logging(verbose: int) -> None:
    """Library logs go to stderr through rich; -v shows INFO, -vv DEBUG."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger("llmrouter_core")
    root.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=err_console, show_path=False, show_time=False)
        root.addHandler(handler)
    for noisy in ("LiteLLM", "litellm", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def read_text(path: Path, what: str = "file") -> str:
    """The text of a UTF-8 file (a leading BOM dropped); fails with one line naming the file,
    and for a byte that is not UTF-8, the line: ``FILE:LINE: not valid UTF-8``."""
    if not path.is_file():
        fail(f"{what} not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        fail(f"{path}:{line}: not valid UTF-8")
    return text.removeprefix("\ufeff")


def text_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text split on newlines only (never inside a query on
    characters such as U+2028 that ``str.splitlines`` also breaks at)."""
    for lineno, line in enumerate(text.split("\n"), 1):
        yield lineno, line.removesuffix("\r")


def parse_json(text: str, where: str) -> Any:
    """``json.loads(text)``, failing with one line ``WHERE: not valid JSON (...)``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{where}: not valid JSON ({exc.msg})")
    except RecursionError:
        fail(f"{where}: not valid JSON (nested too deeply)")


def check_amount(value: float | None, option: str) -> None:
    """Fail unless ``value`` (when given) is a number >= 0 (``inf`` allowed, ``nan`` not)."""
    if value is not None and not value >= 0:
        fail(f"{option} must be a number >= 0, got {value}")


def read_queries(path: Path) -> tuple[list[Any], list[str]]:
    """``(query_ids, queries)`` from a JSONL file with ``query_id`` and ``query`` per line.

    Every problem fails with one line naming the file and line: bad JSON or UTF-8, missing
    fields, an empty query text, a duplicate id.
    """
    ids: list[Any] = []
    texts: list[str] = []
    seen: set[str] = set()
    for lineno, line in text_lines(read_text(path, "queries file")):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        row = parse_json(line, where)
        if not isinstance(row, dict):
            fail(f"{where}: expected a JSON object with query_id and query")
        if "query" not in row or "query_id" not in row:
            missing = [k for k in ("query_id", "query") if k not in row]
            fail(f"{where}: missing field(s) {', '.join(missing)}")
        query = row["query"]
        if not isinstance(query, str):
            fail(f"{where}: 'query' must be a string")
        if not query.strip():
            fail(f"{where}: empty query (nothing to route on)")
        qid = row["query_id"]
        key = json.dumps(qid)
        if key in seen:
            fail(f"{where}: duplicate query_id {key}")
        seen.add(key)
        ids.append(qid)
        texts.append(query)
    if not ids:
        fail(f"{path} has no queries")
    return ids, texts


def echo_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
