"""SKAB benchmark (Skoltech Anomaly Benchmark) evaluation: data read in place from ../shared/data/skab."""
