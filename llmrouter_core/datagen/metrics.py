"""Scoring a model's answer against the gold answer, one function per kind of task.

Every metric returns a score in [0, 1]:

* :func:`exact_match` and :func:`token_f1`: SQuAD's answer normalisation (lower case, no
  punctuation, no articles ``a``/``an``/``the``, single spaces), best over the gold aliases.
* :func:`choice_accuracy`: the option letter the answer names (``"The answer is (B)"``,
  ``"B."``, ``"Answer: b"``, or the text of exactly one option) against the gold letter.
* :func:`numeric_match`: GSM8K. The final number of the answer (after ``####``, ``the answer
  is``, inside ``\\boxed{}``, else the last number), with thousands commas, currency and
  units dropped, compared as a number: ``3.5`` is 3.5, never 35.
* :func:`math_equivalence`: MATH. The last ``\\boxed{}`` of the answer against the gold
  solution's, equal as mathematics (``math-verify`` when installed, else sympy and a
  normalised string comparison).
* :func:`concept_coverage`: CommonGen. The share of the concepts that the sentence uses
  (inflections count: ``dogs`` covers ``dog``).
* :func:`code_pass`: pass@1 of model-written code, run only in a
  :class:`~llmrouter_core.datagen.sandbox.Sandbox`.

Example:
    >>> numeric_match("She pays $1,250.50 in total. The answer is 1,250.5", "1250.5")
    1.0
    >>> numeric_match("The answer is 35", "3.5")
    0.0
    >>> round(token_f1("the Eiffel Tower", ["Eiffel Tower in Paris"]), 3)
    0.667
"""

from __future__ import annotations

import logging
import re
import string
import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmrouter_core.datagen.sandbox import Sandbox, SandboxResult

__all__ = [
    "boxed",
    "choice_accuracy",
    "code_pass",
    "concept_coverage",
    "exact_match",
    "extract_choice",
    "extract_code",
    "final_number",
    "math_equivalence",
    "normalize_answer",
    "numeric_match",
    "parse_number",
    "token_f1",
]

logger = logging.getLogger(__name__)


# -- SQuAD ---------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, punctuation and articles removed, spaces collapsed."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _golds(gold: str | Sequence[str]) -> list[str]:
    return [gold] if isinstance(gold, str) else [str(g) for g in gold]


def exact_match(answer: str, gold: str | Sequence[str]) -> float:
    """1.0 if the normalised answer equals a normalised gold alias."""
    norm = normalize_answer(answer)
    return float(any(norm == normalize_answer(g) for g in _golds(gold)))


def _f1(answer: str, gold: str) -> float:
    pred, ref = normalize_answer(answer).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(answer: str, gold: str | Sequence[str]) -> float:
    """SQuAD token F1, best over the gold aliases."""
    return max((_f1(answer, g) for g in _golds(gold)), default=0.0)


# -- multiple choice ---------------------------------------------------------------------

_CHOICE_PATTERNS = (
    r"answer\s*(?:is|:)?\s*(?:option\s*)?[\(\[]?\s*([A-Z])\b",
    r"(?:option|choice)\s*[\(\[]?([A-Z])\b",
    r"^\s*[\(\[]?([A-Z])(?:[\)\].:]|\s*$)",
    r"[\(\[]([A-Z])[\)\]]",
)


def extract_choice(
    answer: str, labels: Sequence[str], options: Sequence[str] = ()
) -> str | None:
    """The option letter an answer names, or ``None``.

    Tried in order: "answer is (B)" / "Answer: B", "option B", a letter that starts the
    answer ("B", "B.", "(B) ..."), a bracketed letter; then the text of exactly one option.
    Only letters in ``labels`` count.
    """
    allowed = {label.upper() for label in labels}
    for pattern in _CHOICE_PATTERNS:
        for match in re.finditer(pattern, answer, flags=re.IGNORECASE | re.MULTILINE):
            letter = match.group(1).upper()
            if letter in allowed and (
                pattern != _CHOICE_PATTERNS[2] or match.group(1).isupper()
            ):
                return letter
    if options:
        norm = normalize_answer(answer)
        hits = [
            label
            for label, text in zip(labels, options)
            if normalize_answer(text) and f" {normalize_answer(text)} " in f" {norm} "
        ]
        if len(hits) == 1:
            return hits[0].upper()
    return None


def choice_accuracy(
    answer: str, gold: str, labels: Sequence[str], options: Sequence[str] = ()
) -> float:
    """1.0 if the answer names the gold option letter."""
    return float(extract_choice(answer, labels, options) == gold.strip().upper())


# -- numbers (GSM8K) -----------------------------------------------------------------------

_NUMBER = r"-?\s?\$?\s?\d(?:[\d,]*\d)?(?:\.\d+)?|-?\.\d+"


def parse_number(text: str) -> float | None:
    """A number written with thousands commas, currency or a unit: ``"$1,234.50"`` ->
    1234.5, ``"3.5 hours"`` -> 3.5, ``"-7"`` -> -7.0. Commas must group thousands
    (``"3,5"`` is not a number)."""
    match = re.search(_NUMBER, text)
    if match is None:
        return None
    raw = match.group(0).replace("$", "").replace(" ", "")
    if "," in raw:
        whole = raw.split(".")[0].lstrip("-")
        if not re.fullmatch(r"\d{1,3}(,\d{3})+", whole):
            return None
        raw = raw.replace(",", "")
    try:
        return float(raw)
    except ValueError:
        return None


def boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def final_number(answer: str) -> float | None:
    """The answer's final number: after ``####``, else after the last "answer is", else in
    the last ``\\boxed{}``, else the last number in the text."""
    for marker in (r"####\s*(.*)", r"answer\s*(?:is|:)\s*(.*)"):
        found = re.findall(marker, answer, flags=re.IGNORECASE)
        if found:
            value = parse_number(found[-1])
            if value is not None:
                return value
    inside = boxed(answer)
    if inside is not None:
        value = parse_number(inside)
        if value is not None:
            return value
    numbers = re.findall(_NUMBER, answer)
    for raw in reversed(numbers):
        value = parse_number(raw)
        if value is not None:
            return value
    return None


def numeric_match(answer: str, gold: str | float) -> float:
    """1.0 if the answer's final number equals the gold number (relative tolerance 1e-6).

    ``gold`` may be a GSM8K solution (its number after ``####``) or a number."""
    target = gold if isinstance(gold, float | int) else final_number(str(gold))
    value = final_number(answer)
    if target is None or value is None:
        return 0.0
    return float(abs(value - float(target)) <= 1e-6 * max(1.0, abs(float(target))))


# -- MATH -------------------------------------------------------------------------------

_math_lock = threading.Lock()


def _strip_math(text: str) -> str:
    text = text.strip().strip("$").replace("\\!", "").replace("\\,", "").replace(" ", "")
    text = re.sub(r"\\(?:text|mbox|mathrm)\{([^}]*)\}", r"\1", text)
    text = text.replace("\\left", "").replace("\\right", "").replace("dfrac", "frac")
    text = text.replace("tfrac", "frac").replace("^\\circ", "").replace("^{\\circ}", "")
    text = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", text)
    return text.rstrip(".")


def math_equivalence(answer: str, gold: str) -> float:
    """1.0 if the answer's last ``\\boxed{}`` equals the gold's (a MATH solution or a bare
    answer) as mathematics."""
    want = boxed(gold) if "\\boxed" in gold or "\\fbox" in gold else gold
    got = boxed(answer)
    if got is None:
        found = re.findall(r"answer\s*(?:is|:)\s*\$?([^$\n]+)", answer, flags=re.IGNORECASE)
        got = found[-1].strip() if found else None
    if want is None or got is None:
        return 0.0
    if _strip_math(got) == _strip_math(want):
        return 1.0
    try:
        from math_verify import parse, verify
    except ImportError:
        a, b = parse_number(_strip_math(got)), parse_number(_strip_math(want))
        return float(a is not None and a == b and _strip_math(want).lstrip("-").replace(
            ".", "", 1).isdigit())
    # math-verify's timeouts use signals, which work in the main thread only (elsewhere
    # it warns on every call that it has none).
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    main = threading.current_thread() is threading.main_thread()
    timeout = 5 if main else None
    with _math_lock:
        try:
            parsed_gold = parse(f"${want}$", parsing_timeout=timeout)
            parsed = parse(f"${got}$", parsing_timeout=timeout)
            return float(bool(verify(parsed_gold, parsed, timeout_seconds=timeout)))
        except Exception as exc:  # a pathological expression is a wrong answer, not a crash
            logger.debug("math-verify failed on %r vs %r: %s", got, want, exc)
            return 0.0


# -- CommonGen ----------------------------------------------------------------------------


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ing", "ies", "es", "ed", "s", "e", "y"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def concept_coverage(answer: str, concepts: Sequence[str]) -> float:
    """The share of ``concepts`` the answer uses (compared after a light stemming, so
    ``dogs``/``dog`` and ``removed``/``remove`` match)."""
    if not concepts:
        return 0.0
    words = {_stem(w) for w in re.findall(r"[A-Za-z]+", answer)}
    hit = sum(1 for c in concepts if all(_stem(w) in words for w in c.split()))
    return hit / len(concepts)


# -- code --------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(answer: str) -> str:
    """The code of an answer: its fenced blocks (those that define something first), else
    the whole text."""
    blocks = [b for b in _FENCE.findall(answer) if b.strip()]
    if not blocks:
        return answer
    defining = [b for b in blocks if re.search(r"^\s*(def|class|import|from)\s", b, re.M)]
    return "\n\n".join(defining or blocks)


def code_pass(program: str, sandbox: Sandbox) -> tuple[float, SandboxResult]:
    """Run ``program`` (the model's code followed by the tests) in ``sandbox``: 1.0 if it
    exits cleanly within the limits."""
    result = sandbox.run(program)
    return float(result.ok), result
