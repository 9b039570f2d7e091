"""Run outputs: metrics.jsonl, TensorBoard events, image grids, log.txt."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


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


def save_scatter(points: torch.Tensor, path: str | Path, centers: torch.Tensor | None = None,
                 real: torch.Tensor | None = None, title: str = "") -> Path:
    """Scatter plot of 2-D samples (and the real data / mode centres) as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:gray", alpha=0.4, label="data")
    ax.scatter(points[:, 0].cpu(), points[:, 1].cpu(), s=2, c="tab:blue", alpha=0.6, label="samples")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], s=30, c="tab:red", marker="x", label="modes")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class RunLogger:
    """Writes ``metrics.jsonl`` (one JSON object per report), TensorBoard scalars and ``log.txt``."""

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
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_step if resume_step else None)
            except Exception as exc:  # TensorBoard missing or broken: log files still work
                self.text(f"tensorboard disabled: {exc}")

    def _truncate_after(self, step: int) -> None:
        """On resume, drop reports written after the checkpoint we resume from."""
        if not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue
        self.metrics_path.write_text("".join(k + "\n" for k in kept))

    def scalars(self, step: int, values: dict, kind: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "kind": kind, "time": round(time.time(), 3)}
        record.update({k: _jsonable(v) for k, v in values.items()})
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def image(self, tag: str, images_uint8: torch.Tensor, step: int) -> None:
        if self.enabled and self.tb is not None:
            grid = np.asarray(image_grid(images_uint8))
            self.tb.add_image(tag, grid if grid.ndim == 3 else grid[:, :, None], step, dataformats="HWC")

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


def _jsonable(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
