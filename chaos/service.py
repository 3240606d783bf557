"""The service under test as a subprocess: `python -m system serve`, started and stopped.

Each process gets its own session (process group), so a Ctrl-C in the terminal reaches only
the harness, which then stops the service in order: SIGTERM to the group (uvicorn drains
background tasks), SIGKILL if it is still there after `stop_timeout`.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


class HarnessError(RuntimeError):
    """The harness itself could not do its job (exit code 2), with a one-line reason."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise `HarnessError` when `port` cannot be bound (already in use)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise HarnessError(f"port {port} on {host} is not available: {exc.strerror}") from None


_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the process group `process` leads (started with `start_new_session`)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop_group(
    process: subprocess.Popen[bytes],
    grace: float,
    *,
    first: signal.Signals = signal.SIGTERM,
    group_first: bool = True,
) -> None:
    """Stop a process that leads its own group: `first`, then SIGKILL the group after `grace` s.

    `first` goes to the whole group, or with `group_first=False` to the process alone, for
    a leader that stops its own children in order (Locust's SIGINT). Returns once it is gone.
    """
    if process.poll() is not None:
        return
    if group_first:
        signal_group(process, first)
    else:
        process.send_signal(first)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        signal_group(process, signal.SIGKILL)
        process.wait()


def _setting_names() -> list[str]:
    # The one place the harness reads the service's code instead of driving it from outside:
    # a misspelt or invalid --service-env must stop the run before anything starts, and only
    # the service's own settings class knows what it accepts.
    from system.config import Settings

    return sorted(name.upper() for name in Settings.model_fields)


def env_pair(text: str) -> tuple[str, str]:
    """`KEY=VALUE` naming one of the service's settings: the `--service-env` argument type of
    the chaos and load commands (`ArgumentTypeError`, so argparse shows the reason)."""
    key, sep, value = text.partition("=")
    if not sep or not _ENV_KEY.match(key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with an upper-case KEY: {text!r}")
    names = _setting_names()
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise argparse.ArgumentTypeError(f"{key} is not a setting of the service{hint}")
    return key, value


def check_service_env(env: dict[str, str]) -> None:
    """Raise `HarnessError` unless the service would start with `env` (its settings' own rules).

    Only the given values are judged (model validation reads no environment or .env file):
    what the harness sets itself (`chaos.promises.Harness`) plus the user's overrides.
    """
    from pydantic import ValidationError

    from system.config import Settings

    try:
        Settings.model_validate({key.lower(): value for key, value in env.items()})
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise HarnessError(f"--service-env: {reasons}") from None


def source_env(env: dict[str, str], source: Path | None) -> dict[str, str]:
    """`env` for a service run from `source` (a copy holding `system/`), so `import system`
    finds the copy first (before the editable install); `env` itself if `source` is None."""
    if source is None:
        return env
    return {**env, "PYTHONPATH": str(source)}


def check_source(source: Path, env: dict[str, str]) -> None:
    """`HarnessError` unless a process started like the service (same interpreter, `env`
    and working folder) imports `system` from `source`: a mutant run must run the mutant."""
    result = subprocess.run(
        [sys.executable, "-c", "import system; print(system.__file__)"],
        env=env,
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    found = Path(result.stdout.strip() or "?").resolve()
    if result.returncode != 0 or not found.is_relative_to(source.resolve() / "system"):
        raise HarnessError(
            f"the service would not run from {source}: it imports system from {found} "
            f"({result.stderr.strip()[-200:] or 'no error'})"
        )


class ServiceProcess:
    """One `python -m system serve` process (with `workers` uvicorn workers)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        *,
        log_path: Path,
        port: int | None = None,
        workers: int = 1,
        stop_timeout: float = 15.0,
        source: Path | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.env = source_env(env, source)
        self.log_path = log_path
        self.port = port if port is not None else free_port()
        self.workers = workers
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None
        self._spawned = 0.0
        self._log_offset = 0

    @property
    def url(self) -> str:
        """Where the service answers."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id (also its process group's), while started."""
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        """The command line this process runs."""
        return [
            sys.executable, "-m", "system", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
        ]  # fmt: skip

    def start(self) -> None:
        """Spawn the process (does not wait; see `wait_ready`). Again after it exited: a
        restart on the same port, database and spool."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.source is not None and not self._spawned:  # once, before the first start
            check_source(self.source, self.env)
        command = self.command()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command,
                env=self.env,
                cwd=self.source or REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._spawned = time.monotonic()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until `/health/ready` answers 200; `HarnessError` if it never does."""
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise HarnessError(
                        f"service {self.name!r} exited during start-up: {self.last_log_line()}"
                        f" (log: {self.log_path})"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health/ready").status_code == 200:
                        self.started_in = time.monotonic() - self._spawned
                        return
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"service {self.name!r} not ready within {timeout:g} s: "
                        f"{self.last_log_line()} (log: {self.log_path})"
                    )
                time.sleep(0.05)

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process is not None and self.process.poll() is None

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the process group, as a deploy tool or the kernel would."""
        if self.process is not None:
            signal_group(self.process, sig)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process ended within `timeout` s; None if it still runs."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after `stop_timeout`; idempotent."""
        process = self.process
        if process is None:
            return
        stop_group(process, self.stop_timeout)
        # uvicorn's worker processes share the group: make sure none outlives the parent.
        signal_group(process, signal.SIGKILL)
        self.process = None

    def rss_bytes(self) -> int:
        """Resident memory of the service process and its workers (Linux /proc)."""
        if self.process is None:
            return 0
        return sum(_rss(pid) for pid in _tree(self.process.pid))

    def last_log_line(self) -> str:
        """The last non-empty line of the service's log (for one-line error messages)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "no output"


class WorkerProcess(ServiceProcess):
    """One `python -m system worker` process: job workers, no API (so no port to poll).

    Ready once it logs that it runs its job slots (it logs at INFO for that: the harness sets
    `LOG_LEVEL=INFO` for it).
    """

    READY_LINE = "job slots"

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        *,
        log_path: Path,
        concurrency: int,
        source: Path | None = None,
    ) -> None:
        super().__init__(
            name, {**env, "LOG_LEVEL": "INFO"}, log_path=log_path, port=0, source=source
        )
        self.concurrency = concurrency

    @property
    def url(self) -> str:
        """A worker serves no HTTP."""
        return ""

    def command(self) -> list[str]:
        """`python -m system worker --concurrency N`."""
        return [sys.executable, "-m", "system", "worker", "--concurrency", str(self.concurrency)]

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the worker says it runs its slots; `HarnessError` if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise HarnessError(
                    f"worker {self.name!r} exited during start-up: {self.last_log_line()}"
                )
            with contextlib.suppress(OSError):
                with self.log_path.open("rb") as log:
                    log.seek(self._log_offset)
                    if self.READY_LINE.encode() in log.read():
                        self.started_in = time.monotonic() - self._spawned
                        return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"worker {self.name!r} not ready within {timeout:g} s: {self.last_log_line()}"
                )
            time.sleep(0.05)


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for parent in list(pids):
        children = Path(f"/proc/{parent}/task/{parent}/children")
        with contextlib.suppress(OSError):
            pids.extend(int(child) for child in children.read_text().split())
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
