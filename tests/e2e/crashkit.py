"""Subprocesses for the crash-safety test: sandboxes and sync workers, each in a process group of its own.

Run as a module, this is the `leadsync` command with the worker's clock pinned:

    python -m tests.e2e.crashkit 2026-11-01T13:00:00+00:00 sync --config C --full ...

The pipeline and the store read the time from `SystemClock.now()` (sync.ports) and `leadsync sync` has no
`--now`. Ages count whole days and reasons show half-life points, so on the test's 20,000 contacts one minute of
wall clock changes some contact's written values in about one minute-long window out of four. A crashed backfill
scores its pages at different moments; pinning the clock in both runs compares what the crashes did, not how the
clock moved.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import requests

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.002  # how often an armed kill rule with `poll` asks


class ProcessGroup:
    """A subprocess started in a new session: its whole group is signalled, and `stop` never leaves it behind."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, stderr: Path) -> None:
        self.stderr_path = stderr
        self._stderr: TextIO = stderr.open("w")
        self.proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL it after `grace_s`, reap it; harmless when it has already ended."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace_s)
        self.signal(signal.SIGKILL)  # anything the leader left behind in its group
        self.proc.wait(grace_s)
        self._reader.join(grace_s)
        self._stderr.close()

    def stderr_tail(self, chars: int = 2000) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-chars:]


class SandboxProcess:
    """`leadsync sandbox` in a subprocess: a synthetic portal on a free port, no rate limits."""

    def __init__(self, contacts: int, seed: int, token: str, workdir: Path, name: str) -> None:
        portal = ["--contacts", str(contacts), "--seed", str(seed)]
        serve = ["--port", "0", "--rate-limit", "off", "--token", token, "--json"]
        self.group = ProcessGroup(
            [sys.executable, "-m", "sync", "sandbox", *portal, *serve], stderr=workdir / f"{name}.stderr"
        )
        self.url = ""

    def wait_ready(self, timeout_s: float) -> str:
        try:
            line = self.group.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"the sandbox printed nothing in {timeout_s} s: {self.group.stderr_tail()}") from None
        if line is None:
            raise AssertionError(f"the sandbox ended before serving: {self.group.stderr_tail()}")
        self.url = json.loads(line)["url"]
        return self.url

    def get(self, path: str, timeout_s: float = 120.0) -> Any:
        answer = requests.get(f"{self.url}/__sandbox/{path}", timeout=timeout_s)
        answer.raise_for_status()
        return answer.json()

    def writes_applied(self) -> int:
        return int(self.get("stats")["writes_applied"])

    def stop(self) -> None:
        self.group.stop()


@dataclass
class WorkerRun:
    """One `leadsync sync` process: its JSON log events, how it ended, and when it was killed."""

    index: int
    events: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    killed: bool = False
    kill_reason: str = ""
    killed_after_s: float | None = None
    seconds: float = 0.0
    stderr: str = ""

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    @property
    def finished(self) -> dict[str, Any] | None:
        done = self.named("run_finished")
        return done[-1] if done else None


@dataclass
class KillRule:
    """When to SIGKILL a worker: once armed, wait `delay_s`, then kill (or, with `poll`, kill as soon as it is true).

    The rule is armed when the worker logs `run_started`, or, with `trigger`, when `trigger` accepts a log event.
    """

    reason: str
    delay_s: float = 0.0
    trigger: Callable[[dict[str, Any]], bool] | None = None
    poll: Callable[[], bool] | None = None


def run_worker(
    index: int,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    workdir: Path,
    kill: KillRule | None,
    timeout_s: float,
) -> WorkerRun:
    """Run one worker to its end, or SIGKILL it as `kill` says; every stdout line is kept (JSON lines parsed)."""
    run = WorkerRun(index)
    group = ProcessGroup(args, env=env, stderr=workdir / f"worker-{index:02d}.stderr")
    stdout = (workdir / f"worker-{index:02d}.stdout").open("w")  # the log lines, kept for a failure's post-mortem
    began = time.monotonic()
    kill_at: float | None = None  # armed: from then on, kill (at once, or when `kill.poll` says so)
    try:
        while True:
            now = time.monotonic()
            if now - began > timeout_s:
                raise AssertionError(f"worker run {index} still going after {timeout_s} s: {group.stderr_tail()}")
            if kill is not None and kill_at is not None and now >= kill_at and (kill.poll is None or kill.poll()):
                group.signal(signal.SIGKILL)
                run.killed, run.killed_after_s = True, time.monotonic() - began
                group.proc.wait(30)
                _drain(group, run, stdout)  # lines already in the pipe were logged before the kill
                break
            wait = 0.05 if kill_at is None else min(0.05, kill_at - now) if now < kill_at else POLL_S
            try:
                line = group.lines.get(timeout=wait)
            except queue.Empty:
                continue
            if line is None:
                run.exit_code = group.proc.wait(30)
                break
            stdout.write(line)
            event = _parse(line)
            run.events.append(event)
            if kill is None or kill_at is not None:
                continue
            started = kill.trigger is None and event.get("event") == "run_started"
            if started or (kill.trigger is not None and kill.trigger(event)):
                kill_at = time.monotonic() + kill.delay_s
                run.kill_reason = kill.reason
    finally:
        group.stop()
        stdout.close()
        run.seconds = time.monotonic() - began
        run.stderr = group.stderr_tail()
    return run


def _drain(group: ProcessGroup, run: WorkerRun, stdout: TextIO) -> None:
    while True:
        try:
            line = group.lines.get(timeout=5)
        except queue.Empty:
            return
        if line is None:
            return
        stdout.write(line)
        run.events.append(_parse(line))


def _parse(line: str) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError:
        return {"event": "non_json_line", "line": line.rstrip("\n")}
    return parsed if isinstance(parsed, dict) else {"event": "non_json_line", "line": line.rstrip("\n")}


def pinned_main(argv: Sequence[str]) -> int:
    """`leadsync ARGS...` with `sync.ports.SystemClock.now` answering the ISO time `argv[0]`."""
    from sync import ports
    from sync.cli import main

    moment = datetime.fromisoformat(argv[0])
    if moment.tzinfo is None:
        raise SystemExit(f"the pinned time needs a UTC offset: {argv[0]!r}")
    ports.SystemClock.now = lambda self: moment  # type: ignore[method-assign]
    return main(list(argv[1:]))


if __name__ == "__main__":
    raise SystemExit(pinned_main(sys.argv[1:]))
