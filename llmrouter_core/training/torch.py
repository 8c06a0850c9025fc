"""PyTorch for the scorers that train networks (``torch`` extra), without touching the
process's own torch settings.

Training here uses explicit random generators (never ``torch.manual_seed``), and one
intra-op thread for the duration of a fit: the networks are small, and spinning threads make
training many times slower on a busy machine. The caller's thread setting is restored after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmrouter_core.errors import MissingExtraError

__all__ = ["import_torch", "torch_threads"]


def import_torch(what: str) -> Any:
    """Import torch (the ``torch`` extra) for ``what``, changing nothing about it.

    Raises:
        MissingExtraError: torch is not installed.
    """
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "torch", what) from None
    return torch


@contextmanager
def torch_threads(what: str, threads: int = 1, seed: int | None = None) -> Iterator[Any]:
    """``with torch_threads("the graph scorer") as torch:`` runs the block with ``threads``
    intra-op threads and restores the caller's setting afterwards. With ``seed``, torch's
    global generator (dropout draws from it) is seeded for the block only: its state before
    the block is restored after."""
    torch = import_torch(what)
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        if seed is None:
            yield torch
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                yield torch
    finally:
        torch.set_num_threads(previous)
