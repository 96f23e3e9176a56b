"""SKAB "Proposed leaderboard" scoring, re-implemented from the prose rules in ../shared/data/skab/SCORING.md.

The benchmark is read in place from ../shared/data/skab (relative to the repository root) and never copied: it is
GPL-3.0 data with its own provenance, and a copy would drift from the reference predictions it is checked against.

Protocol, per file: the first 400 rows are train, the rest test. Two scores over the 0/1 test predictions:
* outlier detection: point-wise TP/FP/FN/TN summed over all files (micro average) -> F1, FAR %, MAR %;
* changepoint detection: every switch of the 0/1 prediction is an alarm; NAB-style windows [c, c + 60 s] after each
  true changepoint (cut so that they do not overlap); the first alarm in a window scores on a tanh curve, the others
  in that window are ignored, an empty window scores Afn and every alarm outside all windows scores a flat Afp.
Only numpy and the csv module: the project does not depend on pandas.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SKAB_ROOT = REPO_ROOT.parent / "shared" / "data" / "skab"

TRAIN_ROWS = 400
WINDOW_S = 60
CURVE_POINTS = 1000
GROUPS = ("other", "valve1", "valve2")
FEATURES = ("Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
            "Voltage", "Volume Flow RateRMS")


@dataclass(frozen=True)
class Profile:
    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = (
    Profile("Standard", 1.0, -0.11, -1.0),
    Profile("LowFP", 1.0, -0.22, -1.0),
    Profile("LowFN", 1.0, -0.11, -2.0),
)


# ---- data ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SkabFile:
    name: str  # e.g. "valve1/3.csv", as in the reference files
    t: np.ndarray  # int64 epoch seconds (naive local time; only differences matter)
    x: np.ndarray  # float64 [rows, 8], columns as FEATURES
    anomaly: np.ndarray  # bool [rows]
    changepoint: np.ndarray  # bool [rows]

    @property
    def x_train(self) -> np.ndarray:
        return self.x[:TRAIN_ROWS]

    @property
    def x_test(self) -> np.ndarray:
        return self.x[TRAIN_ROWS:]

    @property
    def t_test(self) -> np.ndarray:
        return self.t[TRAIN_ROWS:]

    @property
    def anomaly_test(self) -> np.ndarray:
        return self.anomaly[TRAIN_ROWS:]

    @property
    def changepoint_test(self) -> np.ndarray:
        return self.changepoint[TRAIN_ROWS:]


def _parse_times(stamps: Sequence[str]) -> np.ndarray:
    return np.array(stamps, dtype="datetime64[s]").astype(np.int64)


def file_names(root: Path = SKAB_ROOT) -> list[str]:
    """The 34 labelled experiment files (anomaly-free.csv is not part of the protocol), in natural order."""
    names = []
    for group in GROUPS:
        stems = sorted(int(p.stem) for p in (root / "data" / group).glob("*.csv"))
        names.extend(f"{group}/{s}.csv" for s in stems)
    return names


def load_file(name: str, root: Path = SKAB_ROOT) -> SkabFile:
    with open(root / "data" / name, newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    header, body = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(header)}
    t = _parse_times([r[0] for r in body])
    x = np.array([[float(r[col[f]]) for f in FEATURES] for r in body], dtype=np.float64)
    anomaly = np.array([float(r[col["anomaly"]]) for r in body]) == 1.0
    changepoint = np.array([float(r[col["changepoint"]]) for r in body]) == 1.0
    return SkabFile(name, t, x, anomaly, changepoint)


def load_benchmark(root: Path = SKAB_ROOT) -> list[SkabFile]:
    return [load_file(n, root) for n in file_names(root)]


@dataclass(frozen=True)
class PublishedPredictions:
    methods: tuple[str, ...]
    t: dict[str, np.ndarray]  # file -> epoch seconds of its test rows
    pred: dict[str, dict[str, np.ndarray]]  # method -> file -> float 0/1, NaN where the method gave no output


def load_published_predictions(root: Path = SKAB_ROOT) -> PublishedPredictions:
    with open(root / "reference" / "published_outlier_predictions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    methods = tuple(header[2:])
    by_file: dict[str, list[list[str]]] = {}
    for r in body:
        by_file.setdefault(r[0], []).append(r)
    t = {f: _parse_times([r[1] for r in rs]) for f, rs in by_file.items()}
    pred = {m: {f: np.array([float(r[2 + j]) if r[2 + j] != "" else np.nan for r in rs])
                for f, rs in by_file.items()}
            for j, m in enumerate(methods)}
    return PublishedPredictions(methods, t, pred)


# Published methods whose notebooks widened the 0/1 output with a 30-row rolling max before the changepoint metric.
PUBLISHED_CP_ROLLING_MAX = {"Isolation_Forest": 30, "Arima_anomaly_detection": 30}


def load_leaderboard(root: Path = SKAB_ROOT) -> list[dict[str, str]]:
    with open(root / "reference" / "published_leaderboard_and_rescoring.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# ---- outlier (point-wise) metric ---------------------------------------------------------------------------------

def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """[TP, FP, FN, TN] as int64."""
    yt = np.asarray(y_true, dtype=bool)
    yp = np.asarray(y_pred, dtype=bool)
    tp = np.count_nonzero(yt & yp)
    fp = np.count_nonzero(~yt & yp)
    fn = np.count_nonzero(yt & ~yp)
    return np.array([tp, fp, fn, len(yt) - tp - fp - fn], dtype=np.int64)


@dataclass(frozen=True)
class OutlierScore:
    f1: float
    far: float  # % of normal rows flagged
    mar: float  # % of anomalous rows missed


def outlier_score(counts: np.ndarray) -> OutlierScore:
    tp, fp, fn, tn = (int(c) for c in counts)
    # The leaderboard reports 0 (not undefined) for a detector that never fires.
    f1 = tp / (tp + (fp + fn) / 2) if tp else 0.0
    far = 100 * fp / (fp + tn) if fp + tn else 0.0
    mar = 100 * fn / (fn + tp) if fn + tp else 0.0
    return OutlierScore(round(f1, 2), round(far, 2), round(mar, 2))


# ---- changepoint (NAB-style) metric ------------------------------------------------------------------------------

def alarms_from_prediction(pred: np.ndarray) -> np.ndarray:
    """Changepoint alarms of a 0/1 prediction: every switch ON and every switch OFF; the first row alarms if ON."""
    p = np.asarray(pred, dtype=np.int8)
    out = np.empty(len(p), dtype=bool)
    if len(p):
        out[0] = p[0] != 0
        out[1:] = p[1:] != p[:-1]
    return out


def detection_windows(cp_t: np.ndarray, width_s: int = WINDOW_S) -> np.ndarray:
    """[n, 2] int64 (start, end), both inclusive; a window overlapping its predecessor starts at the predecessor's end.

    Ends are never moved, so the sequential rule collapses to start[i+1] = max(c[i+1], end[i]).
    """
    cp_t = np.sort(np.asarray(cp_t, dtype=np.int64))
    win = np.stack([cp_t, cp_t + width_s], axis=1)
    if len(win) > 1:
        win[1:, 0] = np.maximum(win[1:, 0], win[:-1, 1])
    return win


def score_curve(profile: Profile, points: int = CURVE_POINTS) -> np.ndarray:
    """Score of the first alarm in a window, indexed by its position: Atp at the window start, Afp at its end."""
    x = np.linspace(-math.pi / 2, math.pi / 2, points)
    half = (profile.a_tp - profile.a_fp) / 2
    return half * (-np.tanh(x) / math.tanh(math.pi / 2)) + half + profile.a_fp


@dataclass(frozen=True)
class ChangepointCounts:
    n_windows: int
    missed: int  # windows without an alarm
    false_alarms: int  # alarms outside every window
    positions: np.ndarray  # int64 curve index of the first alarm of each detected window
    delays_s: np.ndarray  # int64 first alarm - window start, of each detected window


def changepoint_counts(alarm_t: np.ndarray, windows: np.ndarray, points: int = CURVE_POINTS) -> ChangepointCounts:
    """Match alarm timestamps to windows. Profile-independent, so the three NAB profiles share one pass.

    Each window is matched on its own, so an alarm exactly on a cut boundary (end of window i == start of window
    i+1) is the first alarm of both. SCORING.md does not say; counting it in only one of them breaks the exact
    reproduction of Conv-AE, Isolation forest, MSCRED and T-squared+Q, which have such alarms.
    """
    alarm_t = np.sort(np.asarray(alarm_t, dtype=np.int64))
    starts, ends = windows[:, 0], windows[:, 1]
    first = np.searchsorted(alarm_t, starts, side="left")  # first alarm >= start
    after = np.searchsorted(alarm_t, ends, side="right")  # first alarm > end
    hit = first < after
    t0 = alarm_t[first[hit]]
    delay = t0 - starts[hit]
    # Integer floor division: the same truncation as int() of the exact quotient, without float rounding at
    # positions that land exactly on a curve point.
    pos = np.minimum((points * delay) // (ends[hit] - starts[hit]), points - 1)
    inside = np.zeros(len(alarm_t), dtype=bool)
    for lo, hi in zip(first.tolist(), after.tolist(), strict=True):
        inside[lo:hi] = True
    return ChangepointCounts(len(windows), int(np.count_nonzero(~hit)), int(np.count_nonzero(~inside)), pos, delay)


def nab_raw(c: ChangepointCounts, profile: Profile) -> float:
    curve = score_curve(profile)
    return float(curve[c.positions].sum() + profile.a_fn * c.missed + profile.a_fp * c.false_alarms)


# ---- per file and benchmark --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileScore:
    name: str
    counts: np.ndarray  # [TP, FP, FN, TN] over the rows with a prediction
    cp: ChangepointCounts
    raw: dict[str, float]  # profile name -> summed window/FP score


def rolling_max(pred: np.ndarray, width: int) -> np.ndarray:
    """Trailing max over the last `width` rows of a 0/1 series (a shorter window at the start, so still causal)."""
    p = np.asarray(pred, dtype=bool)
    c = np.concatenate([[0], np.cumsum(p, dtype=np.int64)])
    lo = np.maximum(np.arange(1, len(p) + 1) - width, 0)
    return (c[1:] - c[lo]) > 0


def score_file(name: str, t: np.ndarray, anomaly: np.ndarray, changepoint: np.ndarray, pred: np.ndarray,
               cp_rolling_max: int = 1) -> FileScore:
    """Score one file's test rows. Rows where pred is NaN (no output yet, e.g. a window model's warm-up) are left
    out of both metrics, including their true changepoints: that is how the reference aligned series by index.

    cp_rolling_max > 1 widens the prediction before it is turned into changepoint alarms only (the published
    Isolation forest and ArimaFD notebooks did this with 30 rows); the point-wise metric uses pred as is.
    """
    p = np.asarray(pred, dtype=np.float64)
    keep = ~np.isnan(p)
    t, y, cp, p = np.asarray(t)[keep], np.asarray(anomaly)[keep], np.asarray(changepoint)[keep], p[keep] != 0
    counts = confusion(y, p)
    p_cp = rolling_max(p, cp_rolling_max) if cp_rolling_max > 1 else p
    cc = changepoint_counts(t[alarms_from_prediction(p_cp)], detection_windows(t[cp]))
    return FileScore(name, counts, cc, {pr.name: nab_raw(cc, pr) for pr in PROFILES})


@dataclass(frozen=True)
class BenchmarkScore:
    f1: float
    far: float
    mar: float
    nab: dict[str, float]  # profile name -> NAB score (0 = null detector, 100 = perfect), 2 dp
    missed: int
    false_alarms: int
    n_cp: int
    mean_delay_s: float


def aggregate(files: Iterable[FileScore]) -> BenchmarkScore:
    files = list(files)
    counts = np.sum([f.counts for f in files], axis=0)
    o = outlier_score(counts)
    n = sum(f.cp.n_windows for f in files)
    nab = {}
    for pr in PROFILES:
        s = sum(f.raw[pr.name] for f in files)
        null, perfect = n * pr.a_fn, n * pr.a_tp
        nab[pr.name] = round(100 * (s - null) / (perfect - null), 2)
    delays = np.concatenate([f.cp.delays_s for f in files])
    return BenchmarkScore(o.f1, o.far, o.mar, nab, sum(f.cp.missed for f in files),
                          sum(f.cp.false_alarms for f in files), n,
                          float(delays.mean()) if len(delays) else math.nan)


def score_predictions(data: Sequence[SkabFile], preds: dict[str, np.ndarray],
                      cp_rolling_max: int = 1) -> tuple[BenchmarkScore, list[FileScore]]:
    """Score per-file test predictions (name -> array over that file's test rows)."""
    per_file = [score_file(f.name, f.t_test, f.anomaly_test, f.changepoint_test, preds[f.name], cp_rolling_max)
                for f in data]
    return aggregate(per_file), per_file
