"""The data types shared by tasks and sources: an :class:`Example` and a :class:`HubSpec`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Adapter", "Example", "HubSpec"]


@dataclass(frozen=True)
class Example:
    """One query of a task.

    Attributes:
        id: Unique within the task (the dataset's id, or a hash of the question).
        task: The task's name.
        question: The question as the dataset states it (no options, no tests).
        gold: The gold answer: text or aliases (QA), an option letter (multiple choice), a
            number or solution (GSM8K, MATH), concepts (CommonGen), test code (coding).
        choices: ``(letter, text)`` options of a multiple-choice question.
        tests: Test code shown in the prompt of a coding task (MBPP's asserts).
        meta: Anything else the template or metric reads (``entry_point``, ``setup``...).
        images: Image URLs (``https://...`` or ``data:image/...;base64,...``) shown with the
            question: only vision models see them (as content parts).
    """

    id: str
    task: str
    question: str
    gold: Any
    choices: tuple[tuple[str, str], ...] = ()
    tests: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    images: tuple[str, ...] = ()

    @property
    def query_id(self) -> str:
        """The id in routing data: ``task/id``."""
        return f"{self.task}/{self.id}"


Adapter = Callable[[Mapping[str, Any], int], Example]


@dataclass(frozen=True)
class HubSpec:
    """A dataset on the hub and how to read it.

    Attributes:
        path: Dataset id (``"openai/gsm8k"``).
        config: Configuration name, or ``None``.
        split: The split read (an evaluation split).
        adapter: ``(record, index) -> Example``; it raises :class:`DataError` on a record
            that lacks what the task needs.
    """

    path: str
    config: str | None
    split: str
    adapter: Adapter
