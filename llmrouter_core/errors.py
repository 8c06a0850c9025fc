"""Exceptions raised by llmrouter-core.

Every error the library raises on bad input derives from :class:`LLMRouterError`, so a caller
can catch one type; each also derives from the built-in type a Python user would expect
(``ValueError``, ``ImportError``, ...).
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "FeedbackStoreError",
    "JudgeError",
    "LLMRouterError",
    "MissingExtraError",
    "MissingToolCallError",
    "NotFittedError",
    "PersistenceError",
    "UnknownModelError",
    "UnknownRouterError",
]


class LLMRouterError(Exception):
    """Base class of every error raised by llmrouter-core."""


class NotFittedError(LLMRouterError, ValueError, AttributeError):
    """A router was used before ``fit`` (mirrors scikit-learn's ``NotFittedError``)."""


class DataError(LLMRouterError, ValueError):
    """Routing data is malformed or has defects the caller chose not to drop."""


class UnknownModelError(LLMRouterError, KeyError):
    """A model name is not in the pool."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownRouterError(LLMRouterError, KeyError):
    """A router name is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class JudgeError(LLMRouterError, RuntimeError):
    """The LLM that rates the pool for an LLM-based router (its *judge*) could not be called."""


class PersistenceError(LLMRouterError, ValueError):
    """A saved router directory is missing, incomplete or of an unsupported format."""


class FeedbackStoreError(LLMRouterError, RuntimeError):
    """A feedback store (see :mod:`llmrouter_core.personalized`) cannot be read or written."""


class MissingExtraError(LLMRouterError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, what: str = "") -> None:
        self.package = package
        self.extra = extra
        purpose = f" for {what}" if what else ""
        super().__init__(
            f"{package} is required{purpose}; "
            f"install it with: pip install 'llmrouter-core[{extra}]'"
        )


class MissingToolCallError(LLMRouterError, RuntimeError):
    """A call with tools was answered without the tool call it needed (an adapter's strict
    mode; otherwise a :class:`~llmrouter_core.integration.ToolCallWarning`)."""
