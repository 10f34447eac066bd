"""Progress of a long command: a bar on a terminal, a few plain lines elsewhere."""

import shutil
import time


class Progress:
    """
    Counts of one phase after another, written to C{out}.

    On a terminal, a bar redrawn in place at most ten times a second.
    Elsewhere (a log, a pipe, CI), a line at every tenth of the way, so the
    output stays short and readable whatever the count.
    """

    def __init__(self, out, terminal: bool | None = None, clock=time.monotonic):
        self._out = out
        self._terminal = out.isatty() if terminal is None else terminal
        self._clock = clock
        self._label = ""
        self._total = 0
        self._done = 0
        self._shown_at = 0.0
        self._tenths = -1

    def start(self, label: str, total: int) -> None:
        """Begin a phase of C{total} steps."""
        self._label = label
        self._total = total
        self._done = 0
        self._shown_at = 0.0
        self._tenths = -1
        self._show()

    def advance(self, count: int = 1) -> None:
        """Count C{count} more steps done."""
        self._done += count
        if self._terminal:
            if self._clock() - self._shown_at >= 0.1:
                self._show()
        elif self._tenth() > self._tenths:
            self._show()

    def finish(self) -> None:
        """End the phase, showing its final count."""
        self._done = self._total
        self._show()
        if self._terminal:
            self._out.write("\n")
            self._out.flush()

    def _tenth(self) -> int:
        return 10 if not self._total else self._done * 10 // self._total

    def _show(self) -> None:
        if not self._terminal and self._tenth() == self._tenths:
            return
        self._tenths = self._tenth()
        self._shown_at = self._clock()
        percent = 100 if not self._total else self._done * 100 // self._total
        counts = f"{self._done}/{self._total} keys {percent:3d}%"
        if self._terminal:
            width = shutil.get_terminal_size().columns
            room = max(10, width - len(self._label) - len(counts) - 6)
            filled = room if not self._total else room * self._done // self._total
            bar = "#" * filled + "-" * (room - filled)
            self._out.write(f"\r{self._label} [{bar}] {counts}")
        else:
            self._out.write(f"{self._label}: {counts}\n")
        self._out.flush()
