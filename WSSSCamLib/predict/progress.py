"""Progress of a prediction run: JSON lines for programs (the Slicer panel's child process), a
progress bar for people, or nothing.

Every event is a dict with ``event`` (``start``, ``case``, ``batch``, ``case_done``, ``warning``,
``done``, ``error``) and ``fraction`` (0..1 of the whole run) where it is known. In JSON-lines mode
each event is one line on the stream, flushed at once, so a reader sees it when it happens.
"""

from __future__ import annotations

import json
import sys
from typing import IO


class Progress:
    """Silent progress: subclasses show the events."""

    def event(self, kind: str, **fields) -> None:
        """Report one event (see the module docstring)."""

    def close(self) -> None:
        """Release what the display holds."""


class JsonLinesProgress(Progress):
    """One JSON object per line on ``stream`` (default: standard output)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, kind: str, **fields) -> None:
        self.stream.write(json.dumps({"event": kind, **fields}, default=str) + "\n")
        self.stream.flush()


class BarProgress(Progress):
    """A tqdm bar over the whole run (on standard error) and one line per finished or skipped case."""

    def __init__(self) -> None:
        self.bar = None

    def event(self, kind: str, **fields) -> None:
        from tqdm.auto import tqdm

        if kind == "start":
            self.bar = tqdm(
                total=1000,
                desc="predict",
                unit="‰",
                leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}",
            )
        elif kind in ("batch", "case") and self.bar is not None:
            self.bar.set_postfix_str(f"{fields.get('case', '')} {fields.get('model', '')}".strip())
        elif kind == "case_done" and self.bar is not None:
            state = "already done" if fields.get("skipped") else f"{fields.get('seconds', 0.0):.1f} s"
            self.bar.write(f"{fields['case']}: {state} -> {fields['folder']}")
        elif kind == "warning":
            (self.bar.write if self.bar is not None else print)(f"warning: {fields['message']}")
        if self.bar is not None and "fraction" in fields:
            self.bar.n = round(1000 * fields["fraction"])
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_for(mode: str) -> Progress:
    """``json`` -> :class:`JsonLinesProgress`, ``bar`` -> :class:`BarProgress`, ``none`` -> silent."""
    modes = {"json": JsonLinesProgress, "bar": BarProgress, "none": Progress}
    if mode not in modes:
        raise ValueError(f"--progress: unknown mode {mode!r}; choose one of {', '.join(modes)}")
    return modes[mode]()
