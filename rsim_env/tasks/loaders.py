"""Load public math datasets in their own formats, from a local file or the Hugging Face Hub.

``source`` is either a local file (``.json``, ``.jsonl``/``.ndjson`` or ``.parquet``) or a Hub
dataset id such as ``"openai/gsm8k"`` or ``"HuggingFaceH4/MATH-500"``, read with
``datasets.load_dataset``. Before touching the Hub the loader checks, within a few seconds, that
the Hub endpoint (``HF_ENDPOINT``, or the HTTPS proxy if one is set) accepts connections; when it
does not, it raises :class:`~rsim_env.errors.DatasetLoadError` naming the offline alternatives
instead of letting ``datasets`` retry for minutes. With ``HF_DATASETS_OFFLINE=1`` or
``HF_HUB_OFFLINE=1`` the check is skipped and ``datasets`` reads its local cache.

Formats:

- **GSM8K**: records with ``question`` and ``answer``, where ``answer`` is the worked solution
  ending in ``#### <final answer>``. ``Task.answer`` is the final answer (thousands separators
  removed); the full solution is in ``metadata["solution"]``.
- **MATH / MATH-500**: records with ``problem`` and ``solution`` (whose last ``\\boxed{}`` holds
  the answer) and optionally ``answer`` (MATH-500 has it; it wins when present), ``level``,
  ``type`` (MATH) or ``subject`` (MATH-500) and ``unique_id``. Records with no answer anywhere are
  skipped with a warning.

Each loader returns a :class:`~rsim_env.tasks.task.TaskSuite` checked by
:class:`~rsim_env.checkers.math.MathChecker`, split into train/test by a hash of the task ids.

:func:`read_records` is the one JSON/JSONL/Parquet reader of the project; other loaders (MBPP,
CodeAlpaca, ...) reuse it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlparse

from rsim_env.checkers.answer import extract_answer
from rsim_env.checkers.math import MathChecker
from rsim_env.errors import DatasetLoadError
from rsim_env.tasks.task import Task, TaskSuite

__all__ = ["read_records", "load_gsm8k", "load_math", "LOCAL_SUFFIXES", "HUB_PROBE_TIMEOUT"]

logger = logging.getLogger(__name__)

LOCAL_SUFFIXES = (".json", ".jsonl", ".ndjson", ".parquet")
"""File suffixes read as local datasets."""

HUB_PROBE_TIMEOUT = 3.0
"""Seconds to wait for the Hub endpoint to accept a connection before giving up."""

_GSM8K_COLUMNS = ("question", "answer")
_MATH_COLUMNS = ("problem", "solution")  # "answer" too in MATH-500

_OFFLINE_HELP = (
    "Offline alternatives: pass a local file in this dataset's format (.json, .jsonl or .parquet; "
    "e.g. one saved with `datasets.load_dataset(...).to_json(path)` on a machine with access), set "
    "HF_DATASETS_OFFLINE=1 to use a copy already in the datasets cache, or use a built-in offline "
    "suite (`rsim suites` lists them; e.g. 'gsm_symbolic', 'arithmetic', 'champ' or 'humaneval').")


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a local JSON, JSONL/NDJSON or Parquet file, as a list of dicts.

    JSON may be a list of objects, an object holding such a list (``{"data": [...]}``, one key),
    or columns (``{"question": [...], "answer": [...]}``); a ``.json`` file that is really JSON
    Lines (as ``Dataset.to_json`` writes) is read as such.

    Raises:
        DatasetLoadError: the file is missing, has another suffix, or is not valid in its format
            (the message gives the line or the reason).
    """
    file = Path(path).expanduser()
    suffix = file.suffix.lower()
    if suffix not in LOCAL_SUFFIXES:
        raise DatasetLoadError(f"Cannot read {file}: unsupported file type {suffix or '(none)'!r}; "
                               f"use one of {', '.join(LOCAL_SUFFIXES)}.")
    if not file.is_file():
        raise DatasetLoadError(f"Dataset file not found: {file}.")
    if suffix == ".parquet":
        return _read_parquet(file)
    text = file.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            return _rows_from_json(json.loads(text), file)
        except json.JSONDecodeError as exc:
            if "Extra data" not in exc.msg:
                raise DatasetLoadError(f"{file} is not valid JSON: {exc}.") from None
    return _read_json_lines(text, file)


def _read_parquet(file: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetLoadError(f"Reading {file} needs pyarrow: `pip install pyarrow`.") from exc
    try:
        return pq.read_table(file).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DatasetLoadError(f"{file} is not a readable Parquet file: {exc}.") from exc


def _read_json_lines(text: str, file: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetLoadError(f"{file}, line {number}: not valid JSON ({exc.msg}).") from None
        if not isinstance(row, dict):
            raise DatasetLoadError(f"{file}, line {number}: expected a JSON object, "
                                   f"got {type(row).__name__}.")
        rows.append(row)
    return rows


def _rows_from_json(data: Any, file: Path) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(data) == 1 and lists:  # {"data": [...]}
            data = lists[0]
        elif data and len(lists) == len(data) and len({len(v) for v in lists}) == 1:  # columns
            keys = list(data)
            data = [dict(zip(keys, values, strict=True)) for values in zip(*lists, strict=True)]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise DatasetLoadError(f"{file}: expected a list of JSON objects (one per example), an "
                               "object with one such list, or an object of equal-length columns.")
    return data


def load_gsm8k(source: str | os.PathLike[str], split: str = "test", limit: int | None = None, *,
               config: str | None = "main", test_fraction: float = 0.2, split_seed: int = 0,
               timeout: float = 5.0) -> TaskSuite:
    """GSM8K as a task suite (see the module docstring for the format).

    Args:
        source: a local .json/.jsonl/.parquet file or a Hub id (e.g. ``"openai/gsm8k"``).
        split: the Hub split to load (a file is read whole); also part of the task ids.
        limit: keep only the first ``limit`` records.
        config: the Hub configuration (GSM8K's are ``"main"`` and ``"socratic"``).
        test_fraction: share of the loaded tasks in the suite's test split.
        split_seed: seed of that split.
        timeout: the math checker's per-answer timeout.
    """
    records = load_records(source, split, config, "GSM8K", limit)
    _require_columns(records, _GSM8K_COLUMNS, "GSM8K", source, other=(_MATH_COLUMNS, "load_math"))
    tasks = []
    for index, record in enumerate(records):
        solution = str(record["answer"])
        final = solution.rsplit("####", 1)[1].strip() if "####" in solution else ""
        if not final:
            raise DatasetLoadError(f"GSM8K record {index} of {source} has no '#### <final answer>' "
                                   "line in its answer field.")
        tasks.append(Task(id=f"gsm8k/{split}/{index}", prompt=str(record["question"]), kind="math",
                          answer=final.replace(",", ""),
                          metadata={"source": "gsm8k", "solution": solution}))
    return _suite("gsm8k", tasks, source, test_fraction, split_seed, timeout)


def load_math(source: str | os.PathLike[str], split: str = "test", limit: int | None = None, *,
              config: str | None = None, test_fraction: float = 0.2, split_seed: int = 0,
              timeout: float = 5.0) -> TaskSuite:
    """MATH or MATH-500 as a task suite (see the module docstring for the format).

    Args:
        source: a local .json/.jsonl/.parquet file or a Hub id (e.g.
            ``"HuggingFaceH4/MATH-500"``).
        split: the Hub split to load (a file is read whole); also part of the task ids.
        limit: keep only the first ``limit`` records.
        config: the Hub configuration, if the dataset has several.
        test_fraction: share of the loaded tasks in the suite's test split.
        split_seed: seed of that split.
        timeout: the math checker's per-answer timeout.
    """
    records = load_records(source, split, config, "MATH", limit)
    _require_columns(records, ("problem",), "MATH", source, other=(_GSM8K_COLUMNS, "load_gsm8k"))
    for index, record in enumerate(records):
        if "solution" not in record and "answer" not in record:
            raise DatasetLoadError(_columns_message(
                "MATH", source, ("problem", "solution (or answer)"), record, index))
    tasks, skipped = [], 0
    for index, record in enumerate(records):
        answer = _math_answer(record)
        if not answer:
            skipped += 1
            continue
        task_id = str(record.get("unique_id") or f"math/{split}/{index}")
        metadata = {"source": "math", "solution": record.get("solution"), "level": record.get("level"),
                    "subject": record.get("subject") or record.get("type")}
        if "unique_id" in record:
            metadata["unique_id"] = record["unique_id"]
        tasks.append(Task(id=task_id, prompt=str(record["problem"]), kind="math", answer=answer,
                          metadata=metadata))
    if skipped:
        logger.warning("Skipped %d MATH records of %s that have no answer and no \\boxed{} "
                       "in their solution.", skipped, source)
    return _suite("math", tasks, source, test_fraction, split_seed, timeout)


def _math_answer(record: Mapping[str, Any]) -> str | None:
    answer = record.get("answer")
    if isinstance(answer, str) and answer.strip():
        return answer.strip()
    solution = record.get("solution")
    extracted = extract_answer(solution) if isinstance(solution, str) else None
    return extracted.answer if extracted is not None and extracted.method == "boxed" else None


def _limited(records: Sequence[dict[str, Any]], limit: int | None) -> Sequence[dict[str, Any]]:
    if limit is None:
        return records
    if limit < 0:
        raise DatasetLoadError(f"limit must be >= 0, got {limit}.")
    return records[:limit]


def _suite(name: str, tasks: list[Task], source: Any, test_fraction: float, split_seed: int,
           timeout: float) -> TaskSuite:
    if not tasks:
        raise DatasetLoadError(f"{source} holds no usable {name} records.")
    return TaskSuite(name, tasks, MathChecker(timeout=timeout), test_fraction=test_fraction,
                     split_seed=split_seed, description=f"{name} loaded from {source}")


def _require_columns(records: Sequence[Mapping[str, Any]], expected: Sequence[str], format_name: str,
                     source: Any, other: tuple[Sequence[str], str]) -> None:
    if not records:
        raise DatasetLoadError(f"{source} holds no records.")
    for index, record in enumerate(records):
        if any(column not in record for column in expected):
            message = _columns_message(format_name, source, expected, record, index)
            other_columns, other_loader = other
            if all(column in record for column in other_columns):
                message += f" It looks like another format: try {other_loader}()."
            raise DatasetLoadError(message)


def _columns_message(format_name: str, source: Any, expected: Sequence[str],
                     record: Mapping[str, Any], index: int = 0) -> str:
    found = ", ".join(sorted(map(str, record))) or "(none)"
    return (f"{source} is not in {format_name} format: record {index} lacks expected columns "
            f"{', '.join(expected)}; found columns: {found}.")


def load_records(source: str | os.PathLike[str], split: str, config: str | None,
                 format_name: str, limit: int | None) -> Sequence[dict[str, Any]]:
    """The first ``limit`` records (all if ``None``) of a local file or a Hub dataset's ``split``.

    Every dataset loader (GSM8K, MATH, MBPP, CodeAlpaca, ...) reads through here, so they share
    the file formats, the fast offline failure and its help text.
    """
    if _looks_local(source):
        return _limited(read_records(source), limit)
    hub_split = split if limit is None else f"{split}[:{max(limit, 0)}]"  # download no more
    return _limited(_load_from_hub(str(source), hub_split, config, format_name), limit)


def _looks_local(source: str | os.PathLike[str]) -> bool:
    text = os.fspath(source)
    return (isinstance(source, os.PathLike) or Path(text).suffix.lower() in LOCAL_SUFFIXES
            or os.path.exists(text) or text.startswith((".", "/", "~")))


def _load_from_hub(dataset_id: str, split: str, config: str | None,
                   format_name: str) -> list[dict[str, Any]]:
    offline = any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
                  for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))
    if not offline:
        host, port = _hub_address()
        problem = _unreachable(host, port, HUB_PROBE_TIMEOUT)
        if problem:
            raise DatasetLoadError(
                f"Cannot load {format_name} dataset {dataset_id!r} from the Hugging Face Hub: "
                f"{host}:{port} is unreachable ({problem}). {_OFFLINE_HELP}")
    try:
        import datasets
    except ImportError as exc:
        raise DatasetLoadError(f"Loading {dataset_id!r} from the Hub needs `pip install datasets`. "
                               f"{_OFFLINE_HELP}") from exc
    try:
        with _offline_flags(offline):
            loaded = datasets.load_dataset(dataset_id, config, split=split)
    except ValueError as exc:
        if config is not None and "config" in str(exc).lower():  # e.g. MATH-500 has no "main"
            return _load_from_hub(dataset_id, split, None, format_name)
        raise DatasetLoadError(f"Could not load {dataset_id!r} (config {config!r}, split "
                               f"{split!r}) from the Hub: {exc}. {_OFFLINE_HELP}") from exc
    except Exception as exc:  # datasets raises many types (connection, missing split, cache)
        raise DatasetLoadError(f"Could not load {dataset_id!r} (config {config!r}, split "
                               f"{split!r}) from the Hub: {exc}. {_OFFLINE_HELP}") from exc
    return [dict(row) for row in loaded]


@contextlib.contextmanager
def _offline_flags(offline: bool) -> Iterator[None]:
    """Make ``datasets`` and ``huggingface_hub`` honour an offline switch set after they were imported
    (both read the environment once, at import); without it they would try the network and wait."""
    if not offline:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _hub_address() -> tuple[str, int]:
    """Where a Hub request would first connect: the HTTPS proxy if set, else ``HF_ENDPOINT``."""
    url = (os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
           or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    parsed = urlparse(url if "://" in url else f"http://{url}")
    default_port = 443 if parsed.scheme == "https" else 80
    return parsed.hostname or "huggingface.co", parsed.port or default_port


def _unreachable(host: str, port: int, timeout: float) -> str | None:
    """``None`` if ``host:port`` accepts a TCP connection within ``timeout`` seconds, else why not.

    Runs in a daemon thread because name resolution ignores socket timeouts.
    """
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(str(exc) or type(exc).__name__)

    thread = threading.Thread(target=probe, name="rsim-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g}s"

