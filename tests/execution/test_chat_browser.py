"""The browser chat in a real browser: Chromium (Debian's package, driven by Playwright) on the
app served on loopback, answering from RouterBench's recorded responses.

Screenshots and the measured time to first token are written to ``test-artifacts/chat/`` (or
``$LLMROUTER_TEST_ARTIFACTS/chat``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chat_helpers import recorded, wordy

from llmrouter_core.data import RoutingData
from llmrouter_core.execution import Conversation, Executor
from llmrouter_core.pool import Pool
from llmrouter_core.providers.replay import replay_pool, set_replay_data

pytest.importorskip("gradio")
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.allow_hosts(["127.0.0.1"]),  # loopback only: the chat needs no network
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]
ARTIFACTS = Path(os.environ.get("LLMROUTER_TEST_ARTIFACTS", "test-artifacts")) / "chat"
TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _letters(text: str) -> str:
    """Text without markdown fences and anything but letters and digits (rendered markdown
    keeps every word of the answer; code fences, emphasis marks and spacing may change)."""
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("```"))
    return re.sub(r"[^A-Za-z0-9]+", "", text)


@pytest.fixture()
def chat_url(bench: RoutingData, chat_router: Any, chat_bandit: Any) -> Iterator[str]:
    from llmrouter_core.ui import launch_ui

    set_replay_data(bench)
    executors = {
        name: Executor(
            r, pool=replay_pool(r.pool_), keys="", routing_text=Conversation.routing_text
        )
        for name, r in (("knn", chat_router), ("bandit", chat_bandit))
    }
    # Fault injection: the same router, with the endpoint of one model broken.
    broken = _faulty_model(bench, chat_router)
    pool = replay_pool(chat_router.pool_)
    executors["knn, one model broken"] = Executor(
        chat_router,
        pool=Pool(
            replace(m, litellm_model="replay/no-such-model") if m.name == broken else m
            for m in pool
        ),
        keys="",
        routing_text=Conversation.routing_text,
    )
    port = _free_port()
    demo = launch_ui(executors, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()
        set_replay_data(None)


def _faulty_model(bench: RoutingData, router: Any) -> str:
    """The model routed for the question of the fault-injection step (its endpoint breaks)."""
    return str(router.route(wordy(bench.split("test"), router, skip=3)).model)


def _send(page: Any, text: str) -> float:
    """Type ``text``, send it, and return the seconds until the answer's first text shows."""
    bots = page.locator("#chat [data-testid=bot]")
    before = bots.count()
    page.locator("#message textarea").fill(text)
    started = time.perf_counter()
    page.locator("#send").click()
    page.wait_for_function(
        """n => { const b = document.querySelectorAll('#chat [data-testid=bot]');
                 return b.length > n && b[b.length - 1].innerText.trim().length > 0; }""",
        arg=before,
        timeout=TIMEOUT_MS,
        polling="raf",
    )
    return time.perf_counter() - started


def _settle(page: Any) -> None:
    """Wait as a person does before typing: the page loaded, its start-up event answered (the
    side panel filled) and the browser idle (nothing left to render)."""
    page.locator("#panel [data-testid=turn-panel]").wait_for()
    page.evaluate("() => new Promise(done => requestIdleCallback(done, {timeout: 5000}))")


def _wait_turn(page: Any, n: int) -> None:
    page.wait_for_function(
        "n => (document.querySelector('#panel h3')?.innerText || '').startsWith('Turn ' + n)",
        arg=n,
        timeout=TIMEOUT_MS,
    )


def _panel(page: Any, testid: str) -> str:
    return str(page.locator(f"#panel [data-testid={testid}]").first.text_content()).strip()


def test_the_chat_in_a_browser(
    chat_url: str, bench: RoutingData, chat_router: Any, chat_bandit: Any
) -> None:
    test = bench.split("test")
    q1, q2, q3 = (wordy(test, chat_router, skip=i) for i in range(3))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(chat_url)
            page.locator("#message textarea").wait_for()
            _settle(page)

            # 1. A routed answer: the recorded answer of the decision's model, at its cost.
            first_token_s = [_send(page, q1)]
            _wait_turn(page, 1)
            # The server's own time to first token (routing included), for comparison.
            server = re.search(r"first token ([0-9.]+) s", page.locator("#panel").inner_text())
            server_first_token_s = float(server.group(1)) if server else None
            model = chat_router.route(q1).model
            answer, cost = recorded(test, q1, model)
            shown = page.locator("#chat [data-testid=bot]").last.inner_text()
            assert _letters(answer) in _letters(shown)
            assert model not in shown  # the model is in the panel, not in the message
            assert _panel(page, "chosen-model") == model
            assert _panel(page, "turn-cost") == f"${cost:.6g}"
            assert _panel(page, "session-cost") == f"${cost:.6g}"
            bars = page.locator("#panel [data-testid=predictions] tr[data-model]")
            assert bars.count() == len(chat_router.models_)
            assert _panel(page, "routing-text") == q1
            page.screenshot(path=str(ARTIFACTS / "routed-answer.png"))

            # 2. Switching the context mode changes what the router reads.
            page.locator("#mode label", has_text="full_context").click()
            first_token_s.append(_send(page, q2))
            _wait_turn(page, 2)
            read = _panel(page, "routing-text")
            assert read.startswith(q1) and read.endswith(q2) and answer in read
            model2 = _panel(page, "chosen-model")
            assert (
                model2
                == chat_router.route(
                    Conversation.routing_text(
                        [
                            {"role": "user", "content": q1},
                            {"role": "assistant", "content": answer},
                            {"role": "user", "content": q2},
                        ]
                    )
                ).model
            )
            page.locator("#mode label", has_text="current_only").click()

            # 3. A thumbs down reaches the router (the bandit learns online).
            page.locator("#router input").click()
            page.get_by_role("option", name="bandit", exact=True).click()
            first_token_s.append(_send(page, q3))
            _wait_turn(page, 3)
            rated = _panel(page, "chosen-model")
            assert rated == chat_bandit.route(q3).model
            before = chat_bandit.route(q3).quality[rated]
            page.locator("#chat button[aria-label=Dislike]").last.click()
            page.locator("#notice", has_text="Feedback sent to bandit").wait_for()
            assert chat_bandit.route(q3).quality[rated] < before

            # 4. A message no model can answer: a notice, and the chat goes on.
            page.locator("#message textarea").fill("A question nobody recorded an answer to")
            page.locator("#send").click()
            notice = page.locator("#notice [data-testid=notice]")
            notice.wait_for()
            assert notice.inner_text().startswith("Every model failed")
            page.screenshot(path=str(ARTIFACTS / "failure-notice.png"), full_page=True)
            first_token_s.append(_send(page, q1))
            _wait_turn(page, 5)
            assert page.locator("#notice [data-testid=notice]").count() == 0

            # 5. A failing model: the next one of the ranking answers, and a notice says so.
            page.locator("#router input").click()
            page.get_by_role("option", name="knn, one model broken").click()
            q4 = wordy(test, chat_router, skip=3)
            broken = _faulty_model(bench, chat_router)
            _send(page, q4)
            _wait_turn(page, 6)
            notice = page.locator("#notice [data-testid=notice]")
            assert notice.inner_text().startswith(f"{broken} failed;")
            fallback = _panel(page, "chosen-model")
            assert fallback != broken
            shown = page.locator("#chat [data-testid=bot]").last.inner_text()
            assert _letters(recorded(test, q4, fallback)[0]) in _letters(shown)
            page.screenshot(path=str(ARTIFACTS / "fallback-notice.png"), full_page=True)

            # 6. An agentic flow shows its steps as they happen.
            page.locator("#router input").click()
            page.get_by_role("option", name="knn", exact=True).click()
            page.locator("#flow label", has_text="Agentic").click()
            qa, qb = test.queries[11], test.queries[12]
            _send(page, f"### Part 1\n{qa}\n### Part 2\n{qb}")
            _wait_turn(page, 7)
            page.locator("#steps-panel button, #steps-panel .label-wrap").first.click()
            steps = page.locator("#steps [data-testid=step]")
            steps.first.wait_for()
            assert steps.count() >= 3
            page.locator("#steps-panel").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "agentic-steps.png"))

            # 7. Measured only: a message sent the moment a new page shows its text box (the
            # browser still rendering and the page's start-up event in flight).
            fresh = browser.new_page(viewport={"width": 1400, "height": 1000})
            fresh.goto(chat_url)
            fresh.locator("#message textarea").wait_for()
            at_load_s = _send(fresh, q2)
        finally:
            browser.close()
    # Measured, not asserted: seconds from the click on Send to the first text of the answer
    # on screen, per routed turn (the first one includes the process's first model call), and
    # for a message sent while a new page is still starting up.
    (ARTIFACTS / "first-token.json").write_text(
        json.dumps(
            {
                "first_token_s": first_token_s,
                "server_first_token_s": server_first_token_s,
                "first_token_at_page_load_s": at_load_s,
            }
        )
    )
    print("time to first token in the browser (s):", " ".join(f"{t:.3f}" for t in first_token_s))
    print("the first turn's time to first token in the server (s):", server_first_token_s)
    print("sent at page load, time to first token (s):", f"{at_load_s:.3f}")


def test_llmrouter_chat_ui_serves_every_router_of_a_folder(
    tmp_path: Path, data_dir: Path, chat_router: Any, chat_bandit: Any
) -> None:
    import subprocess
    import sys
    import urllib.request

    routers = tmp_path / "routers"
    chat_router.save(routers / "knn")
    chat_bandit.save(routers / "bandit")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmrouter_core.cli.main",
            "chat",
            "--ui",
            "-r",
            str(routers),
            "--replay",
            str(data_dir / "routerbench" / "mbpp_test.csv"),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        config = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as r:
                    config = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert config is not None, proc.stderr.read() if proc.poll() is not None else "timeout"
        menus = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "router"]
        assert [choice[1] for choice in menus[0]["choices"]] == ["bandit", "knn"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
