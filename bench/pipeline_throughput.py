"""Superseded by bench/e2e.py; kept so the README's command still works.

    .venv/bin/python bench/pipeline_throughput.py [--batch 100] [--window 60]

runs bench/e2e.py's batched pipeline phase and the raw Kafka baselines of the same run (what this script used to
measure). Any other option is passed on to bench/e2e.py; `bench/e2e.py --help` lists them, and running it
without options measures everything (raw MQTT and Kafka, batched and single-reading payloads, one and two
workers, latency to the alert record and to the notification).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--readings" in args:  # the old fixed-count option has no meaning for a sustained, windowed measurement
        i = args.index("--readings")
        del args[i:i + 2]
        print("pipeline_throughput: --readings is gone; the window is timed (--window SECONDS)", file=sys.stderr)
    if not any(a.startswith("--phases") for a in args):
        args = ["--phases", "pipeline-batched,raw-kafka", *args]
    sys.exit(main(args))
