"""Model-written code runs only in the sandbox: hostile programs are stopped or harmless,
and the host (this process, its files, its network) is never affected."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from llmrouter_core.datagen.sandbox import Sandbox, available_isolation

ORDER = ["rlimits", "unshare", "bwrap"]
MODES = ORDER[: ORDER.index(available_isolation()) + 1]
ROOT = os.geteuid() == 0


@pytest.fixture(params=MODES)
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return Sandbox(timeout=3, cpu_seconds=3, memory_mb=512, isolation=request.param)


@pytest.fixture()
def canary(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A host directory the sandbox must not touch (outside its working directory)."""
    d = tmp_path_factory.mktemp("canary")
    os.chmod(d, 0o755)
    (d / "keep.txt").write_text("precious")
    return d


def _confines_files(sb: Sandbox) -> bool:
    return sb.mode == "bwrap" or ROOT


def test_isolation_is_reported() -> None:
    sb = Sandbox()
    assert sb.mode == available_isolation()
    assert {"rlimits", "tmpdir", "timeout"} <= set(sb.isolation)
    if shutil.which("bwrap"):
        # bubblewrap is installed by scripts/test.sh: it must actually work here.
        assert sb.mode == "bwrap"
        assert {"no-network", "pid-namespace", "read-only-fs"} <= set(sb.isolation)
    result = sb.run("print(6 * 7)")
    assert result.ok and result.stdout.strip() == "42"
    assert result.isolation == sb.isolation


def test_a_failing_test_fails(sandbox: Sandbox) -> None:
    result = sandbox.run("def f(x):\n    return x + 1\n\nassert f(1) == 3\n")
    assert not result.ok and result.returncode == 1
    assert "AssertionError" in result.stderr


def test_infinite_loop_is_killed(sandbox: Sandbox) -> None:
    result = sandbox.run("while True:\n    pass\n")
    assert not result.ok
    # The CPU limit (SIGKILL/SIGXCPU) or the wall-clock timeout, whichever comes first.
    assert result.timed_out or (result.returncode is not None and result.returncode < 0)


def test_sleeping_forever_hits_the_wall_clock(sandbox: Sandbox) -> None:
    result = sandbox.run("import time\ntime.sleep(3600)\n")
    assert result.timed_out and result.returncode is None


def test_ten_gigabytes_cannot_be_allocated(sandbox: Sandbox) -> None:
    result = sandbox.run("x = bytearray(10 * 1024 ** 3)\nprint('allocated')\n")
    assert not result.ok
    assert "MemoryError" in result.stderr and "allocated" not in result.stdout


def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = sandbox.run(bomb)
    assert not result.ok
    # Nothing is left running: the next run (same limits) and the host can still start
    # processes.
    assert sandbox.run("import os\nprint(os.fork() >= 0)\n").ok
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0


def test_children_that_leave_the_process_group_are_killed(sandbox: Sandbox) -> None:
    code = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(300)\n"
        "        os._exit(0)\n"
        "print('parent done')\n"
    )
    before = _sleepers()
    assert sandbox.run(code).ok
    assert _sleepers() == before


def _sleepers() -> set[int]:
    """Host processes running a sandboxed main.py."""
    out = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\x00")
            except OSError:
                continue
            if argv[-3:] == [b"-B", b"main.py", b""]:
                out.add(int(entry.name))
    return out


def test_writes_outside_its_directory_do_not_land(sandbox: Sandbox, canary) -> None:  # type: ignore[no-untyped-def]
    if not _confines_files(sandbox):
        pytest.skip("without bubblewrap, files are protected by the sandbox user (root only)")
    code = (
        f"open({str(canary / 'pwned.txt')!r}, 'w').write('x')\n"
    )
    result = sandbox.run(code)
    assert not result.ok
    assert not (canary / "pwned.txt").exists()
    # Its own directory is writable.
    assert sandbox.run("open('out.txt', 'w').write('ok')\nprint(open('out.txt').read())").ok


def test_os_deletions_are_harmless(sandbox: Sandbox, canary) -> None:  # type: ignore[no-untyped-def]
    if not _confines_files(sandbox):
        pytest.skip("without bubblewrap, files are protected by the sandbox user (root only)")
    code = (
        "import os, shutil\n"
        f"for f in [{str(canary / 'keep.txt')!r}]:\n"
        "    try:\n        os.remove(f)\n    except OSError as e:\n        print('remove', e)\n"
        f"shutil.rmtree({str(canary)!r}, ignore_errors=True)\n"
        f"os.system('rm -rf {canary}')\n"
        "for name in os.listdir('.'):\n    os.remove(name)\n"
    )
    sandbox.run(code)
    assert (canary / "keep.txt").read_text() == "precious"


@pytest.mark.enable_socket
def test_no_network_even_to_the_hosts_loopback(sandbox: Sandbox) -> None:
    if sandbox.mode == "rlimits":
        pytest.skip("rlimits-only sandboxes have no network namespace (reported as such)")
    assert "no-network" in sandbox.isolation
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        result = sandbox.run(
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "print('connected')\n"
        )
        assert not result.ok and "connected" not in result.stdout
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_no_secrets_reach_the_sandbox(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-for-the-sandbox")
    result = sandbox.run("import os\nprint(sorted(os.environ))\n")
    assert result.ok and "OPENAI_API_KEY" not in result.stdout


def test_huge_output_is_bounded(sandbox: Sandbox) -> None:
    result = sandbox.run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
    assert not result.ok
    assert len(result.stdout) <= 8192


def test_an_unavailable_isolation_is_refused() -> None:
    if available_isolation() == "bwrap":
        pytest.skip("bubblewrap is available")
    with pytest.raises(RuntimeError, match="not available"):
        Sandbox(isolation="bwrap")
