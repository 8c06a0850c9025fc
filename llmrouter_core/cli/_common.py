"""Shared helpers of the CLI commands: error handling, logging, input files."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from llmrouter_core.errors import LLMRouterError

err_console = Console(stderr=True, highlight=False)
console = Console(highlight=False)

F = TypeVar("F", bound=Callable[..., Any])

TrustEndpointsOpt = Annotated[
    bool,
    typer.Option(
        "--trust-endpoints",
        help="Use the endpoints, key variables and headers saved in the router directory "
        "(ignored by default: a router directory is untrusted input).",
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line to stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors on bad input into one line on stderr and exit code 1."""
    try:
        yield
    except typer.Exit:
        raise
    except (LLMRouterError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        fail(_one_line(exc))
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        fail(_one_line(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return lines[0] if len(lines) == 1 else lines[0] + " " + " ".join(x.strip() for x in lines[1:4])


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


def read_queries(path: Path) -> tuple[list[str], list[str]]:
    """``(query_ids, queries)`` from a JSONL file with ``query_id`` and ``query`` per line."""
    if not path.is_file():
        fail(f"queries file not found: {path}")
    ids: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                fail(f"{path}:{lineno}: not valid JSON ({exc.msg})")
            if not isinstance(row, dict):
                fail(f"{path}:{lineno}: expected a JSON object with query_id and query")
            if "query" not in row or "query_id" not in row:
                missing = [k for k in ("query_id", "query") if k not in row]
                fail(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            query = row["query"]
            if not isinstance(query, str):
                fail(f"{path}:{lineno}: 'query' must be a string")
            qid = row["query_id"]
            key = json.dumps(qid)
            if key in seen:
                fail(f"{path}:{lineno}: duplicate query_id {qid!r}")
            seen.add(key)
            ids.append(qid)
            texts.append(query)
    if not ids:
        fail(f"{path} has no queries")
    return ids, texts


def echo_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
