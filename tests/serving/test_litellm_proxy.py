"""Our router inside LiteLLM's proxy: a real ``litellm --config`` process on loopback serves
``llmrouter/knn`` through the ``llmrouter`` custom provider; the ``openai`` client calls it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
from serve_helpers import REPO, free_port, output, recorded, stop, wait_http

from llmrouter_core.data import RoutingData

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

MASTER = "sk-proxy-master-0123456789abcdef"
CONFIG = """\
model_list:
  - model_name: llmrouter/knn
    litellm_params:
      model: llmrouter/knn
  - model_name: llmrouter/knn-cheapest
    litellm_params:
      model: llmrouter/knn:cost_weight=inf
litellm_settings:
  custom_provider_map:
    - provider: llmrouter
      custom_handler: llmrouter_core.serving.litellm_proxy.handler
"""


def test_litellm_proxy_serves_our_router(
    router_dir: Path, data_dir: Path, arc_test: RoutingData, knn_router: Any, tmp_path: Path
) -> None:
    exe = shutil.which("litellm", path=str(Path(os.sys.executable).parent))
    if exe is None:
        pytest.fail("LiteLLM's proxy is not installed (the 'litellm-proxy' extra)")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": MASTER,
        "LLMROUTER_ROUTERS": f"knn={router_dir}",
        "LLMROUTER_REPLAY_DATA": str(data_dir / "routerbench" / "arc_challenge_test.csv"),
    }
    log = tmp_path / "proxy.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=str(tmp_path),
        )
    proc.log_path = log  # type: ignore[attr-defined]
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout=150)
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=0, timeout=60
        )
        for i in (2, 3):
            query = arc_test.queries[i]
            msgs = [{"role": "user", "content": query}]
            raw = client.chat.completions.with_raw_response.create(
                model="llmrouter/knn", messages=msgs
            )
            resp = raw.parse()
            chosen = raw.headers["llm_provider-x-llmrouter-model"]
            assert chosen == knn_router.route(query).model
            text, cost = recorded(arc_test, query, chosen)
            assert resp.choices[0].message.content == text
            # LiteLLM's own spend tracking sees the routed call's cost.
            assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(cost)
            cheap = client.chat.completions.with_raw_response.create(
                model="llmrouter/knn-cheapest", messages=msgs
            )
            chosen = cheap.headers["llm_provider-x-llmrouter-model"]
            assert chosen == knn_router.route(query, cost_weight=float("inf")).model
            assert cheap.parse().choices[0].message.content == recorded(arc_test, query, chosen)[0]
            streamed = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(
                    model="llmrouter/knn", messages=msgs, stream=True
                )
                if c.choices
            )
            assert streamed == text
        # A wrong key is refused (without a key database LiteLLM answers 400, not 401).
        with pytest.raises(openai.APIStatusError) as info:
            openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-wrong", max_retries=0
            ).chat.completions.create(model="llmrouter/knn", messages=msgs)
        assert info.value.status_code in (400, 401)
    finally:
        code = stop(proc)
    assert code in (0, -15), output(proc)
