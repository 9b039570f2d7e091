"""Run outputs: metrics.jsonl, TensorBoard events, image grids, log.txt."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..fileio import atomic_open
from ..options import flatten


def image_grid(images_uint8: torch.Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """A Pillow image tiling uint8 images ``(N, C, H, W)`` (C = 1 or 3) into a grid."""
    x = images_uint8.detach().cpu()
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = torch.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i]
    arr = grid.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")


def save_grid(images_uint8: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images_uint8, nrow).save(path)
    return path


def scatter_figure(points: torch.Tensor, centers: torch.Tensor | None = None, real: torch.Tensor | None = None,
                   title: str = ""):
    """A matplotlib ``Figure`` of 2-D samples ``(N, 2)`` over the real data and the mode centres.

    Built with ``matplotlib.figure.Figure`` (no pyplot, no global backend change), so library
    code and notebooks that chose their own backend are left alone.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.subplots()
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:gray", alpha=0.4, label="data")
    ax.scatter(points[:, 0].cpu(), points[:, 1].cpu(), s=2, c="tab:blue", alpha=0.6, label="samples")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], s=30, c="tab:red", marker="x", label="modes")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def save_scatter(points: torch.Tensor, path: str | Path, centers: torch.Tensor | None = None,
                 real: torch.Tensor | None = None, title: str = "") -> Path:
    """Scatter plot of 2-D samples (and the real data / mode centres) as PNG; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scatter_figure(points, centers, real, title).savefig(path)
    return path


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib ``Figure`` to a uint8 RGB array ``(H, W, 3)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


#: Evaluation values that are bookkeeping, not curves: kept in metrics.jsonl, not sent to TensorBoard.
NOT_CURVES = frozenset({"n_fake", "n_ref", "num_modes"})


def _hparam_value(v):
    """A value TensorBoard's hparams plugin accepts (bool, number or string)."""
    if isinstance(v, bool) or (isinstance(v, (int, float)) and math.isfinite(v)) or isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


def _keep_row(line: bytes, step: int) -> bool:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False  # a line torn by a kill
    return isinstance(row, dict) and isinstance(row.get("step", 0), (int, float)) and row.get("step", 0) <= step


class RunLogger:
    """Writes ``metrics.jsonl`` (one JSON object per report), TensorBoard scalars and ``log.txt``.

    On start (``resume_step``) and on :meth:`rewind`, reports after the restored step are dropped
    from ``metrics.jsonl`` (rewritten atomically) and hidden in TensorBoard (a purge), so a resumed
    or rolled-back run never shows a step twice.
    """

    def __init__(self, run_dir: str | Path, *, resume_step: int = 0, tensorboard: bool = True, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self._truncate_after(resume_step)
        if tensorboard:
            self._open_tensorboard(resume_step)

    def _open_tensorboard(self, step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
            # Events at the restored step itself were logged before its checkpoint was written and
            # stay; those after it are purged (TensorBoard hides events with step >= purge_step).
            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=step + 1 if step else None)
        except Exception as exc:  # TensorBoard missing or broken: log files still work
            self.tb = None
            self.text(f"tensorboard disabled: {exc}")

    def _truncate_after(self, step: int) -> None:
        """Drop reports written after ``step`` (and lines torn by a kill) from ``metrics.jsonl``.

        The file is streamed, never read whole, and rewritten through a temporary file renamed
        over it, so a kill at any moment leaves either the old file or the new one. A file with
        nothing to drop is left untouched.
        """
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, "rb") as src:
            clean = all(line.endswith(b"\n") and _keep_row(line, step) for line in src)
        if clean:
            return
        with open(self.metrics_path, "rb") as src, atomic_open(self.metrics_path, "wb") as dst:
            for line in src:
                if _keep_row(line, step):
                    dst.write(line if line.endswith(b"\n") else line + b"\n")

    def rewind(self, step: int) -> None:
        """Forget every report after ``step`` (e.g. a NaN rollback to the checkpoint at ``step``).

        ``metrics.jsonl`` is truncated atomically and TensorBoard reopened with a purge, so the
        steps trained again after the rollback appear once.
        """
        if not self.enabled:
            return
        self._truncate_after(step)
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self._open_tensorboard(step)

    def scalars(self, step: int, values: dict, kind: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "kind": kind, "time": round(time.time(), 3)}
        record.update({k: _jsonable(v) for k, v in values.items()})
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if k in NOT_CURVES:
                    continue
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def image(self, tag: str, images_uint8: torch.Tensor, step: int) -> None:
        """A grid of uint8 images ``(N, C, H, W)`` in TensorBoard."""
        if self.enabled and self.tb is not None:
            grid = np.asarray(image_grid(images_uint8))
            self.tb.add_image(tag, grid if grid.ndim == 3 else grid[:, :, None], step, dataformats="HWC")

    def figure(self, tag: str, fig, step: int) -> None:
        """A matplotlib ``Figure`` (e.g. :func:`scatter_figure` of a 2-D run) in TensorBoard."""
        if self.enabled and self.tb is not None:
            self.tb.add_image(tag, figure_to_array(fig), step, dataformats="HWC")

    def image_file(self, tag: str, path: str | Path, step: int) -> None:
        """An image file (e.g. the PNG :func:`save_scatter` wrote) in TensorBoard."""
        if self.enabled and self.tb is not None:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
            self.tb.add_image(tag, arr, step, dataformats="HWC")

    def hparams(self, cfg: dict, metrics: dict | None = None) -> None:
        """Record the run's settings for TensorBoard's HPARAMS tab, with ``metrics`` as its columns.

        ``cfg`` is flattened to dotted keys (``reg.name``, ``model.width``); each numeric entry of
        ``metrics`` (an evaluation's result, e.g. ``{"fd": 79.1}``) becomes the column ``eval/KEY``,
        whose values TensorBoard reads from the ``eval/KEY`` scalars :meth:`scalars` wrote. Call it
        once per run, when the final metrics are known.
        """
        if not (self.enabled and self.tb is not None):
            return
        from torch.utils.tensorboard.summary import hparams

        hp = {k: _hparam_value(v) for k, v in flatten(cfg).items()}
        columns = {f"eval/{k}": float(v) for k, v in (metrics or {}).items()
                   if k not in NOT_CURVES and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v)}
        writer = self.tb._get_file_writer()
        for summary in hparams(hp, columns):
            writer.add_summary(summary)
        self.tb.flush()

    def text(self, message: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.run_dir / "log.txt", "a") as fh:
            fh.write(f"[{stamp}] {message}\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None


def _jsonable(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
