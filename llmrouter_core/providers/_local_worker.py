"""The process that runs one local GGUF model (started by :mod:`llmrouter_core.providers.local`).

llama.cpp is native code: a crash there (an illegal instruction from a build for another CPU,
a corrupted file) kills the whole process. So each local model lives in its own worker
process, and the library's process only exchanges JSON lines with it:

* the parent writes one request per line on the worker's stdin:
  ``{"op": "complete" | "stream" | "tokens", "messages": [...], "params": {...}}``;
* the worker answers on its protocol channel (its original stdout; llama.cpp's own output is
  sent to stderr) with ``{"ok": ...}``, one ``{"piece": text}`` per streamed piece followed
  by ``{"ok": ...}``, or ``{"error": kind, "message": text}``.

The first line the worker writes is ``{"ready": system_info}`` once the model has loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

#: Stop sequences of the few-shot prompt of base models.
FEW_SHOT_STOP = ["\nQ:", "\n\n"]
_FEW_SHOT = (
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
    ("What is 7 times 6?", "42."),
)


def text_of(content: Any) -> str:
    """The text of a message's content (a string, or a list of parts with ``text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else str(content)


def few_shot_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """A completion prompt for a base model: instructions, worked examples, the conversation
    as question/answer pairs, and an open answer."""
    system = "\n".join(text_of(m.get("content")) for m in messages if m.get("role") == "system")
    lines = [system.strip() or "Answer each question briefly and correctly.", ""]
    for q, a in _FEW_SHOT:
        lines += [f"Q: {q}", f"A: {a}", ""]
    for m in messages:
        role, text = m.get("role"), " ".join(text_of(m.get("content")).split())
        if role == "user":
            lines.append(f"Q: {text}")
        elif role == "assistant":
            lines += [f"A: {text}", ""]
    lines.append("A:")
    return "\n".join(lines)


def _run(
    llama: Any, chat: bool, messages: list[dict[str, Any]], kw: dict[str, Any], stream: bool
) -> Any:
    if chat:
        return llama.create_chat_completion(messages=messages, stream=stream, **kw)
    kw = dict(kw, stop=list(kw.get("stop", [])) + FEW_SHOT_STOP)
    return llama.create_completion(prompt=few_shot_prompt(messages), stream=stream, **kw)


def _pieces(
    llama: Any, chat: bool, messages: list[dict[str, Any]], kw: dict[str, Any]
) -> Iterator[str]:
    started = False
    for chunk in _run(llama, chat, messages, kw, stream=True):
        choice = chunk["choices"][0]
        piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
        if not piece:
            continue
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        if piece:
            yield piece


def _prompt_tokens(llama: Any, chat: bool, messages: Sequence[Mapping[str, Any]]) -> int:
    # Exact for base models; for chat models, the message texts plus the template's few
    # tokens per message.
    if chat:
        text = "\n".join(text_of(m.get("content")) for m in messages)
        extra = 4 * len(messages)
    else:
        text, extra = few_shot_prompt(messages), 0
    return len(llama.tokenize(text.encode("utf-8"), add_bos=True)) + extra


def _handle(llama: Any, chat: bool, request: Mapping[str, Any], send: Any) -> None:
    op = request.get("op")
    messages = list(request.get("messages") or [])
    kw = dict(request.get("params") or {})
    if op == "complete":
        out = _run(llama, chat, messages, kw, stream=False)
        choice = out["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        usage = out.get("usage") or {}
        send(
            {
                "ok": {
                    "text": (text or "").strip(),
                    "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                    "completion_tokens": int(usage.get("completion_tokens", 0)),
                    "finish_reason": str(choice.get("finish_reason") or "stop"),
                }
            }
        )
    elif op == "stream":
        for piece in _pieces(llama, chat, messages, kw):
            send({"piece": piece})
        send({"ok": {"prompt_tokens": _prompt_tokens(llama, chat, messages)}})
    elif op == "tokens":
        send({"ok": {"prompt_tokens": _prompt_tokens(llama, chat, messages)}})
    else:
        send({"error": "request", "message": f"unknown op {op!r}"})


def serve(model_path: str, chat: bool, n_ctx: int, threads: int, channel: IO[str]) -> None:
    """Load the model, then answer requests from stdin until it closes."""

    def send(obj: Mapping[str, Any]) -> None:
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    from llama_cpp import Llama, llama_print_system_info

    try:
        llama = Llama(
            model_path=model_path,
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            seed=0,
            verbose=False,
        )
    except Exception as exc:  # llama.cpp reports a bad file as ValueError
        send({"error": "load", "message": f"{type(exc).__name__}: {exc}"})
        return
    info = llama_print_system_info()
    send({"ready": info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as exc:
            send({"error": "request", "message": f"not a JSON request: {exc}"})
            continue
        try:
            _handle(llama, chat, request, send)
        except ValueError as exc:  # llama.cpp: prompt + max_tokens exceed the context
            send({"error": "context", "message": str(exc)})
        except Exception as exc:
            send({"error": "internal", "message": f"{type(exc).__name__}: {exc}"})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_path")
    parser.add_argument("--chat", action="store_true")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    # The protocol keeps the original stdout; anything native code prints goes to stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    serve(args.model_path, args.chat, args.n_ctx, max(1, args.threads), channel)


if __name__ == "__main__":
    main()
