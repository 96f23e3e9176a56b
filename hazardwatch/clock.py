"""The worker's clock, injectable so time-driven decisions can be tested to the second on the real worker.

Two things in the worker run on a clock rather than on the readings' event time: escalation deadlines, and
the offline check (a silent sensor sends nothing to time it by). Production reads the wall clock. With
HW_CLOCK_FILE set, the worker reads epoch milliseconds from that file instead: a test writes the time it
wants, restarts the worker mid-escalation, writes a later time, and the deadlines fall exactly where the
policy says, however slow the machine is; a scenario runner advances it with simulated time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def wall_clock() -> int:
    return int(time.time() * 1000)


def file_clock(path: Path) -> Callable[[], int]:
    def now() -> int:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"HW_CLOCK_FILE={path}: cannot read epoch milliseconds ({exc}); write an integer "
                               "into it or unset HW_CLOCK_FILE to use the wall clock") from exc

    return now


def clock_from_env() -> Callable[[], int]:
    path = os.environ.get("HW_CLOCK_FILE")
    return file_clock(Path(path)) if path else wall_clock
