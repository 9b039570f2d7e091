"""Run records, metric bookkeeping and result tables shared by ``grid``, ``sweep`` and ``report``.

Every run of an experiment lives in its own run directory (the trainer's ``config.yaml``,
``metrics.jsonl``, ``samples/``, ``checkpoints/``, ``log.txt``). When a run ends, its executor
writes ``result.json`` there, atomically: the *run record*. Its keys:

=================  ===============================================================================
``run_id``         the name of the run directory, e.g. ``gan-rfm-fgm-discriminator-s0``
``info``           what the experiment knows about the run (cell, loss, reg, seed, setup, method ...)
``status``         ``complete``, ``diverged`` (a loss became NaN/Inf) or ``failed`` (any other error)
``error``          the one-line error of a diverged or failed run, else ``None``
``config``         the resolved training config (``robustgan.train.config.resolve``)
``metric``         the main metric's name (``fd`` for images, ``w1`` for 2-D data unless chosen)
``direction``      ``min`` or ``max``: whether smaller or larger values of ``metric`` are better
``final``          the main metric at the last step (``None`` if there is no evaluation there)
``best``           ``{"value", "step"}``: the best main-metric value over all evaluations
``metrics``        every metric of the final evaluation (``{}`` if none)
``step``           the last step the run reached; ``resumed_from``: the step it restarted at
``wall_time``      seconds this (last) attempt took; ``note``: e.g. why evaluation was skipped
=================  ===============================================================================

Tables (:class:`Table`) are plain data rendered to Markdown or to HTML, so ``table.md`` and
``report.html`` show the same numbers.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import atomic_open
from ..metrics.registry import frechet_key, metric_directions

__all__ = [
    "RESULT_FILE",
    "STATUSES",
    "METRIC_DIRECTION",
    "metric_direction",
    "default_metric",
    "write_json_atomic",
    "read_json",
    "read_result",
    "write_result",
    "read_metrics",
    "eval_rows",
    "numeric",
    "best_of",
    "final_metrics",
    "mean_std",
    "format_value",
    "format_mean_std",
    "Table",
]

RESULT_FILE = "result.json"
STATUSES = ("complete", "diverged", "failed")

#: Whether a smaller ("min") or larger ("max") value of a metric is better: every output key and
#: metric name with a direction in the metric registry (robustgan.metrics.registry).
METRIC_DIRECTION = metric_directions()


def metric_direction(name: str) -> str:
    """``"min"`` if smaller values of metric ``name`` are better, ``"max"`` if larger are.

    Raises ValueError for a metric not in :data:`METRIC_DIRECTION`.
    """
    if name not in METRIC_DIRECTION:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRIC_DIRECTION)}")
    return METRIC_DIRECTION[name]


def default_metric(cfg: dict) -> str:
    """The main metric of a run: ``w1`` (Wasserstein-1 to the true mixture) for 2-D toy data, else
    the Frechet distance under the key evaluation writes for the run's feature space: ``fid`` for
    Inception (``log.extractor`` inception, or auto on colour data), ``fd`` for the classifier."""
    from ..data.toy import TOY_DATASETS

    if cfg["data"]["name"] in TOY_DATASETS:
        return "w1"
    extractor = cfg["log"].get("extractor", "auto")
    if extractor == "auto":  # mirrors train.evaluation.resolve_extractor: MNIST-like sets are 1-channel
        extractor = "classifier" if cfg["data"]["name"] in ("mnist", "fashion-mnist") else "inception"
    return frechet_key(extractor)


# ---------------------------------------------------------------------------------------------- files
def write_json_atomic(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` via a temporary file and ``os.replace``.

    A reader never sees a half-written file, and a crash leaves the previous version intact.
    Non-finite floats are written as the strings ``"nan"`` / ``"inf"`` / ``"-inf"`` (valid JSON).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(obj), indent=1, sort_keys=False) + "\n"
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return path


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read_json(path: str | Path):
    """Parse a JSON file; a missing file raises FileNotFoundError, a corrupt one ValueError (one line)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); delete it to redo the run") from None


def read_result(run_dir: str | Path) -> dict | None:
    """The run record in ``run_dir/result.json``, or ``None`` if the run has not finished."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return read_json(path)


def write_result(run_dir: str | Path, record: dict) -> Path:
    """Write a run record atomically to ``run_dir/result.json``."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"run record status must be one of {STATUSES}, got {record.get('status')!r}")
    return write_json_atomic(Path(run_dir) / RESULT_FILE, record)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All rows of ``run_dir/metrics.jsonl`` (``[]`` if missing); a torn last line is skipped."""
    from ..fileio import read_jsonl
    return read_jsonl(Path(run_dir) / "metrics.jsonl")


def eval_rows(rows: list[dict]) -> list[dict]:
    """The evaluation rows (``kind == "eval"``) of :func:`read_metrics`, in step order."""
    return sorted((r for r in rows if r.get("kind") == "eval"), key=lambda r: r.get("step", 0))


def numeric(value) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, NaN/Inf, "nan" strings, non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def best_of(rows: list[dict], metric: str, direction: str) -> dict:
    """The best finite value of ``metric`` over ``rows``: ``{"value": float | None, "step": int | None}``.

    ``direction`` is ``"min"`` or ``"max"``; ties go to the earliest step.
    """
    best = {"value": None, "step": None}
    for row in rows:
        v = numeric(row.get(metric))
        if v is None:
            continue
        if best["value"] is None or (v < best["value"] if direction == "min" else v > best["value"]):
            best = {"value": v, "step": int(row.get("step", 0))}
    return best


def final_metrics(rows: list[dict], final_step: int) -> dict:
    """The evaluation at ``final_step`` (without bookkeeping keys), or ``{}`` if there is none."""
    at_end = [r for r in eval_rows(rows) if r.get("step") == final_step]
    if not at_end:
        return {}
    return {k: v for k, v in at_end[-1].items() if k not in ("step", "kind", "time")}


# --------------------------------------------------------------------------------------------- numbers
def mean_std(values) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (ddof = 1) of the finite values; ``(mean, std, n)``.

    ``std`` is ``None`` for fewer than two values, ``mean`` is ``None`` for none.
    """
    xs = [v for v in (numeric(v) for v in values) if v is not None]
    n = len(xs)
    if n == 0:
        return None, None, 0
    mean = sum(xs) / n
    if n < 2:
        return mean, None, n
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)), n


def format_value(v: float | None, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (``"n/a"`` for ``None``)."""
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits or abs(v) < 1e-3:
        return f"{v:.{max(1, digits - 1)}e}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{decimals}f}"


def format_mean_std(mean: float | None, std: float | None, n: int, total: int) -> str:
    """``"24.06 ± 0.31"``; ``" (2/3)"`` appended when only ``n`` of ``total`` runs gave a value;
    ``"failed (0/3)"`` when none did."""
    if mean is None:
        return f"failed (0/{total})"
    text = format_value(mean)
    if std is not None:
        text += f" ± {format_value(std, 2)}"
    if n < total:
        text += f" ({n}/{total})"
    return text


# ---------------------------------------------------------------------------------------------- tables
@dataclass
class Table:
    """A result table: a title, a header row, body rows (strings) and an optional note.

    ``bold`` holds (row, column) indices of body cells to emphasise (the best value of a row).
    """

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    bold: set = field(default_factory=set)

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown: ``### title``, the table, then the note."""
        def cell(i, j, text):
            text = str(text).replace("|", "\\|")
            return f"**{text}**" if (i, j) in self.bold else text

        lines = [f"### {self.title}", ""] if self.title else []
        lines.append("| " + " | ".join(str(h) for h in self.header) + " |")
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        for i, row in enumerate(self.rows):
            lines.append("| " + " | ".join(cell(i, j, c) for j, c in enumerate(row)) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """An HTML ``<table>`` with a ``<caption>`` (escaped; no styles of its own)."""
        esc = html.escape
        out = ["<table>"]
        if self.title:
            out.append(f"<caption>{esc(self.title)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in self.header) + "</tr></thead><tbody>")
        for i, row in enumerate(self.rows):
            cells = []
            for j, c in enumerate(row):
                tag = "th" if j == 0 else "td"
                text = esc(str(c))
                cells.append(f"<{tag}><b>{text}</b></{tag}>" if (i, j) in self.bold else f"<{tag}>{text}</{tag}>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        if self.note:
            out.append(f'<p class="note">{esc(self.note)}</p>')
        return "\n".join(out)
