"""The training loop: discriminator and generator phases, EMA, checkpoints, logging, resume.

One :class:`Trainer` runs one configuration (see :mod:`robustgan.train.config`). Everything that
varies from step to step is either derived from the step counter (learning-rate decay, instance
noise, the data order) or saved in the checkpoint (networks, EMA, optimisers, random states), so
a run killed at any point and resumed from its last checkpoint ends with the same weights as a
run that was never interrupted.
"""
from __future__ import annotations

import contextlib
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..data.toy import TOY_DATASETS
from ..hardware import describe_machine, resolve_amp, resolve_channels_last, resolve_threads
from ..objectives import get_objective
from ..ranges import range_to_uint8, uint8_to_range
from ..regularizers import discriminator_robustness
from . import checkpoint as ckpt
from . import rundir
from .batches import BatchSource
from .build import build_networks, build_regularizer, scaled_delta as _scaled_delta
from .distributed import DistContext
from .logging import RunLogger, save_grid, save_scatter
from .phases import DiscriminatorLoss, GeneratorLoss


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the message says which checkpoint is intact."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return dev


def load_training_data(cfg: dict):
    """The run's data: a toy distribution or an image data set (uint8)."""
    d = cfg["data"]
    if d["name"] in TOY_DATASETS:
        from ..data.toy import get_toy
        return get_toy(d["name"])
    from ..data import load_dataset
    ds = load_dataset(d["name"], root=d["root"], split=d["split"], img_size=d["img_size"], download=d["download"])
    if getattr(ds, "images", None) is None and hasattr(ds, "preload") and len(ds) <= 60000:
        ds = ds.preload()
    return ds


def _user_data(data):
    """Users' data: a toy distribution (with ``sample(n, generator=...)``) or images (see robustgan.data.user)."""
    if callable(getattr(data, "sample", None)) and not hasattr(data, "__getitem__"):
        return data
    from ..data.user import as_image_dataset
    return as_image_dataset(data)


def _check_user_models(G: nn.Module, D: nn.Module, cfg: dict) -> tuple[nn.Module, nn.Module]:
    """Users' own networks: G needs ``z_dim``; robust feature matching needs D's features and w.

    A D without ``features``/``last_linear`` is adapted with :func:`robustgan.adapters.robust_discriminator`
    (its last Linear(F, 1) or Conv2d(C, 1, k) is w, the input of that layer is phi); the adapter
    holds the user's own module, so training it trains theirs.
    """
    if not isinstance(getattr(G, "z_dim", None), int):
        raise ValueError(f"{type(G).__name__} has no integer attribute z_dim (the size of its input noise); "
                         "set G.z_dim = 128 (or your size) before training")
    from ..adapters import robust_discriminator
    return G, robust_discriminator(D)


class Trainer:
    """Trains one configuration in ``run_dir``; resumes from the last checkpoint there.

    Args:
        cfg: a resolved config (:func:`robustgan.train.config.resolve`).
        run_dir: output folder (config.yaml, metrics.jsonl, log.txt, tb/, samples/, checkpoints/).
        resume: continue from the latest checkpoint in ``run_dir`` if there is one.
    """

    def __init__(self, cfg: dict, run_dir: str | Path, resume: bool = True, dist: DistContext | None = None, *,
                 G: nn.Module | None = None, D: nn.Module | None = None, data=None):
        if (G is None) != (D is None):
            raise ValueError("pass both G and D (your own pair of networks), or neither")
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = dist or DistContext.from_env()
        t, o = cfg["train"], cfg["optim"]
        # Precision, memory format and threads follow the machine unless set (robustgan.hardware);
        # the choices and their reasons go to run.json and log.txt.
        threads, why_threads = resolve_threads(t["threads"])
        if threads:
            torch.set_num_threads(threads)
        self.device = self.dist.device if self.dist.enabled else resolve_device(t["device"])
        self.amp, why_amp = resolve_amp(t["amp"], self.device)
        if self.amp and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("train.amp=bf16 but this GPU has no bf16 support; use train.amp=none")

        torch.manual_seed(cfg["seed"])  # the same initial weights on every process
        self.user_data = data is not None
        self.data = load_training_data(cfg) if data is None else _user_data(data)
        self.toy = not hasattr(self.data, "channels")
        self.channels_last, why_cl = (False, "channels_last: 2-D data") if self.toy else \
            resolve_channels_last(t["channels_last"], self.device, cfg["model"]["arch"], bf16=self.amp)
        self.resolved = {"amp": "bf16" if self.amp else "none", "channels_last": self.channels_last,
                         "threads": torch.get_num_threads(), "device": str(self.device),
                         "reasons": [why_amp, why_cl, why_threads]}
        if G is None:
            self.G, self.D = build_networks(cfg, self.data)
        else:
            self.G, self.D = _check_user_models(G, D, cfg)
        self.G.to(self.device)
        self.D.to(self.device)
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.G_ema = None
        if t["ema"] > 0:
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (o["beta1"], o["beta2"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o["lr_g"], betas=betas, weight_decay=o["weight_decay"])
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o["lr_d"], betas=betas, weight_decay=o["weight_decay"])
        self.objective = get_objective(cfg["loss"])
        self.reg = build_regularizer(cfg)
        self.robust_delta = _scaled_delta(cfg)
        self.batches = BatchSource(self.data, t["batch_size"], cfg["seed"], self.dist.rank, self.dist.world,
                                   cfg["data"]["workers"], pin_memory=self.device.type == "cuda")
        self.step = 0        # generator steps done
        self.d_iter = 0      # discriminator steps done
        self.lr_scale = 1.0  # lowered by NaN rollbacks
        self.rollbacks = 0
        self.last_checkpoint: Path | None = None
        self.window = StatsWindow(self.device)
        self.is_main = self.dist.rank == 0
        self._lock = None
        if self.is_main:
            # One process per run folder; anything a killed atomic write left there is a leftover.
            rundir.prepare_run_dir(self.run_dir)
            self._lock = rundir.RunLock(self.run_dir).acquire()
            for leftover in ckpt.clean_temporaries(self.run_dir):
                print(f"robustgan: removed {leftover}, left by a killed write", file=sys.stderr)
        if self.dist.enabled:
            self.dist.broadcast_module(self.G)
            self.dist.broadcast_module(self.D)
            if self.G_ema is not None:
                self.G_ema.load_state_dict(self.G.state_dict())
        # per-process randomness for noise vectors, instance noise, penalties
        torch.manual_seed(cfg["seed"] * 1000 + 1 + self.dist.rank)
        g = torch.Generator().manual_seed(cfg["seed"] + 12345)
        self.fixed_z = torch.randn(64, self.G.z_dim, generator=g).to(self.device)
        if resume and (latest := ckpt.latest_checkpoint(self.run_dir)) is not None:
            state = ckpt.load_checkpoint(latest, map_location=self.device)
            if isinstance(state.get("config"), dict):
                rundir.refuse_changes(self.run_dir, state["config"], cfg)
            self.load_state(state, path=latest)
            self.last_checkpoint = latest
        self.logger = RunLogger(self.run_dir, resume_step=self.step, tensorboard=cfg["log"]["tensorboard"],
                                enabled=self.is_main)
        if self.is_main:
            rundir.write_config(self.run_dir, cfg)
            self._write_run_json()

    def _write_run_json(self) -> None:
        """run.json: what this machine resolved the ``auto`` settings to, and why (rewritten at each start)."""
        import json
        from ..fileio import atomic_open
        info = dict(self.resolved, machine=describe_machine(), world_size=self.dist.world,
                    effective_batch_size=self.cfg["train"]["batch_size"] * self.dist.world)
        with atomic_open(self.run_dir / "run.json", "w") as fh:
            json.dump(info, fh, indent=2)
        for reason in self.resolved["reasons"]:
            self.logger.text(reason)
            if reason.startswith("warning:"):
                print(f"robustgan: {reason}", file=sys.stderr)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "format": "robustgan-checkpoint-1",
            "step": self.step, "d_iter": self.d_iter, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": self.dist.gather_objects(ckpt.rng_state()),
            "config": self.cfg,
            "log_window": self.window.state_dict(),
            "data_shape": {"img_size": getattr(self.data, "img_size", None),
                           "channels": getattr(self.data, "channels", None)},
        }

    def load_state(self, state: dict, path: str | Path = "checkpoint") -> None:
        if state.get("format") != "robustgan-checkpoint-1":
            raise ValueError(f"{path}: not a robustgan training checkpoint")
        nets = [("G", self.G), ("D", self.D)] + ([("G_ema", self.G_ema)] if self.G_ema is not None
                                                 and state.get("G_ema") is not None else [])
        for name, net in nets:
            ckpt.load_module_state(net, state[name], name=name, path=path, saved_cfg=state.get("config"), cfg=self.cfg)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step, self.d_iter = int(state["step"]), int(state["d_iter"])
        self.lr_scale, self.rollbacks = float(state["lr_scale"]), int(state["rollbacks"])
        self.window.load_state_dict(state.get("log_window"))
        rng = state["rng"]
        if len(rng) == self.dist.world:
            ckpt.set_rng_state(rng[self.dist.rank])

    def save(self) -> Path | None:
        state = self.state_dict()  # every process takes part (RNG states are gathered)
        if not self.is_main:
            return None
        self.last_checkpoint = ckpt.save_checkpoint(self.run_dir, self.step, state, keep=self.cfg["log"]["keep"])
        return self.last_checkpoint

    # ------------------------------------------------------------------ helpers
    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _to_model(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True)
        if self.toy:
            return x.float()
        x = uint8_to_range(x, self.cfg["model"]["out_range"])
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _set_lr(self) -> None:
        o = self.cfg["optim"]
        frac = 1.0
        if o["lr_decay"] == "linear":
            frac = max(0.0, 1.0 - self.step / self.cfg["train"]["steps"])
        for opt, lr in ((self.opt_g, o["lr_g"]), (self.opt_d, o["lr_d"])):
            for group in opt.param_groups:
                group["lr"] = lr * frac * self.lr_scale

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, device=self.device)

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        t = self.cfg["train"]
        # Warm-up: the decay grows as (1 + step) / (10 + step) up to train.ema, so the average
        # does not keep the random initial weights for thousands of steps in a short run.
        decay = min(t["ema"], (1.0 + self.step) / (10.0 + self.step)) if self.step >= t["ema_start"] else 0.0
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(p.detach(), 1.0 - decay)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)  # batch-norm statistics follow the trained G

    # ------------------------------------------------------------------ phases
    def d_step(self) -> dict:
        """One discriminator step; returns detached statistics and the (clean) fake batch."""
        real = self._to_model(self.batches.batch(self.d_iter))
        with torch.no_grad(), self.autocast():
            fake = self.G(self._z(self.cfg["train"]["batch_size"])).float()
        if real.dim() == 4 and real.is_contiguous(memory_format=torch.channels_last):
            fake = fake.contiguous(memory_format=torch.channels_last)  # D sees one memory format
        self.D.requires_grad_(True)
        loss_fn = DiscriminatorLoss(self.D, self.objective, self.reg, self.cfg["reg"]["every"], self.autocast)
        loss, stats = loss_fn(real, fake, self.d_iter)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.D)
        self.opt_d.step()
        self.d_iter += 1
        return {**stats, "fake": fake}

    def g_step(self) -> dict:
        """One generator step (D frozen); returns the detached loss."""
        loss_fn = GeneratorLoss(self.D, self.objective, self.reg, self.autocast)
        # a loss whose generator term needs real data (rpgan) reuses the last D step's batch
        real = self._to_model(self.batches.batch(max(self.d_iter - 1, 0))) if loss_fn.needs_real else None
        self.D.requires_grad_(False)  # no parameter gradients for D in the generator phase
        with self.autocast():
            fake = self.G(self._z(self.cfg["train"]["batch_size"]))
        loss = loss_fn(fake, real, self.d_iter)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.G)
        self.opt_g.step()
        self.D.requires_grad_(True)
        return {"loss_g": loss.detach()}

    # ------------------------------------------------------------------ outputs
    def sample(self, z: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        """Generated samples in the model's range (images) or data units (2-D)."""
        G = self.G_ema if (ema and self.G_ema is not None) else self.G
        was_training = G.training
        G.eval()
        with torch.no_grad(), self.autocast():
            out = G(self.fixed_z if z is None else z).float()
        G.train(was_training)
        return out

    def write_samples(self) -> Path | None:
        if not self.is_main:
            return None
        folder = self.run_dir / "samples"
        out = self.sample()
        name = f"step-{self.step:08d}.png"
        if self.toy:
            g = torch.Generator().manual_seed(7)
            z = torch.randn(1000, self.G.z_dim, generator=g).to(self.device)
            pts = self.sample(z).cpu()
            real = self.data.sample(1000, generator=torch.Generator().manual_seed(8))
            path = save_scatter(pts, folder / name, getattr(self.data, "centers", None), real, f"step {self.step}")
            self.logger.image_file("samples", path, self.step)
        else:
            imgs = range_to_uint8(out, self.cfg["model"]["out_range"]).cpu()
            path = save_grid(imgs, folder / name, nrow=8)
            self.logger.image("samples", imgs, self.step)
        (folder / "latest.png").write_bytes(path.read_bytes())
        return path

    def evaluate(self) -> dict:
        """Sample quality metrics of the EMA generator (rank 0; see robustgan.metrics)."""
        from .evaluation import evaluate_generator
        return evaluate_generator(self, n=self.cfg["log"]["eval_n"])

    # ------------------------------------------------------------------ main loop
    def fit(self) -> dict:
        cfg, t, lg = self.cfg, self.cfg["train"], self.cfg["log"]
        steps = t["steps"]
        if self.step >= steps:
            self.logger.text(f"nothing to train: run already at step {self.step} of {steps}")
            result = {"step": self.step, "status": "complete"}
            if (lg["eval_at_end"] or lg["eval_every"]) and not self._has_eval_at(self.step):
                result["metrics"] = self._log_eval()  # e.g. killed during its final evaluation
            return result
        self.logger.text(f"{'resuming at' if self.step else 'starting'} step {self.step} of {steps} on {self.device}"
                         + (f" ({self.dist.world} processes)" if self.dist.enabled else ""))
        bar = None
        if self.is_main and lg["progress"]:
            from tqdm import tqdm
            bar = tqdm(total=steps, initial=self.step, desc=f"{cfg['loss']}+{cfg['reg']['name']}", unit="step",
                       dynamic_ncols=True)
        window = self.window
        t0 = time.perf_counter()
        last_d = None
        stop = rundir.StopSignals()
        try:
            stop.__enter__()
            while self.step < steps:
                self._set_lr()
                for _ in range(cfg["optim"]["d_steps"]):
                    last_d = self.d_step()
                    for k in ("loss_d", "penalty", "d_real", "d_fake"):
                        window.add(k, last_d[k], self.step)
                g = self.g_step()
                window.add("loss_g", g["loss_g"], self.step)
                self.step += 1
                self._update_ema()
                window.steps += 1
                if bar is not None:
                    bar.update(1)
                log_now = self.step % lg["every"] == 0 or self.step == steps
                samples_now = self.step % lg["samples_every"] == 0 or self.step == steps
                eval_now = bool(lg["eval_every"]) and self.step % lg["eval_every"] == 0 and self.step != steps
                ckpt_now = self.step % lg["checkpoint_every"] == 0 or self.step == steps
                if log_now or samples_now or eval_now or ckpt_now:
                    # The only host synchronisation of the loop: losses are checked here, so a NaN
                    # is seen at most this many steps late and no checkpoint ever holds one.
                    self._check_finite(window)
                if log_now:
                    window.seconds += time.perf_counter() - t0
                    report = window.means()
                    report["robustness"] = discriminator_robustness(self.D, last_d["fake"], self.robust_delta)
                    report["step_time"] = window.seconds / max(1, window.steps)
                    report["lr_d"] = self.opt_d.param_groups[0]["lr"]
                    report["lr_g"] = self.opt_g.param_groups[0]["lr"]
                    self.logger.scalars(self.step, report)
                    if bar is not None:
                        bar.set_postfix(loss_d=f"{report['loss_d']:.3f}", loss_g=f"{report['loss_g']:.3f}")
                    window.reset()
                    t0 = time.perf_counter()
                if samples_now:
                    self.write_samples()
                if eval_now:
                    self._log_eval()
                if ckpt_now:
                    self.dist.sync_buffers(self.G)
                    self.dist.sync_buffers(self.D)
                    window.seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.save()
                if self.step < steps and self._stop_requested(stop):
                    if not ckpt_now:
                        self._check_finite(window)
                    return self._stop(stop, saved_now=ckpt_now)
        except _Rollback:
            if bar is not None:
                bar.close()
            stop.__exit__(None, None, None)  # before the resumed fit() installs its own handlers
            return self._rollback_and_continue()
        finally:
            if bar is not None:
                bar.close()
            stop.__exit__(None, None, None)
        result = {"step": self.step, "status": "complete"}
        if lg["eval_at_end"] or lg["eval_every"]:
            result["metrics"] = self._log_eval()
            if isinstance(result["metrics"], dict) and "skipped" not in result["metrics"]:
                self.logger.hparams(self.cfg, result["metrics"])
        self.logger.text(f"finished at step {self.step}")
        self.logger.close()
        return result

    def _stop_requested(self, stop) -> bool:
        """Whether SIGINT/SIGTERM arrived; with several processes, all stop at the same step."""
        flag = bool(stop.requested)
        if self.dist.enabled:
            import torch.distributed as tdist
            t = torch.tensor([1.0 if flag else 0.0], device=self.device)
            tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
            flag = bool(t.item())
        return flag

    def _stop(self, stop, saved_now: bool) -> dict:
        """Stop after a signal: write a checkpoint of the finished step (if not written just now) and say so."""
        if not saved_now:
            self.dist.sync_buffers(self.G)
            self.dist.sync_buffers(self.D)
            self.save()
        signum = int(stop.requested or 15)
        self.logger.text(f"stopped by {stop.name or 'a signal'} at step {self.step}; checkpoint {self.last_checkpoint}")
        self.logger.close()
        return {"step": self.step, "status": "stopped", "signal": signum, "checkpoint": self.last_checkpoint}

    def close(self) -> None:
        """Close the logs and release the run folder (the command line calls this; so should scripts)."""
        if getattr(self, "logger", None) is not None:
            self.logger.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _has_eval_at(self, step: int) -> bool:
        from ..fileio import read_jsonl
        return any(row.get("kind") == "eval" and row.get("step") == step
                   for row in read_jsonl(self.run_dir / "metrics.jsonl"))

    def _log_eval(self) -> dict:
        if not self.is_main:
            return {}
        try:
            metrics = self.evaluate()
        except Exception as exc:  # a failed evaluation must not fail a finished training run
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self.logger.text(f"evaluation skipped: {msg}")
            return {"skipped": msg}
        self.logger.scalars(self.step, metrics, kind="eval")
        return metrics

    def _check_finite(self, window: "StatsWindow") -> None:
        bad = window.first_nonfinite()
        if bad is None:
            return
        name, value, at = bad
        where = f"{self.last_checkpoint}" if self.last_checkpoint else "none written yet"
        rollback = self.cfg["train"]["on_nan"] == "rollback"
        if rollback and self.last_checkpoint is not None and self.rollbacks < self.cfg["train"]["max_rollbacks"]:
            self.logger.text(f"{name} became {value} at step {at} (seen at step {self.step}); rolling back to {where}")
            raise _Rollback()
        if rollback:
            advice = (f"the last checkpoint is intact ({where}); {self.rollbacks} of train.max_rollbacks="
                      f"{self.cfg['train']['max_rollbacks']} rollbacks were used. Lower the learning rates "
                      f"(optim.lr_d / optim.lr_g) or strengthen the regulariser")
        else:
            advice = (f"the last good checkpoint ({where}) is intact. Lower the learning rates (optim.lr_d / "
                      f"optim.lr_g), strengthen the regulariser, or set train.on_nan=rollback")
        msg = f"{name} became {value} at step {at}; the run stopped and {advice}"
        self.logger.text(msg)
        self.logger.close()
        raise TrainingDiverged(msg)

    def _rollback_and_continue(self) -> dict:
        rollbacks, lr_scale = self.rollbacks + 1, self.lr_scale * 0.5
        self.load_state(ckpt.load_checkpoint(self.last_checkpoint, map_location=self.device), path=self.last_checkpoint)
        self.rollbacks, self.lr_scale = rollbacks, lr_scale
        self.logger.rewind(self.step)
        self.logger.text(f"rolled back to step {self.step}; learning rates scaled by {self.lr_scale}")
        return self.fit()


class StatsWindow:
    """Training statistics since the last log tick, summed on the training device.

    Adding a value is a device operation (no host synchronisation); :meth:`means` and
    :meth:`first_nonfinite` read everything back in one transfer at a log tick. The window is
    saved in checkpoints, so a run resumed between two ticks logs the same averages as a run
    that was never interrupted.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.first_bad: dict[str, torch.Tensor] = {}  # per key: first step with a non-finite value, or -1
        self.steps = 0
        self.seconds = 0.0

    def add(self, key: str, value: torch.Tensor | None, step: int) -> None:
        if value is None:
            return
        v = value.detach().float().reshape(())
        if key in self.sums:
            self.sums[key] = self.sums[key] + v
            self.counts[key] += 1
        else:
            self.sums[key] = v.clone()
            self.counts[key] = 1
            self.first_bad[key] = torch.full((), -1, dtype=torch.long, device=v.device)
        fb = self.first_bad[key]
        self.first_bad[key] = torch.where((fb < 0) & ~torch.isfinite(v), torch.full_like(fb, step), fb)

    def first_nonfinite(self) -> tuple[str, float, int] | None:
        """(key, value, step) of the earliest non-finite value in the window, or None."""
        if not self.sums:
            return None
        keys = list(self.sums)
        steps = torch.stack([self.first_bad[k] for k in keys]).tolist()
        bad = [(s, k) for s, k in zip(steps, keys) if s >= 0]
        if not bad:
            return None
        step, key = min(bad)
        return key, float(self.sums[key]), step

    def means(self) -> dict[str, float]:
        keys = list(self.sums)
        if not keys:
            return {}
        values = torch.stack([self.sums[k] for k in keys]).tolist()
        return {k: v / self.counts[k] for k, v in zip(keys, values)}

    def state_dict(self) -> dict:
        return {"sums": {k: v.detach().cpu() for k, v in self.sums.items()}, "counts": dict(self.counts),
                "steps": self.steps, "seconds": self.seconds}

    def load_state_dict(self, state: dict | None) -> None:
        self.reset()
        if not state:
            return
        for k, v in state["sums"].items():
            self.sums[k] = v.to(self.device)
            self.first_bad[k] = torch.full((), -1, dtype=torch.long, device=self.device)
        self.counts = {k: int(c) for k, c in state["counts"].items()}
        self.steps, self.seconds = int(state["steps"]), float(state["seconds"])


class _Rollback(Exception):
    pass
