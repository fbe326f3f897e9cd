"""``wssscam predict`` in a child process, as the Slicer panel runs it (like the Slicer AI extensions):
the GUI never computes, a crash or an out-of-memory error ends only the child, Cancel kills it.

:class:`BackgroundPredict` starts ``<python> -m WSSSCamLib predict ... --progress json`` with the
folder holding WSSSCamLib on the child's ``PYTHONPATH``, reads its JSON-lines events on a thread,
and hands them out by :meth:`~BackgroundPredict.poll`, which never blocks: a GUI timer calls it a
few times a second. No Qt here; the Slicer module's Logic only drives this class.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"


def library_root() -> Path:
    """The folder that holds the WSSSCamLib package (added to the child's PYTHONPATH)."""
    return Path(__file__).resolve().parents[2]


class BackgroundPredict:
    """One ``wssscam predict`` run in a child process.

    ``arguments``: the predict arguments (inputs or ``--manifest``, ``--checkpoint``, ``--out``, ...;
    ``--progress json`` is added). ``python``: the interpreter (inside Slicer: ``PythonSlicer``;
    default ``sys.executable``). ``state`` is ``running``, then ``succeeded``, ``failed`` or
    ``cancelled``; ``fraction`` is the last reported progress (0..1); ``error`` the failure's one line.
    """

    def __init__(self, arguments: Sequence[str], python: str | None = None) -> None:
        self.command = [
            python or sys.executable,
            "-m",
            "WSSSCamLib",
            "predict",
            *map(str, arguments),
            "--progress",
            "json",
        ]
        self.state = RUNNING
        self.fraction = 0.0
        self.error = ""
        self.events: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=50)
        self._process: subprocess.Popen | None = None
        self._stderr_reader: threading.Thread | None = None

    def start(self) -> BackgroundPredict:
        """Start the child (in its own process group, so Cancel ends whatever it started)."""
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(library_root()), *filter(None, [environment.get("PYTHONPATH")])]
        )
        environment["PYTHONUNBUFFERED"] = "1"
        environment["PYTHONIOENCODING"] = "utf-8"
        options = (
            {"start_new_session": True}
            if os.name == "posix"
            else {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        )
        self._process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=environment,
            **options,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        return self

    def _read_stdout(self) -> None:
        for line in self._process.stdout:
            line = line.strip()
            if line:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    event = None
                if isinstance(event, dict):
                    self._queue.put(event)
                else:  # not one of predict's events (a library printing to stdout)
                    self._stderr.append(line)
        self._queue.put(None)  # end of output

    def _read_stderr(self) -> None:
        for line in self._process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())

    def poll(self) -> list[dict]:
        """The events that arrived since the last call (never blocks); updates ``state``, ``fraction``, ``error``."""
        new = []
        ended = False
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is None:
                ended = True
                break
            new.append(event)
            self.fraction = float(event.get("fraction", self.fraction))
            if event.get("event") == "error":
                self.error = str(event.get("message", ""))
        self.events += new
        if ended and self.state == RUNNING:
            code = self._process.wait()
            self._stderr_reader.join(timeout=1.0)  # its last line may be the only word on a crash
            self.state = SUCCEEDED if code == 0 else FAILED
            if code != 0 and not self.error:
                self.error = self._stderr[-1] if self._stderr else f"the prediction process ended with status {code}"
        return new

    def cancel(self, grace: float = 0.5) -> float:
        """Stop the child (terminate, then kill after ``grace`` seconds); returns the seconds until it exited."""
        started = time.perf_counter()
        if self._process is not None and self._process.poll() is None:
            self._signal(signal.SIGTERM if os.name == "posix" else None)
            try:
                self._process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL if os.name == "posix" else None)
                self._process.wait()
        if self.state == RUNNING:
            self.state = CANCELLED
        return time.perf_counter() - started

    def _signal(self, number) -> None:
        """POSIX: the signal to the child's process group. Windows: ``taskkill /T /F`` ends the child's
        whole tree (``PythonSlicer.exe`` is a launcher whose Python runs as a child of its own)."""
        try:
            if os.name == "posix":
                os.killpg(self._process.pid, number)
            else:
                subprocess.run(
                    ["taskkill", "/F", "/T", "/PID", str(self._process.pid)], capture_output=True, check=False
                )
                self._process.kill()
        except (ProcessLookupError, OSError):
            pass

    def wait(self, timeout: float | None = None) -> str:
        """Block until the child ends (scripts and tests); returns ``state``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state == RUNNING:
            self.poll()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the prediction process is still running after {timeout} s")
            time.sleep(0.05)
        return self.state
