"""Run untrusted Python (model-written code) in a separate, confined process.

The code never runs in the calling process. Each run gets:

* a fresh empty temporary directory as its working directory (deleted afterwards);
* resource limits (``setrlimit``): CPU seconds, address space, file size, process count;
* a wall-clock timeout, after which its whole process group is killed;
* when `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``) is installed: new
  user, network, PID, IPC and UTS namespaces (no network at all), a file system holding only
  the Python runtime (read-only), a private ``/tmp`` and the working directory; run as the
  unprivileged ``nobody`` user when the caller is root;
* else, when ``unshare`` can create one: a new network namespace (no network), rlimits and
  the temporary directory;
* else rlimits and the temporary directory only (a warning is logged once).

:attr:`SandboxResult.isolation` reports which protections the run had.

Example:
    >>> from llmrouter_core.datagen.sandbox import Sandbox
    >>> r = Sandbox(timeout=10).run("print(6 * 7)")
    >>> r.ok, r.stdout.strip()
    (True, '42')
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Isolation", "Sandbox", "SandboxResult", "available_isolation"]

logger = logging.getLogger(__name__)

Isolation = Literal["auto", "bwrap", "unshare", "rlimits"]
#: A root caller's sandbox runs each program as an unprivileged user id of its own, drawn
#: from this range (not in /etc/passwd): its process limit counts only that run, and every
#: process left with that id is killed when the run ends.
_UID_RANGE = (61000, 64999)
#: Bytes of stdout / stderr kept in a result.
_KEEP = 8192


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did.

    Attributes:
        ok: The program exited with status 0 within the limits.
        returncode: Exit status (negative: killed by that signal); ``None`` if it timed out.
        timed_out: The wall-clock timeout killed it.
        stdout: Its standard output (the first 8 KiB).
        stderr: Its standard error (the first 8 KiB).
        isolation: The protections it ran under, e.g. ``("bwrap", "no-network",
            "pid-namespace", "read-only-fs", "unprivileged-user", "rlimits", "tmpdir")``.
        duration_s: Wall-clock seconds.
    """

    ok: bool
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    isolation: tuple[str, ...]
    duration_s: float


def _as_nobody() -> bool:
    """A root caller's sandbox drops to the unprivileged ``nobody`` user."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run_uid() -> int:
    return random.SystemRandom().randint(*_UID_RANGE)


def _drop_privileges(uid: int = _UID_RANGE[0]) -> None:  # runs in the child, before exec
    if _as_nobody():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _world_reachable(path: str) -> bool:
    """Whether every directory above ``path`` lets others through (the sandbox user's view)."""
    parts = Path(path).parents
    return all(os.stat(p).st_mode & 0o001 for p in parts)


@functools.lru_cache(maxsize=1)
def _python() -> str:
    """An interpreter the sandbox user can run (no virtual environment: no packages)."""
    base = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    if not _as_nobody() or _world_reachable(base):
        return base
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        if os.path.isfile(real) and _world_reachable(real):
            return real
    raise RuntimeError(
        f"no Python interpreter the unprivileged sandbox user can run ({base} is not "
        "reachable); install python3 system-wide"
    )


def _unshare_prefix() -> list[str]:
    return [shutil.which("unshare") or "unshare", "--net", "--map-root-user", "--pid", "--fork",
            "--kill-child"]


def _bwrap_fs(python: str, workdir: str | None = None) -> list[str]:
    """bwrap arguments: the runtime read-only, private /tmp, /proc, /dev, no network."""
    args = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
    ]
    seen: list[str] = []
    for top in ("/usr", "/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
            seen.append(top)
    prefix = str(Path(python).parents[1])
    if not any(prefix == s or prefix.startswith(s + "/") for s in seen):
        args += ["--ro-bind", prefix, prefix]
    if workdir is not None:
        args += ["--bind", workdir, "/sandbox", "--chdir", "/sandbox"]
    return [*args, "--"]


def _works(argv: list[str]) -> bool:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=20,
            check=False,
            cwd="/",
            preexec_fn=_drop_privileges,
        )
    except (OSError, subprocess.SubprocessError, RuntimeError):
        return False
    return done.returncode == 0


@functools.lru_cache(maxsize=1)
def available_isolation() -> Literal["bwrap", "unshare", "rlimits"]:
    """The strongest isolation this machine offers (probed once per process)."""
    try:
        python = _python()
    except RuntimeError:
        return "rlimits"
    probe = [python, "-I", "-c", "pass"]
    if shutil.which("bwrap") and _works([*_bwrap_fs(python), *probe]):
        return "bwrap"
    if shutil.which("unshare") and _works([*_unshare_prefix(), "--", *probe]):
        return "unshare"
    return "rlimits"


class Sandbox:
    """Runs Python source in a confined subprocess.

    Args:
        timeout: Wall-clock seconds before the run is killed.
        cpu_seconds: CPU-time limit.
        memory_mb: Address-space limit (MiB).
        file_size_mb: Largest file it may write (MiB).
        max_processes: Processes the sandbox user may have (stops fork bombs).
        isolation: ``"auto"`` (the strongest available), or require one of ``"bwrap"``,
            ``"unshare"``, ``"rlimits"`` (a :class:`RuntimeError` if it is not available).
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        cpu_seconds: int = 10,
        memory_mb: int = 1024,
        file_size_mb: int = 16,
        max_processes: int = 64,
        isolation: Isolation = "auto",
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        self.timeout = float(timeout)
        self.cpu_seconds = int(cpu_seconds)
        self.memory_mb = int(memory_mb)
        self.file_size_mb = int(file_size_mb)
        self.max_processes = int(max_processes)
        have = available_isolation()
        order = ["rlimits", "unshare", "bwrap"]
        if isolation == "auto":
            self.mode = have
            if have == "rlimits":
                _warn_weak()
        elif order.index(isolation) <= order.index(have):
            self.mode = isolation
        else:
            raise RuntimeError(
                f"sandbox isolation {isolation!r} is not available here (have {have!r}); "
                "install bubblewrap (apt-get install bubblewrap)"
            )

    def __repr__(self) -> str:
        return f"Sandbox(mode={self.mode!r}, timeout={self.timeout}, memory_mb={self.memory_mb})"

    @property
    def isolation(self) -> tuple[str, ...]:
        """The protections every run of this sandbox has."""
        out: tuple[str, ...] = ()
        if self.mode == "bwrap":
            out = ("bwrap", "no-network", "pid-namespace", "read-only-fs")
        elif self.mode == "unshare":
            out = ("unshare", "no-network", "pid-namespace")
        if _as_nobody():
            out += ("unprivileged-user",)
        return (*out, "rlimits", "tmpdir", "timeout")

    def _limits(self, uid: int) -> None:  # runs in the child, before exec
        import resource

        mib = 1024 * 1024
        cpu = max(1, self.cpu_seconds)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_mb * mib, self.memory_mb * mib))
        size = self.file_size_mb * mib
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _drop_privileges(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (self.max_processes, self.max_processes))

    def _argv(self, workdir: str) -> list[str]:
        python = _python()
        py = [python, "-I", "-B", "main.py"]
        if self.mode == "bwrap":
            return [*_bwrap_fs(python, workdir), *py]
        if self.mode == "unshare":
            return [*_unshare_prefix(), "--", *py]
        return py

    def run(self, code: str, *, files: dict[str, str] | None = None) -> SandboxResult:
        """Run ``code`` as ``main.py`` in a fresh directory (``files``: other files to put
        there first). Never raises for what the code does; returns what happened."""
        with tempfile.TemporaryDirectory(prefix="llmrouter-sbx-") as root:
            os.chmod(root, 0o711)  # the sandbox user passes through, lists nothing
            work = Path(root) / "work"
            work.mkdir()
            (work / "main.py").write_text(code, encoding="utf-8")
            for name, text in (files or {}).items():
                if "/" in name or name in ("", ".", ".."):
                    raise ValueError(f"sandbox file names are plain names, got {name!r}")
                (work / name).write_text(text, encoding="utf-8")
            os.chmod(work, 0o777)
            out_path, err_path = Path(root) / "stdout", Path(root) / "stderr"
            start = time.monotonic()
            uid = _run_uid()
            with out_path.open("wb") as out, err_path.open("wb") as err:
                proc = subprocess.Popen(
                    self._argv(str(work)),
                    cwd=work,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=_child_env(),
                    start_new_session=True,
                    preexec_fn=functools.partial(self._limits, uid),
                )
                timed_out = False
                try:
                    proc.wait(timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
                finally:
                    _kill_all(proc, uid if _as_nobody() else None)
            duration = time.monotonic() - start
            stdout, stderr = _head(out_path), _head(err_path)
            shutil.rmtree(work, ignore_errors=True)
        code_ = None if timed_out else proc.returncode
        return SandboxResult(
            ok=code_ == 0,
            returncode=code_,
            timed_out=timed_out,
            stdout=stdout,
            stderr=stderr,
            isolation=self.isolation,
            duration_s=duration,
        )


def _child_env() -> dict[str, str]:
    """A minimal environment: no API keys or other secrets reach the sandbox."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}


def _pids_of(uid: int) -> list[int]:
    """Live (not zombie) processes whose real user id is ``uid``."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as fh:
                status = fh.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            out.append(int(entry.name))
    return out


def _kill_all(proc: subprocess.Popen[bytes], uid: int | None) -> None:
    """Kill the run's process group and, when it ran under its own user id, every process
    left with that id (children that left the group too); wait, boundedly, until they are
    gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if uid is None:
        return
    deadline = time.monotonic() + 10.0
    while pids := _pids_of(uid):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            logger.warning("sandbox processes %s outlived their kill", pids)
            break
        time.sleep(0.02)


def _head(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.read(_KEEP).decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=1)
def _warn_weak() -> None:
    logger.warning(
        "code runs in a subprocess with rlimits only: neither bubblewrap nor unshare can "
        "isolate it here (no network namespace); install bubblewrap"
    )
