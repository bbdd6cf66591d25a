"""Batch digitisation of scan archives: discovery, manifest, resume, process pool, Dask.

The pieces, each usable on its own:

* :func:`discover` turns the command line's inputs (folders, globs, list files,
  single files) into :class:`Job` s with unique output names that mirror the
  input tree under the output folder.
* :class:`Manifest` is the SQLite file ``OUT_DIR/manifest.sqlite``: one row per
  input (key = absolute input path) with its content hash, status, outputs,
  per-curve coverage, timings and error. Finished scans are group-committed
  within 0.5 s (``synchronous=FULL``): a kill at any moment loses at most that
  window of records (those scans are converted again), never a recorded one,
  and a rerun cannot record an input twice.
* :func:`run_task` converts one scan (all its pages) in a worker; it never raises
  for a bad input but returns a failed result with the message.
* :func:`run_batch` plans (skip / redo / retry), runs the tasks on a local
  process pool or on a Dask cluster, streams results into the manifest, and
  writes ``OUT_DIR/index.csv``.

Outputs are written by :func:`logdigit.pipeline.convert_file` through
:mod:`logdigit.fsutil` (temp + rename), and fsync'ed here before the manifest
says "done": a crash, a kill or a power loss leaves either the finished file or
none, and a stale temp file at most, which the next run removes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import json
import os
import re
import signal
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import LogdigitError
from .fsutil import atomic_open

#: File name extensions taken as scans when walking folders or expanding globs.
SCAN_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: Extensions of list files: one scan (or folder) path a line, ``#`` comments.
LIST_EXTENSIONS: tuple[str, ...] = (".txt", ".lst", ".list")
#: Calibration sidecar extensions: ``scan.yaml`` beside ``scan.tif``.
SIDECAR_EXTENSIONS: tuple[str, ...] = (".yaml", ".yml")
#: Output file extension per output format.
FORMAT_EXTENSIONS: dict[str, str] = {"las": ".las", "csv": ".csv"}

MANIFEST_NAME = "manifest.sqlite"
INDEX_NAME = "index.csv"
LOCK_NAME = ".batch.lock"

#: Resubmissions of a Dask task whose worker died (on top of Dask's own retries).
DASK_RETRIES = 1
#: How long ``--scheduler`` waits for the Dask scheduler to answer.
DASK_CONNECT_TIMEOUT = "30s"

_HASH_CHUNK = 1 << 20
_GLOB_CHARS = re.compile(r"[*?\[]")
_TMP_RE = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")  # names fsutil gives temp files


class BatchError(LogdigitError):
    """The batch cannot start: no inputs, output folder in use, bad options."""


# ---------------------------------------------------------------------------
# hashing and small helpers
# ---------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike, chunk: int = _HASH_CHUNK) -> str:
    """SHA-256 hex digest of a file's bytes, read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_for(scan: str | os.PathLike) -> Path | None:
    """The calibration sidecar of ``scan`` (``scan.yaml`` / ``scan.yml``), if present."""
    scan = Path(scan)
    for ext in SIDECAR_EXTENSIONS:
        p = scan.with_suffix(ext)
        if p.is_file():
            return p
    return None


def count_pages(path: str | os.PathLike) -> int:
    """Number of pages of a scan (:func:`logdigit.io.count_pages`); 1 when unreadable.

    An unreadable file counts as one page so that the converter, which reads it,
    reports the real problem.
    """
    try:
        from .io import count_pages as io_count_pages

        return max(1, int(io_count_pages(path)))
    except Exception:  # noqa: BLE001 - the converter reports the real error
        return 1


def default_workers() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """onnxruntime intra-op threads per worker so that workers x threads = cores."""
    cores = default_workers() if cores is None else cores
    return max(1, cores // max(1, workers))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------
# discovery: inputs -> jobs with unique, tree-mirroring output names
# ---------------------------------------------------------------------------

@dataclass
class Job:
    """One input scan and where its outputs go.

    ``key`` is the absolute input path (the manifest key); ``rel`` its path
    relative to the common root of the inputs; ``out_stem`` the output path
    relative to the output folder, without extension (pages add ``_pN``).
    ``missing`` holds a message when the input could not be found.
    """

    key: str
    rel: str
    out_stem: str = ""
    missing: str | None = None


def _has_magic(s: str) -> bool:
    return bool(_GLOB_CHARS.search(s))


def _glob_base(pattern: str) -> str:
    """The leading folder of ``pattern`` that holds no glob characters."""
    parts = Path(pattern).parts
    keep = []
    for p in parts:
        if _has_magic(p):
            break
        keep.append(p)
    return os.path.abspath(Path(*keep) if keep else ".")


def _is_scan_name(name: str) -> bool:
    return name.lower().endswith(SCAN_EXTENSIONS) and not name.startswith(".")


def _walk(folder: str, exclude: str | None) -> Iterator[str]:
    """Scan files below ``folder`` in sorted order; symlinked folders followed once."""
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a symlink loop or a second link to the same folder
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (exclude and _same_or_inside(
                                 os.path.join(dirpath, d), exclude)))
        for name in sorted(filenames):
            if _is_scan_name(name):
                yield os.path.abspath(os.path.join(dirpath, name))


def _same_or_inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) \
            == os.path.realpath(folder)
    except ValueError:
        return False


def _expand(arg: str, exclude: str | None, from_list: bool = False
            ) -> Iterator[tuple[str, str, str | None]]:
    """Yield ``(abs_path, base_folder, missing_message)`` for one input argument."""
    if os.path.isdir(arg):
        base = os.path.abspath(arg)
        for p in _walk(arg, exclude):
            yield p, base, None
    elif os.path.isfile(arg) and not from_list and arg.lower().endswith(LIST_EXTENSIONS):
        yield from _read_list(arg, exclude)
    elif os.path.exists(arg):
        p = os.path.abspath(arg)
        yield p, os.path.dirname(p), None
    elif _has_magic(arg):
        base = _glob_base(arg)
        for m in sorted(glob.glob(arg, recursive=True)):
            if os.path.isdir(m):
                for p in _walk(m, exclude):
                    yield p, base, None
            elif _is_scan_name(os.path.basename(m)):
                yield os.path.abspath(m), base, None
    else:
        p = os.path.abspath(arg)
        yield p, os.path.dirname(p), "input not found: check the path"


def _read_list(list_file: str, exclude: str | None) -> Iterator[tuple[str, str, str | None]]:
    here = os.path.dirname(os.path.abspath(list_file))
    try:
        with open(list_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BatchError(f"cannot read list file: {e}", list_file) from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = line if os.path.isabs(line) else os.path.join(here, line)
        yield from _expand(entry, exclude, from_list=True)


def discover(inputs: Sequence[str | os.PathLike], exclude: str | os.PathLike | None = None
             ) -> list[Job]:
    """Turn command-line inputs into jobs with unique output names.

    Parameters
    ----------
    inputs : sequence of path-like
        Folders (walked recursively for ``SCAN_EXTENSIONS``, hidden entries
        skipped), glob patterns (``**`` recursive), list files (``.txt``, ``.lst``,
        ``.list``: one path a line, relative to the list file) or single files
        (taken whatever their extension, so a broken file is reported).
    exclude : path-like, optional
        A folder never walked into (the output folder).

    Returns
    -------
    list of Job
        In input order, duplicates (same real file) removed. ``rel`` mirrors the
        input tree below the common root of all inputs; ``out_stem`` is ``rel``
        without its extension, made unique (see :func:`assign_output_stems`).
    """
    exclude = None if exclude is None else os.path.abspath(exclude)
    found: list[tuple[str, str, str | None]] = []
    seen: set[str] = set()
    for arg in inputs:
        for path, base, missing in _expand(os.fspath(arg), exclude):
            real = os.path.realpath(path)
            if real in seen or (exclude and missing is None and _same_or_inside(path, exclude)):
                continue
            seen.add(real)
            found.append((path, base, missing))
    if not found:
        return []
    root = os.path.commonpath([b for _, b, _ in found])
    jobs = [Job(key=p, rel=Path(os.path.relpath(p, root)).as_posix(), missing=m)
            for p, _, m in found]
    assign_output_stems(jobs)
    return jobs


_PAGE_SUFFIX = re.compile(r"_p\d+$")


def assign_output_stems(jobs: list[Job]) -> None:
    """Give every job an ``out_stem`` that no other job's outputs can take.

    ``dir/a.tif`` -> ``dir/a``. Where two inputs would share a stem (``a.tif`` and
    ``a.png``, or ``A.tif`` and ``a.tif`` on a case-insensitive disk), or a stem
    looks like another input's page output (``a_p2.tif`` beside a multi-page
    ``a.tif``), those inputs keep their extension in the stem: ``a_tif``, ``a_png``.
    """
    def plain(j: Job) -> str:
        return str(Path(j.rel).with_suffix("")) if Path(j.rel).suffix else j.rel

    def with_ext(j: Job) -> str:
        p = Path(j.rel)
        return str(p.with_name(p.name.replace(".", "_"))) if p.suffix else j.rel + "_"

    stems = {id(j): plain(j) for j in jobs}
    counts: dict[str, int] = {}
    for s in stems.values():
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    lowered = set(counts)
    for j in jobs:
        s = stems[id(j)].lower()
        page_like = _PAGE_SUFFIX.search(s) and _PAGE_SUFFIX.sub("", s) in lowered
        if counts[s] > 1 or page_like:
            stems[id(j)] = with_ext(j)
    taken: set[str] = set()
    for j in jobs:
        s, n = stems[id(j)], 1
        while s.lower() in taken:  # pathological leftovers: number them
            n += 1
            s = f"{stems[id(j)]}_dup{n}"
        taken.add(s.lower())
        j.out_stem = Path(s).as_posix()


# ---------------------------------------------------------------------------
# settings and the per-scan task (runs in a worker)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvertSettings:
    """What every conversion of a batch shares (picklable, sent to workers).

    ``threads`` = onnxruntime threads per worker (None: cores / concurrent tasks).
    ``page`` = the one page to convert (None: every page).
    ``timeout`` = seconds one scan may take before it is recorded as failed (None:
    no limit; local workers only, not Dask worker threads).
    """

    model: str | None = None
    device: str = "cpu"
    threads: int | None = None
    fmt: str = "las"
    step: float | None = None
    qc: bool = False
    page: int | None = None
    timeout: float | None = None

    def fingerprint(self, model_sha: str | None) -> str:
        """Hash of everything that changes the outputs (not threads/device/timeout)."""
        d = {"model_sha256": model_sha, "fmt": self.fmt, "step": self.step,
             "qc": self.qc, "page": self.page}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def default_convert(*args, **kwargs):
    """:func:`logdigit.pipeline.convert_file` (imported in the worker)."""
    from .pipeline import convert_file

    return convert_file(*args, **kwargs)


def default_segmenter(settings: ConvertSettings):
    """A :class:`logdigit.segment.Segmenter` for ``settings`` (the model, loaded once)."""
    from .segment import Segmenter

    return Segmenter(model_path=settings.model, threads=settings.threads, device=settings.device)


@dataclass(frozen=True)
class Runner:
    """The converter a worker calls: settings plus the two injectable callables.

    ``convert(scan, out, *, calibration, model, segmenter, page, fmt, qc_path,
    step, threads, device, progress)`` has :func:`logdigit.pipeline.convert_file`'s
    contract; ``make_segmenter(settings)`` builds the per-worker model (None: the
    converter loads its own). Both must be picklable (module-level functions).
    """

    settings: ConvertSettings = ConvertSettings()
    convert: Callable[..., Any] = default_convert
    make_segmenter: Callable[[ConvertSettings], Any] | None = default_segmenter


_SEGMENTERS: dict[tuple, Any] = {}
_SEGMENTER_LOCK = threading.Lock()


_HOST_SLOTS: list[int] = []  # Dask task slots on this worker's host, looked up once


def _dask_host_slots() -> int:
    """Task slots (threads) of all Dask workers on this worker's host: several worker
    processes on one machine share its cores."""
    from distributed import get_client, get_worker

    w = get_worker()
    if not _HOST_SLOTS:
        slots = w.state.nthreads
        try:
            host = w.address.rsplit(":", 1)[0]
            workers = _dask_workers(get_client())
            slots = max(slots, sum(v.get("nthreads", 1) for a, v in workers.items()
                                   if a.rsplit(":", 1)[0] == host))
        except Exception:  # noqa: BLE001 - no scheduler info: this worker's slots
            pass
        _HOST_SLOTS.append(slots)
    return _HOST_SLOTS[0]


def _worker_threads(settings: ConvertSettings) -> ConvertSettings:
    """Fill ``threads`` inside a Dask worker: machine cores / task slots on the host."""
    if settings.threads is not None:
        return settings
    try:
        slots = _dask_host_slots()
    except Exception:  # noqa: BLE001 - not in a Dask worker
        return settings
    return dataclasses.replace(settings, threads=threads_per_worker(slots, os.cpu_count()))


def worker_segmenter(runner: Runner):
    """The segmenter of this worker process for ``runner`` (built on first use, then reused)."""
    if runner.make_segmenter is None:
        return None
    settings = _worker_threads(runner.settings)
    key = (runner.make_segmenter, settings)
    with _SEGMENTER_LOCK:
        if key not in _SEGMENTERS:
            _SEGMENTERS[key] = runner.make_segmenter(settings)
        return _SEGMENTERS[key]


def _attr(res: Any, name: str, default):
    if isinstance(res, dict):
        return res.get(name, default)
    return getattr(res, name, default)


def page_stem(stem: str, page) -> str:
    """``stem`` of the output of page ``page`` of a multi-page file: ``stem_p<page>``."""
    return f"{stem}_p{page}"


def output_paths(out_dir: str | os.PathLike, out_stem: str, page: int | None, n_pages: int,
                 settings: ConvertSettings) -> tuple[Path, Path | None]:
    """``(curves_path, qc_path_or_None)`` of one page: ``stem[_pN].las`` and
    ``stem[_pN].qc.png``; the ``_pN`` suffix (N as ``--page`` counts) only for
    multi-page files."""
    stem = out_stem if n_pages <= 1 or page is None else page_stem(out_stem, page)
    base = Path(out_dir) / stem
    curves = base.with_name(base.name + FORMAT_EXTENSIONS[settings.fmt])
    qc = base.with_name(base.name + ".qc.png") if settings.qc else None
    return curves, qc


def describe_error(e: BaseException, scan: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(message, error type)`` recorded for a failure: a LogdigitError's own
    message, after the name of the file it is in when that is not ``scan`` (a sidecar
    calibration, the model); common OS errors in words; anything else as
    ``Type: message``."""
    if isinstance(e, LogdigitError):
        if e.path and (scan is None or os.path.abspath(e.path) != os.path.abspath(scan)):
            return f"{os.path.basename(e.path)}: {e.message}", type(e).__name__
        return e.message, type(e).__name__
    if isinstance(e, ScanTimeout):
        return str(e), "ScanTimeout"
    if isinstance(e, FileNotFoundError):
        return f"file not found: {e.strerror}", "FileNotFoundError"
    if isinstance(e, PermissionError):
        return f"permission denied: {e.strerror}; make the file readable", "PermissionError"
    if isinstance(e, MemoryError):
        return "out of memory while converting: use fewer --workers", "MemoryError"
    return f"{type(e).__name__}: {e}", type(e).__name__


def _convert_page(task: dict, runner: Runner, settings: ConvertSettings, segmenter: Any,
                  page: int | None, n_pages: int) -> tuple[dict, dict[str, float]]:
    out_dir = Path(task["out_dir"])
    out, qc = output_paths(out_dir, task["out_stem"], page, n_pages, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = runner.convert(
        Path(task["key"]), out, calibration=task.get("calibration"), model=settings.model,
        segmenter=segmenter, page=page, fmt=settings.fmt, qc_path=qc, step=settings.step,
        threads=settings.threads, device=settings.device, progress=False)
    outs = [Path(p) for p in (_attr(res, "outputs", None) or [out] + ([qc] if qc else []))]
    for p in outs:  # on disk before the manifest says done
        _fsync_file(p)
    for d in {p.parent for p in outs}:
        _fsync_dir(d)
    rels = [Path(os.path.relpath(p, out_dir)).as_posix() for p in outs]
    part = {
        "outputs": rels,
        "page_outputs": [[page, rels]],
        "curves": [[page, str(m), float(c)] for m, c in _attr(res, "curves", [])],
        "warnings": [f"page {page}: {w}" if page is not None else str(w)
                     for w in _attr(res, "warnings", [])],
    }
    return part, {k: float(v) for k, v in (_attr(res, "timings", None) or {}).items()}


class ScanTimeout(BaseException):
    """A scan took longer than ``--timeout`` (a BaseException, so that the per-page
    ``except Exception`` does not swallow it and go on with the next page)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ScanTimeout` in this thread after ``seconds`` (SIGALRM: the main
    thread of a process only; elsewhere, or with None, no limit). Python code is
    interrupted between bytecodes, so a long native call (one inference band)
    finishes first."""
    if not seconds or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return

    def _raise(signum, frame):
        raise ScanTimeout(f"took longer than the {seconds:g} s --timeout: a huge or "
                          "pathological scan; convert it alone, or raise --timeout")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_task(task: dict, runner: Runner) -> dict:
    """Convert one scan, all its pages (or ``settings.page``); never raises for bad input.

    A page that fails does not stop the other pages of the file; the file is then
    recorded as failed with every failing page's message (``page N: ...``).

    Parameters
    ----------
    task : dict
        ``key`` (scan path), ``out_dir``, ``out_stem``, ``calibration`` (path or None).
    runner : Runner

    Returns
    -------
    dict
        ``key, status ('done'|'failed'), sha256, size, mtime_ns, pages (converted),
        outputs (paths relative to out_dir), page_outputs [[page, [paths]]],
        curves [[page, mnemonic, coverage]],
        warnings, timings (stage -> s, summed over pages), error, error_type, host, pid``.
    """
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "key": task["key"], "status": "failed", "sha256": None, "size": None,
        "mtime_ns": None, "pages": 0, "outputs": [], "page_outputs": [], "curves": [],
        "warnings": [], "timings": {}, "error": None, "error_type": None,
        "host": socket.gethostname(), "pid": os.getpid(),
    }
    timings: dict[str, float] = {}
    errors: list[tuple[int | None, str, str]] = []
    try:
        with _time_limit(runner.settings.timeout):
            _run_pages(task, runner, result, timings, errors)
    except (Exception, ScanTimeout) as e:  # noqa: BLE001 - outside the pages, or time out
        errors.append((None, *describe_error(e, task["key"])))
    if errors:
        result["error"] = "; ".join(msg if page is None else f"page {page}: {msg}"
                                    for page, msg, _ in errors)
        result["error_type"] = errors[0][2]
    else:
        result["status"] = "done"
    timings["wall"] = time.perf_counter() - t0
    result["timings"] = {k: round(v, 6) for k, v in timings.items()}
    return result


def _run_pages(task: dict, runner: Runner, result: dict, timings: dict[str, float],
               errors: list) -> None:
    """The pages of one scan, into ``result`` / ``timings`` / ``errors``: a bad page is
    recorded and the next one tried."""
    scan = Path(task["key"])
    st = os.stat(scan)
    result["size"], result["mtime_ns"] = st.st_size, st.st_mtime_ns
    t = time.perf_counter()
    result["sha256"] = sha256_file(scan)
    timings["hash"] = time.perf_counter() - t
    segmenter = worker_segmenter(runner)
    settings = _worker_threads(runner.settings)
    n_pages = count_pages(scan)
    pages: list[int | None] = ([settings.page] if settings.page is not None else
                               list(range(n_pages)) if n_pages > 1 else [None])
    for page in pages:
        try:
            part, tm = _convert_page(task, runner, settings, segmenter, page, n_pages)
        except Exception as e:  # noqa: BLE001 - an archive may hold anything
            errors.append((page, *describe_error(e, scan)))
            continue
        for k in ("outputs", "page_outputs", "curves", "warnings"):
            result[k] += part[k]
        for k, v in tm.items():
            timings[k] = timings.get(k, 0.0) + v
        result["pages"] += 1


# ---------------------------------------------------------------------------
# the manifest
# ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    key TEXT PRIMARY KEY,          -- absolute input path
    rel TEXT NOT NULL,             -- path relative to the inputs' common root
    out_stem TEXT NOT NULL,        -- outputs' path below OUT_DIR, without extension
    size INTEGER, mtime_ns INTEGER,
    sha256 TEXT,                   -- sha256 of the scan's bytes
    calibration TEXT,              -- calibration file used (sidecar or template), or NULL
    cal_sha256 TEXT,
    settings_sha256 TEXT,          -- model + options that change the outputs
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    last_action TEXT,              -- what the latest run did: converted / failed / skipped
    run_id INTEGER,                -- latest run that touched the row
    pages INTEGER,
    outputs TEXT,                  -- JSON list of paths relative to OUT_DIR
    page_outputs TEXT,             -- JSON list of [page, [outputs of that page]]
    curves TEXT,                   -- JSON list of [page, mnemonic, coverage]
    warnings TEXT,                 -- JSON list
    timings TEXT,                  -- JSON {stage: seconds}
    error TEXT, error_type TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,                   -- host:pid that converted it
    updated TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT, finished TEXT, argv TEXT, scheduler TEXT, workers INTEGER,
    done INTEGER, failed INTEGER, skipped INTEGER, pages INTEGER, wall_s REAL,
    state TEXT                     -- running / finished / interrupted / error
);
"""


class Manifest:
    """``OUT_DIR/manifest.sqlite``: one row per input.

    Rollback journal with ``synchronous=FULL``: a commit is on disk when it
    returns; a kill or power loss mid-transaction rolls it back. Finished scans are
    group-committed: :meth:`record` queues the row and commits the queue when
    ``commit_every_s`` has passed since the last commit (one commit costs a few
    fsyncs, ~20 ms on a plain disk, which would otherwise cap a big cluster at
    ~50 scans/s). A kill loses at most that window of *records*, never an output:
    those scans are converted again on the rerun. Only the process running the
    batch writes the manifest.
    """

    def __init__(self, path: str | os.PathLike, commit_every_s: float = 0.5):
        self.path = Path(path)
        self.commit_every_s = commit_every_s
        self._queue: list[tuple] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise BatchError(f"manifest is not a readable SQLite file ({e}): move it away "
                             "to start a fresh manifest", self.path) from None
        self.db.row_factory = sqlite3.Row
        self._flusher = None
        if commit_every_s > 0:
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                             name="manifest-flush")
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.commit_every_s):
            with contextlib.suppress(sqlite3.Error):
                self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        self.flush()
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def rows(self) -> dict[str, sqlite3.Row]:
        """All rows by key."""
        with self._lock:
            self.flush()
            return {r["key"]: r for r in self.db.execute("SELECT * FROM scans")}

    def start_run(self, argv: str, scheduler: str | None, workers: int) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO runs (started, argv, scheduler, workers, state) "
                             "VALUES (?, ?, ?, ?, 'running')", (_now(), argv, scheduler, workers))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, state: str, counts: dict[str, int], pages: int,
                   wall_s: float) -> None:
        self.flush()
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished=?, state=?, done=?, failed=?, skipped=?, "
                       "pages=?, wall_s=? WHERE run_id=?",
                       (_now(), state, counts.get("done", 0), counts.get("failed", 0),
                        counts.get("skipped", 0), pages, round(wall_s, 3), run_id))

    def mark_skipped(self, run_id: int, plans: Iterable["Planned"]) -> None:
        """Record that this run passed over these inputs (status unchanged; the new
        size and mtime of a touched but unchanged scan stored)."""
        plans = list(plans)
        with self.transaction() as db:
            db.executemany("UPDATE scans SET last_action='skipped', run_id=? WHERE key=?",
                           [(run_id, p.job.key) for p in plans])
            db.executemany("UPDATE scans SET size=?, mtime_ns=? WHERE key=?",
                           [(*p.restat, p.job.key) for p in plans if p.restat])

    def flush(self) -> None:
        """Commit the queued records in one transaction."""
        with self._lock:
            if not self._queue:
                return
            with self.transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO scans (key, rel, out_stem, size, mtime_ns, sha256, "
                    "calibration, cal_sha256, settings_sha256, status, last_action, run_id, "
                    "pages, outputs, page_outputs, curves, warnings, timings, error, "
                    "error_type, attempts, worker, updated) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self._queue)
            self._queue = []

    def record(self, run_id: int, job: Job, plan: "Planned", result: dict) -> None:
        """Queue one finished (done or failed) scan, replacing its previous row; the
        queue is committed within ``commit_every_s`` (0: at once)."""
        status = result["status"]
        row = (job.key, job.rel, job.out_stem, result.get("size"), result.get("mtime_ns"),
               result.get("sha256"), plan.calibration, plan.cal_sha256, plan.settings_sha256,
               status, "converted" if status == "done" else "failed", run_id,
               result.get("pages", 0), json.dumps(result.get("outputs", [])),
               json.dumps(result.get("page_outputs", [])),
               json.dumps(result.get("curves", [])), json.dumps(result.get("warnings", [])),
               json.dumps(result.get("timings", {})), result.get("error"),
               result.get("error_type"), plan.attempts + 1,
               f"{result.get('host')}:{result.get('pid')}", _now())
        with self._lock:
            self._queue.append(row)
            if self.commit_every_s <= 0:
                self.flush()


# ---------------------------------------------------------------------------
# planning: what to do with every input
# ---------------------------------------------------------------------------

@dataclass
class Planned:
    """The plan for one job: ``action`` is 'convert' or 'skip' (with a ``why``)."""

    job: Job
    action: str
    why: str
    calibration: str | None = None
    cal_sha256: str | None = None
    settings_sha256: str = ""
    attempts: int = 0
    restat: tuple[int, int] | None = None  # (size, mtime_ns) to store for a touched file
    conflict: str | None = None  # its output name is another input's: fail with this


def _calibration_for(scan: str, template: str | None) -> str | None:
    side = sidecar_for(scan)
    if side is not None:
        return os.fspath(side)
    return template


def plan_jobs(jobs: list[Job], rows: dict[str, sqlite3.Row], out_dir: Path, template: str | None,
              settings_sha: str, retry_failed: bool, rehash: bool = False) -> list[Planned]:
    """Decide per job: skip (done and unchanged, or failed without ``retry_failed``) or convert.

    "Unchanged" = same scan bytes (sha256; recomputed only when size or mtime moved,
    or with ``rehash``), same calibration file and bytes, same settings
    fingerprint, and every recorded output still present.
    """
    cal_cache: dict[str, str | None] = {}

    def cal_hash(p: str | None) -> str | None:
        if p is None:
            return None
        if p not in cal_cache:
            try:
                cal_cache[p] = sha256_file(p)
            except OSError:
                cal_cache[p] = None
        return cal_cache[p]

    # outputs recorded for other inputs (an earlier run with other inputs, same OUT_DIR)
    owners = {r["out_stem"].lower(): r for r in rows.values() if json.loads(r["outputs"] or "[]")}
    plans = []
    for job in jobs:
        cal = None if job.missing else _calibration_for(job.key, template)
        pl = Planned(job, "convert", "new", calibration=cal, cal_sha256=cal_hash(cal),
                     settings_sha256=settings_sha)
        row = rows.get(job.key)
        if row is not None:
            pl.attempts = int(row["attempts"] or 0)
            pl.why = _changed(row, pl, out_dir, rehash)
            if pl.why == "":
                if row["status"] == "done":
                    pl.action, pl.why = "skip", "done and unchanged"
                elif retry_failed:
                    pl.why = "retrying failure"
                else:
                    pl.action, pl.why = "skip", "failed earlier (use --retry-failed)"
        owner = owners.get(job.out_stem.lower())
        if pl.action == "convert" and owner is not None and owner["key"] != job.key:
            pl.why = "output belongs to another input"
            pl.conflict = (f"output name {job.out_stem!r} is already used by {owner['key']} "
                           "(an earlier run into this folder): use another -o, or give all "
                           "inputs in one run so that their names are made unique")
        plans.append(pl)
    return plans


def _changed(row: sqlite3.Row, pl: Planned, out_dir: Path, rehash: bool) -> str:
    """Why ``row`` no longer describes the job ('' = it still does)."""
    key = pl.job.key
    if pl.job.missing:
        return "" if row["error_type"] == "FileNotFoundError" else "input gone"
    try:
        st = os.stat(key)
    except OSError:
        return "input unreadable"
    moved = st.st_size != row["size"] or st.st_mtime_ns != row["mtime_ns"]
    if row["sha256"] is None:  # failed before it was hashed (a worker crash): go by stat
        if moved:
            return "scan changed"
    elif rehash or moved:
        try:
            if sha256_file(key) != row["sha256"]:
                return "scan changed"
        except OSError:
            return "input unreadable"
        if moved:
            pl.restat = (st.st_size, st.st_mtime_ns)  # same bytes: remember the new stat
    if pl.calibration != row["calibration"] or pl.cal_sha256 != row["cal_sha256"]:
        return "calibration changed"
    if pl.settings_sha256 != row["settings_sha256"]:
        return "settings changed"
    if row["out_stem"] != pl.job.out_stem:
        return "output name changed"
    if row["status"] == "done":
        for rel in json.loads(row["outputs"] or "[]"):
            if not (out_dir / rel).is_file():
                return "output missing"
    return ""


# ---------------------------------------------------------------------------
# executors: local process pool and Dask
# ---------------------------------------------------------------------------

def _pool_init() -> None:
    # Ctrl-C goes to the whole process group: the parent decides; workers go on
    # until it terminates them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _crash_result(key: str, why: str) -> dict:
    return {"key": key, "status": "failed", "sha256": None, "size": None, "mtime_ns": None,
            "pages": 0, "outputs": [], "page_outputs": [], "curves": [], "warnings": [],
            "timings": {},
            "error": why, "error_type": "WorkerCrash", "host": socket.gethostname(), "pid": None}


def _run_pool(tasks: list[dict], runner: Runner, workers: int, on_result: Callable[[dict], None]
              ) -> None:
    """Run ``tasks`` on a spawn process pool, calling ``on_result`` as each finishes.

    A worker that dies (segfault, out of memory, ``os._exit``) breaks the pool. The
    scans that were in flight then become suspects and are run again one at a time
    on a one-worker pool: a suspect that kills its worker alone is recorded as
    failed, the others finish normally; then the full pool resumes.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    pending = list(reversed(tasks))  # pop() from the end = input order
    suspects: list[dict] = []
    while pending or suspects:
        isolate = bool(suspects)
        queue = suspects if isolate else pending
        limit = 1 if isolate else 2 * workers
        ex = ProcessPoolExecutor(max_workers=1 if isolate else min(workers, len(pending)),
                                 mp_context=ctx, initializer=_pool_init)
        in_flight: dict[Any, dict] = {}
        broken = False
        try:
            while True:
                while queue and len(in_flight) < limit and not broken:
                    t = queue.pop()
                    try:
                        in_flight[ex.submit(run_task, t, runner)] = t
                    except BrokenProcessPool:
                        queue.append(t)
                        broken = True
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = in_flight.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if isolate:
                            on_result(_crash_result(
                                t["key"], "the worker process died while converting this scan "
                                "(crash or out of memory)"))
                        else:
                            suspects.append(t)
                        continue
                    on_result(res)
        except BaseException:
            _terminate_pool(ex)
            raise
        ex.shutdown(wait=not broken, cancel_futures=True)


def _terminate_pool(ex) -> None:
    procs = list(getattr(ex, "_processes", {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)


def _run_dask(tasks: list[dict], runner: Runner, scheduler: Any, on_result: Callable[[dict], None],
              max_in_flight: int | None = None) -> None:
    """Submit ``tasks`` to a Dask cluster (address or Client) and stream results back.

    Input and output paths must be visible to the workers under the same names
    (a shared file system). A task whose worker died (Dask's ``KilledWorker``
    after its own ``allowed-failures`` retries) is resubmitted ``DASK_RETRIES``
    times, one such suspect at a time, then recorded as failed.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise BatchError("--scheduler needs Dask distributed: pip install 'logdigit[cluster]'"
                         ) from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT) if own else scheduler
    except (OSError, TimeoutError, ValueError) as e:
        raise BatchError(f"cannot reach the Dask scheduler: {e}; start one with "
                         "'dask scheduler' (see docs/batch.md)", str(scheduler)) from None
    try:
        pending = list(reversed(tasks))
        keys: dict[Any, dict] = {}
        ac = as_completed()
        seen = {"t": -1e9, "window": 4}

        def window() -> int:
            """Tasks to keep queued: 4 x the worker threads now in the cluster (looked
            up every few seconds, so workers that join later, e.g. queued HPC jobs,
            get work)."""
            if max_in_flight is not None:
                return max_in_flight
            if time.monotonic() - seen["t"] > 5.0:
                slots = sum(w.get("nthreads", 1) for w in _dask_workers(client).values())
                seen.update(t=time.monotonic(), window=max(4, 4 * slots))
            return seen["window"]

        suspects: list[dict] = []
        retries: dict[str, int] = {}
        busy = {"suspect": False}

        def submit(t: dict, suspect: bool) -> None:
            fut = client.submit(run_task, t, runner, pure=False,
                                key=f"logdigit-{hashlib.sha1(t['key'].encode()).hexdigest()[:16]}"
                                    f"-{time.monotonic_ns()}")
            keys[fut] = (t, suspect)
            ac.add(fut)

        def pump() -> None:
            if suspects and not busy["suspect"]:  # suspects one at a time
                submit(suspects.pop(0), True)
                busy["suspect"] = True
            while pending and len(keys) < window():
                submit(pending.pop(), False)

        pump()
        for fut in ac:
            t, suspect = keys.pop(fut)
            busy["suspect"] &= not suspect
            res = None
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - KilledWorker, lost worker, ...
                # run_task never raises: this is the worker dying under the task, or
                # under another task it shared the worker with. Retry it (once, no
                # other suspect beside it); a second death is recorded.
                if retries.get(t["key"], 0) < DASK_RETRIES:
                    retries[t["key"]] = retries.get(t["key"], 0) + 1
                    suspects.append(t)
                else:
                    res = _crash_result(t["key"], f"Dask task failed: {type(e).__name__}: {e}")
            fut.release()
            if res is not None:
                on_result(res)
            pump()
    finally:
        if own:
            client.close()


def _dask_workers(client) -> dict:
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # older distributed: no n_workers argument
        return client.scheduler_info()["workers"]


def _run_inline(tasks: list[dict], runner: Runner, on_result: Callable[[dict], None]) -> None:
    for t in tasks:
        on_result(run_task(t, runner))


# ---------------------------------------------------------------------------
# the batch
# ---------------------------------------------------------------------------

@dataclass
class BatchReport:
    """What a run did. ``counts``: done / failed / skipped this run (failed
    includes earlier failures not retried: ``failed_earlier``)."""

    out_dir: Path
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "skipped": 0})
    failed_earlier: int = 0
    pages: int = 0
    wall_s: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (rel, message)
    interrupted: bool = False
    manifest: Path | None = None
    index: Path | None = None
    run_id: int | None = None
    plan: list["Planned"] | None = None  # filled by a dry run

    def plan_summary(self, max_lines: int = 20) -> str:
        """What a dry run found: counts per action and reason, then the first inputs."""
        plan = self.plan or []
        counts: dict[tuple[str, str], int] = {}
        for p in plan:
            counts[(p.action, p.why)] = counts.get((p.action, p.why), 0) + 1
        lines = [f"{len(plan)} scans; a run would:"]
        lines += [f"  {action:<8}{n:>8}  {why}" for (action, why), n in sorted(counts.items())]
        first = sorted(plan, key=lambda p: p.action != "convert")[:max_lines]  # converts first
        lines += [f"{p.action:<8} {p.job.rel}  ({p.why})" for p in first]
        if len(plan) > max_lines:
            lines.append(f"... and {len(plan) - max_lines} more")
        return "\n".join(lines)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.counts["failed"] == 0 and self.failed_earlier == 0

    def summary(self, max_failures: int = 20) -> str:
        """The summary table (plain text)."""
        c = self.counts
        lines = [
            f"{'status':<10}{'scans':>8}",
            f"{'done':<10}{c['done']:>8}",
            f"{'failed':<10}{c['failed'] + self.failed_earlier:>8}"
            + (f"   ({self.failed_earlier} from earlier runs, not retried: use --retry-failed)"
               if self.failed_earlier else ""),
            f"{'skipped':<10}{c['skipped']:>8}   (done and unchanged)",
            f"time {self.wall_s:.1f} s, {self.pages} pages converted, "
            f"{self.pages_per_s:.2f} pages/s",
        ]
        if self.interrupted:
            lines.append("interrupted: rerun the same command to finish the rest")
        for rel, msg in self.failures[:max_failures]:
            lines.append(f"FAILED {rel}: {msg}")
        if len(self.failures) > max_failures:
            lines.append(f"... and {len(self.failures) - max_failures} more failures: see "
                         f"{self.index}")
        if self.manifest:
            lines.append(f"manifest {self.manifest}, index {self.index}")
        return "\n".join(lines)


@contextlib.contextmanager
def _out_dir_lock(out_dir: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchError("another batch is writing to this output folder: wait for it, "
                             "or use another -o", out_dir) from None
        yield
    finally:
        os.close(fd)


def remove_stale_temps(out_dir: Path) -> int:
    """Delete temp files a killed run left (``.name.XXXX.tmp[.ext]``); return how many."""
    n = 0
    for dirpath, _, filenames in os.walk(out_dir):
        for name in filenames:
            if _TMP_RE.match(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, name))
                    n += 1
    return n


def write_index(manifest: Manifest, out_dir: Path, keys: Iterable[str] | None = None) -> Path:
    """Write ``OUT_DIR/index.csv``: one row per (input, output, curve) with coverage.

    Columns: input, status, sha256, page, output, qc, mnemonic, coverage, error.
    An input with no output (failed) has one row with the error; a multi-page file
    with some bad pages lists its good pages' curves, with the file's status and error. ``keys`` limits it to those inputs
    (default: every row of the manifest). Written atomically.
    """
    rows = manifest.rows()
    keys = sorted(rows, key=lambda k: rows[k]["rel"]) if keys is None else \
        sorted((k for k in keys if k in rows), key=lambda k: rows[k]["rel"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["input", "status", "sha256", "page", "output", "qc", "mnemonic", "coverage",
                "error"])
    for k in keys:
        r = rows[k]
        error = r["error"] or ""
        curves = json.loads(r["curves"] or "[]")
        page_outputs = json.loads(r["page_outputs"] or "[]")
        if not page_outputs:
            w.writerow([r["rel"], r["status"], r["sha256"] or "", "", "", "", "", "", error])
        for page, files in page_outputs:
            out = next((f for f in files if not f.endswith(".qc.png")), "")
            qc = next((f for f in files if f.endswith(".qc.png")), "")
            mine = [(m, c) for p, m, c in curves if p == page] or [("", None)]
            for mn, cov in mine:
                w.writerow([r["rel"], r["status"], r["sha256"], "" if page is None else page,
                            out, qc, mn, "" if cov is None else f"{cov:.4f}", error])
    path = out_dir / INDEX_NAME
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    return path


def _model_sha(model: str | None) -> str | None:
    if model is None:
        try:
            from .segment import default_model_path  # type: ignore[attr-defined]

            model = os.fspath(default_model_path())
        except Exception:  # noqa: BLE001 - no shipped-model helper: name the default
            return "default"
    try:
        return sha256_file(model)
    except OSError:
        return None


def run_batch(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
              calibration: str | os.PathLike | None = None, workers: int | None = None,
              scheduler: Any = None, retry_failed: bool = False, rehash: bool = False,
              settings: ConvertSettings | None = None, runner: Runner | None = None,
              progress: bool = False, argv: str = "", dry_run: bool = False,
              log: Callable[[str], None] | None = None) -> BatchReport:
    """Convert every scan of ``inputs`` into ``out_dir``, resuming from its manifest.

    Parameters
    ----------
    inputs : folders, globs, list files or scans (see :func:`discover`).
    out_dir : output folder; holds the outputs, ``manifest.sqlite`` and ``index.csv``.
    calibration : template for scans without a sidecar ``scan.yaml``; None: uncalibrated.
    workers : local processes (default: CPU cores; 0: run inline in this process,
        for debugging). Ignored with ``scheduler``.
    scheduler : Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``.
    retry_failed : convert again the inputs that failed in an earlier run.
    rehash : recompute every scan's sha256 even when size and mtime are unchanged.
    settings, runner : conversion options; ``runner`` also injects the converter.
    progress : show a progress bar with ETA.
    dry_run : only plan: ``report.plan`` says what a run would do with every input;
        nothing is converted or written (the manifest is read, not changed).
    log : where one-line notes go (default: nowhere).

    Returns
    -------
    BatchReport
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir).absolute()
    if runner is None:
        runner = Runner(settings=settings or ConvertSettings())
    elif settings is not None:
        runner = dataclasses.replace(runner, settings=settings)
    s = runner.settings
    if s.fmt not in FORMAT_EXTENSIONS:
        raise BatchError(f"unknown output format {s.fmt!r}: use one of "
                         f"{', '.join(FORMAT_EXTENSIONS)}")
    template = None
    if calibration is not None:
        from .calibration import load_calibration

        load_calibration(calibration)  # a broken template stops the batch before it starts
        template = os.path.abspath(calibration)
    log = log or (lambda msg: None)

    jobs = discover(inputs, exclude=out_dir)
    if not jobs:
        raise BatchError("no scans found: give folders, globs, list files or scan files "
                         f"(scans end in {', '.join(SCAN_EXTENSIONS)})")
    if scheduler is None:
        workers = default_workers() if workers is None else max(0, int(workers))
    report = BatchReport(out_dir=out_dir, manifest=out_dir / MANIFEST_NAME)
    if dry_run:
        rows = read_manifest_rows(out_dir / MANIFEST_NAME)
        report.plan = plan_jobs(jobs, rows, out_dir, template, s.fingerprint(_model_sha(s.model)),
                                retry_failed, rehash)
        report.wall_s = time.perf_counter() - t0
        return report
    out_dir.mkdir(parents=True, exist_ok=True)
    with _out_dir_lock(out_dir):
        stale = remove_stale_temps(out_dir)
        if stale:
            log(f"removed {stale} temp file(s) left by an interrupted run")
        manifest = Manifest(out_dir / MANIFEST_NAME)
        try:
            _execute(jobs, manifest, runner, report, out_dir, template, workers, scheduler,
                     retry_failed, rehash, progress, argv, log, t0)
        finally:
            manifest.close()
    return report


def read_manifest_rows(path: str | os.PathLike) -> dict[str, sqlite3.Row]:
    """The rows of an existing manifest, read-only (``{}`` when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=60)
        db.row_factory = sqlite3.Row
        try:
            return {r["key"]: r for r in db.execute("SELECT * FROM scans")}
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise BatchError(f"manifest is not a readable SQLite file ({e})", path) from None


def _execute(jobs, manifest, runner, report, out_dir, template, workers, scheduler,
             retry_failed, rehash, progress, argv, log, t0) -> None:
    s = runner.settings
    settings_sha = s.fingerprint(_model_sha(s.model))
    plans = plan_jobs(jobs, manifest.rows(), out_dir, template, settings_sha, retry_failed,
                      rehash)
    to_do = [p for p in plans if p.action == "convert"]
    skipped = [p for p in plans if p.action == "skip"]
    report.counts["skipped"] = sum(p.why == "done and unchanged" for p in skipped)
    report.failed_earlier = len(skipped) - report.counts["skipped"]
    rows = manifest.rows()
    report.failures += [(p.job.rel, rows[p.job.key]["error"] or "") for p in skipped
                        if p.why != "done and unchanged"]
    n_tasks = sum(not (p.job.missing or p.conflict) for p in to_do)
    if scheduler is None:
        workers = min(workers, n_tasks) if workers else 0
        if s.threads is None:  # workers x threads = cores
            s = dataclasses.replace(s, threads=threads_per_worker(max(1, workers)))
            runner = dataclasses.replace(runner, settings=s)
        if n_tasks and runner.make_segmenter is not None:
            # fail fast on a bad model before any worker starts (workers load their own;
            # inline, this one is cached and used)
            if workers == 0:
                worker_segmenter(runner)
            else:
                runner.make_segmenter(s)
    run_id = report.run_id = manifest.start_run(argv, None if scheduler is None else str(scheduler),
                                                0 if scheduler else workers)
    manifest.mark_skipped(run_id, skipped)
    log(f"{len(jobs)} scans: {len(to_do)} to convert, {len(skipped)} skipped")

    by_key = {p.job.key: p for p in to_do}
    bar = None
    if progress and to_do:
        from tqdm import tqdm

        bar = tqdm(total=len(to_do), unit="scan", dynamic_ncols=True, file=sys.stderr)

    def on_result(res: dict) -> None:
        pl = by_key[res["key"]]
        if res.get("size") is None:  # crashed before the worker looked: stat it here
            with contextlib.suppress(OSError):
                st = os.stat(res["key"])
                res = {**res, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        manifest.record(run_id, pl.job, pl, res)
        report.pages += res["pages"]
        if res["status"] == "done":
            report.counts["done"] += 1
        else:
            report.counts["failed"] += 1
            report.failures.append((pl.job.rel, res["error"] or ""))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=report.counts["failed"], refresh=False)

    for p in to_do:  # failures known before converting
        if p.job.missing:
            on_result({**_crash_result(p.job.key, p.job.missing),
                       "error_type": "FileNotFoundError"})
        elif p.conflict:
            on_result({**_crash_result(p.job.key, p.conflict), "error_type": "OutputConflict"})
    tasks = [{"key": p.job.key, "out_dir": os.fspath(out_dir), "out_stem": p.job.out_stem,
              "calibration": p.calibration} for p in to_do if not (p.job.missing or p.conflict)]
    state = "finished"
    try:
        if not tasks:
            pass
        elif scheduler is not None:
            _run_dask(tasks, runner, scheduler, on_result)
        elif workers == 0:
            _run_inline(tasks, runner, on_result)
        else:
            _run_pool(tasks, runner, workers, on_result)
    except KeyboardInterrupt:
        state = "interrupted"
        report.interrupted = True
    except BaseException:
        state = "error"
        raise
    finally:
        if bar is not None:
            bar.close()
        if scheduler is None or state == "finished":
            # workers killed with a broken pool (or a Ctrl-C) leave temp files; all
            # local workers are gone now, so none of these is being written
            remove_stale_temps(out_dir)
        report.wall_s = time.perf_counter() - t0
        manifest.finish_run(run_id, state, report.counts, report.pages, report.wall_s)
        report.index = write_index(manifest, out_dir, keys=[j.key for j in jobs])
