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
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..objectives import get_objective
from ..ranges import delta_for_range, range_to_uint8, uint8_to_range
from ..regularizers import discriminator_robustness, last_linear, make_regularizer
from . import checkpoint as ckpt
from .config import dump, regularizer_lambda
from .distributed import DistContext
from .logging import RunLogger, save_grid, save_scatter

TOY_NAMES = ("8gaussians", "25gaussians", "swissroll")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the message says which checkpoint is intact."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return dev


class BatchSource:
    """Real batches in a fixed order derived from (seed, position): no state to save.

    Image data: an epoch is a permutation of the data set drawn from a generator seeded with
    (seed, epoch); batch i of an epoch takes the i-th slice (the last incomplete slice is
    dropped). With several processes each takes its own slice of the same permutation.
    Toy data: each batch is sampled from a generator seeded with (seed, position).
    """

    def __init__(self, data, batch_size: int, seed: int, rank: int = 0, world: int = 1, workers: int = 0):
        self.data, self.batch_size, self.seed, self.rank, self.world = data, batch_size, seed, rank, world
        self.workers = workers
        self.toy = not hasattr(data, "__len__")
        if not self.toy:
            self.per_epoch = len(data) // (batch_size * world)
            if self.per_epoch < 1:
                raise ValueError(f"data set has {len(data)} items, fewer than one batch of {batch_size * world}")
        self._perm_epoch, self._perm = None, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.data), generator=g), epoch
        return self._perm

    def batch(self, position: int) -> torch.Tensor:
        if self.toy:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + position) * 64 + self.rank)
            return self.data.sample(self.batch_size, generator=g)
        epoch, i = divmod(position, self.per_epoch)
        perm = self._permutation(epoch)
        start = (i * self.world + self.rank) * self.batch_size
        idx = perm[start:start + self.batch_size]
        images = getattr(self.data, "images", None)
        if images is not None:
            return images[idx]
        return torch.stack([self.data[int(j)] for j in idx])


def load_training_data(cfg: dict):
    """The run's data: a toy distribution or an image data set (uint8)."""
    d = cfg["data"]
    if d["name"] in TOY_NAMES:
        from ..data.toy import get_toy
        return get_toy(d["name"])
    from ..data import load_dataset
    ds = load_dataset(d["name"], root=d["root"], split=d["split"], img_size=d["img_size"], download=d["download"])
    if getattr(ds, "images", None) is None and hasattr(ds, "preload") and len(ds) <= 60000:
        ds = ds.preload()
    return ds


def build_networks(cfg: dict, data) -> tuple[nn.Module, nn.Module]:
    """``(G, D)`` for ``cfg["model"]`` and the run's data (image sets fix img_size and channels)."""
    from ..models import build_models, model_entry, model_names
    m = dict(cfg["model"])
    arch = m.pop("arch")
    entry = model_entry(arch)
    kind = "image" if hasattr(data, "channels") else "points"
    if entry.data != kind:
        words = {"image": "image", "points": "2-D point"}
        raise ValueError(f"model.arch={arch} is for {words[entry.data]} data, but data.name={cfg['data']['name']} "
                         f"is {words[kind]} data; use model.arch={' or '.join(model_names(data=kind))}")
    settings = {k: v for k, v in m.items() if v is not None}
    settings.update(entry.data_settings(data))
    return build_models(arch, **settings)


def _pixel_units(value: float, cfg: dict) -> float:
    """A length given in [0, 1] pixel units (reg.delta, reg.sigma) in the model's units."""
    out_range = cfg["model"]["out_range"]
    if out_range == "none" or cfg["model"]["arch"] == "mlp":
        return float(value)  # 2-D data: lengths are in data units
    return delta_for_range(value, out_range)


def _scaled_delta(cfg: dict) -> float:
    return _pixel_units(cfg["reg"]["delta"], cfg)


def build_regularizer(cfg: dict):
    r = cfg["reg"]
    name = r["name"]
    lam = regularizer_lambda(cfg)
    if name == "none":
        return make_regularizer("none")
    if name == "noise":
        anneal = int(round(r["anneal"] * cfg["train"]["steps"] * cfg["optim"]["d_steps"]))
        return make_regularizer("noise", sigma=_pixel_units(r["sigma"], cfg), anneal_steps=anneal)
    if name == "gp":
        return make_regularizer("gp", lam=lam)
    attack_kwargs = {}
    if r["attack"] in ("pgd", "cw"):
        attack_kwargs["steps"] = int(r["attack_steps"])
    if r["attack"] == "pgd":
        attack_kwargs["p"] = r["attack_norm"]
    kw = dict(lam=lam, delta=_scaled_delta(cfg), attack=r["attack"], attack_kwargs=attack_kwargs, target=r["target"])
    if name == "rfm":
        kw["alpha"] = r["alpha"]
    return make_regularizer(name, **kw)


class Trainer:
    """Trains one configuration in ``run_dir``; resumes from the last checkpoint there.

    Args:
        cfg: a resolved config (:func:`robustgan.train.config.resolve`).
        run_dir: output folder (config.yaml, metrics.jsonl, log.txt, tb/, samples/, checkpoints/).
        resume: continue from the latest checkpoint in ``run_dir`` if there is one.
    """

    def __init__(self, cfg: dict, run_dir: str | Path, resume: bool = True, dist: DistContext | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = dist or DistContext.from_env()
        t, o = cfg["train"], cfg["optim"]
        if t["threads"]:
            torch.set_num_threads(int(t["threads"]))
        self.device = self.dist.device if self.dist.enabled else resolve_device(t["device"])
        self.amp = t["amp"] == "bf16"
        if self.amp and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("train.amp=bf16 but this GPU has no bf16 support; use train.amp=none")

        torch.manual_seed(cfg["seed"])  # the same initial weights on every process
        self.data = load_training_data(cfg)
        self.toy = cfg["data"]["name"] in TOY_NAMES
        self.G, self.D = build_networks(cfg, self.data)
        last_linear(self.D)  # the protocol every robustgan D follows; fail early for a custom one
        self.G.to(self.device)
        self.D.to(self.device)
        if t["channels_last"] and not self.toy:
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
                                   cfg["data"]["workers"])
        self.step = 0        # generator steps done
        self.d_iter = 0      # discriminator steps done
        self.lr_scale = 1.0  # lowered by NaN rollbacks
        self.rollbacks = 0
        self.last_checkpoint: Path | None = None
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
            self.load_state(ckpt.load_checkpoint(latest, map_location=self.device))
            self.last_checkpoint = latest
        self.is_main = self.dist.rank == 0
        self.logger = RunLogger(self.run_dir, resume_step=self.step, tensorboard=cfg["log"]["tensorboard"],
                                enabled=self.is_main)
        if self.is_main:
            (self.run_dir / "config.yaml").write_text(dump(cfg))

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
            "data_shape": {"img_size": getattr(self.data, "img_size", None),
                           "channels": getattr(self.data, "channels", None)},
        }

    def load_state(self, state: dict) -> None:
        if state.get("format") != "robustgan-checkpoint-1":
            raise ValueError("not a robustgan training checkpoint")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None and state.get("G_ema") is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step, self.d_iter = int(state["step"]), int(state["d_iter"])
        self.lr_scale, self.rollbacks = float(state["lr_scale"]), int(state["rollbacks"])
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
        return x.contiguous(memory_format=torch.channels_last) if self.cfg["train"]["channels_last"] else x

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
        """One discriminator step; returns detached statistics."""
        B = self.cfg["train"]["batch_size"]
        every = self.cfg["reg"]["every"]
        real = self._to_model(self.batches.batch(self.d_iter))
        with torch.no_grad(), self.autocast():
            fake = self.G(self._z(B))
        fake = fake.float()
        if self.cfg["train"]["channels_last"] and not self.toy:
            fake = fake.contiguous(memory_format=torch.channels_last)
        real_in, fake_in = self.reg.perturb(real, fake, self.d_iter)
        apply_reg = self.reg.lam > 0 and self.d_iter % every == 0
        share = apply_reg and self.reg.uses_fake_forward and self.reg.attack in ("fgm", "fgsm")
        self.D.requires_grad_(True)
        with self.autocast():
            if share:
                fake_in = fake_in.detach().requires_grad_(True)
                feats = self.D.features(fake_in)
                d_fake = self.D.last_linear(feats).squeeze(-1)
            else:
                feats = None
                d_fake = self.D(fake_in)
            d_real = self.D(real_in)
            loss = self.objective.d_loss(d_real.float(), d_fake.float())
            penalty = torch.zeros((), device=self.device)
            if apply_reg:
                penalty = every * self.reg.penalty(self.D, real_in, fake_in, objective=self.objective,
                                                   features_fake=feats)
        self.opt_d.zero_grad(set_to_none=True)
        (loss + penalty).backward()
        self.dist.average_gradients(self.D)
        self.opt_d.step()
        self.d_iter += 1
        return {"loss_d": loss.detach(), "penalty": penalty.detach() / every if apply_reg else None,
                "d_real": d_real.detach().float().mean(), "d_fake": d_fake.detach().float().mean(),
                "fake": fake}

    def g_step(self) -> dict:
        B = self.cfg["train"]["batch_size"]
        self.D.requires_grad_(False)  # no parameter gradients for D in the generator phase
        with self.autocast():
            fake = self.G(self._z(B))
            loss = self.objective.g_loss(self.D(fake).float())
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
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(key, value):
            if value is not None:
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1

        n_steps = 0
        t0 = time.perf_counter()
        last_d = None
        try:
            while self.step < steps:
                self._set_lr()
                for _ in range(cfg["optim"]["d_steps"]):
                    last_d = self.d_step()
                    self._check_finite("loss_d", last_d["loss_d"], last_d["penalty"])
                    for k in ("loss_d", "penalty", "d_real", "d_fake"):
                        add(k, last_d[k])
                g = self.g_step()
                self._check_finite("loss_g", g["loss_g"])
                self.step += 1
                self._update_ema()
                add("loss_g", g["loss_g"])
                n_steps += 1
                if bar is not None:
                    bar.update(1)
                if self.step % lg["every"] == 0 or self.step == steps:
                    elapsed = time.perf_counter() - t0
                    report = {k: v / counts[k] for k, v in sums.items()}
                    report["robustness"] = discriminator_robustness(self.D, last_d["fake"], self.robust_delta)
                    report["step_time"] = elapsed / n_steps
                    report["lr_d"] = self.opt_d.param_groups[0]["lr"]
                    report["lr_g"] = self.opt_g.param_groups[0]["lr"]
                    self.logger.scalars(self.step, report)
                    if bar is not None:
                        bar.set_postfix(loss_d=f"{report['loss_d']:.3f}", loss_g=f"{report['loss_g']:.3f}")
                    sums, counts, n_steps, t0 = {}, {}, 0, time.perf_counter()
                if self.step % lg["samples_every"] == 0 or self.step == steps:
                    self.write_samples()
                if lg["eval_every"] and self.step % lg["eval_every"] == 0 and self.step != steps:
                    self._log_eval()
                if self.step % lg["checkpoint_every"] == 0 or self.step == steps:
                    self.dist.sync_buffers(self.G)
                    self.dist.sync_buffers(self.D)
                    self.save()
        except _Rollback:
            if bar is not None:
                bar.close()
            return self._rollback_and_continue()
        finally:
            if bar is not None:
                bar.close()
        result = {"step": self.step, "status": "complete"}
        if lg["eval_at_end"] or lg["eval_every"]:
            result["metrics"] = self._log_eval()
        self.logger.text(f"finished at step {self.step}")
        self.logger.close()
        return result

    def _has_eval_at(self, step: int) -> bool:
        import json
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return False
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("kind") == "eval" and row.get("step") == step:
                return True
        return False

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

    def _check_finite(self, name: str, *values) -> None:
        for v in values:
            if v is not None and not torch.isfinite(v).all():
                where = f"{self.last_checkpoint}" if self.last_checkpoint else "none written yet"
                if self.cfg["train"]["on_nan"] == "rollback" and self.last_checkpoint is not None \
                        and self.rollbacks < self.cfg["train"]["max_rollbacks"]:
                    self.logger.text(f"{name} is {float(v)} at step {self.step}; rolling back to {where}")
                    raise _Rollback()
                msg = (f"{name} became {float(v)} at step {self.step}; the run stopped and the last good checkpoint "
                       f"({where}) is intact. Lower the learning rates (optim.lr_d / optim.lr_g), strengthen the "
                       f"regulariser, or set train.on_nan=rollback")
                self.logger.text(msg)
                self.logger.close()
                raise TrainingDiverged(msg)

    def _rollback_and_continue(self) -> dict:
        rollbacks, lr_scale = self.rollbacks + 1, self.lr_scale * 0.5
        self.load_state(ckpt.load_checkpoint(self.last_checkpoint, map_location=self.device))
        self.rollbacks, self.lr_scale = rollbacks, lr_scale
        self.logger.text(f"rolled back to step {self.step}; learning rates scaled by {self.lr_scale}")
        return self.fit()


class _Rollback(Exception):
    pass
