"""The stability sweep of Table 2: regularisers ranked over randomly drawn training setups.

    robustgan sweep --pool paper --setups 55 --methods none,noise,gp,rfm --out sweeps/paper --seed 0
    robustgan sweep --pool cpu --setups 20 --out sweeps/cpu --workers 2       # Fashion-MNIST, 2 cores
    robustgan sweep --pool toy --setups 8 --out sweeps/toy                     # 2-D, minutes

A *setup* is one value per factor of a pool; the paper's pool is loss {gan, lsgan, wgan} x batch
{8, 64} x lr {1e-3, 1e-4} x block {plain, residual} x width {32, 128} x nonlinearity {relu,
leaky_relu, tanh} x normalisation {batch, instance, none} (432 setups), on the paper's CIFAR-10
ResNet. :func:`sample_setups` draws ``--setups`` distinct setups uniformly without replacement
from a ``random.Random(seed)``: the same seed gives the same setups, and asking for all of them
gives the whole pool. Each setup is trained once per method (``reg.name``) with training seed
``--seed``, in ``OUT/runs/<setup>-<method>/``.

Ranking (:func:`rank_methods`): within a setup, methods are ranked 1..M by their *final* main
metric (``fd``, lower is better, for images; ``w1`` for 2-D data). Equal values share the average
of their ranks; runs without a value (diverged, failed, not evaluated) rank after every run with
one, sharing the average of the remaining ranks. A method is *top* in a setup when its rank is the
setup's smallest (ties: every tied method counts) and *worst* when it is the largest. Setups with
a missing run (still to do) or where no method has a value are left out of the counts. The table
(``OUT/table.md``, :func:`summary_table`) gives #top, #worst, the average rank and the number of
diverged or failed runs per method, then every setup's values and ranks. A pool with a
``left_start`` threshold (``cpu``: FD below 250) also says per setup whether every method's run
got past it, and repeats the counts over those setups only; each average rank carries a 95%
percentile bootstrap interval over setups. ``OUT/results.json`` holds
the pool, the setups, per-setup values/ranks, the summary and every run record.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .driver import ResultsFile, command_line, csv_list, main_metric, override_key, print_jobs, standalone_main
from .executors import Job, add_executor_arguments, executor_from_args, print_progress
from .results import Table, format_value, numeric

__all__ = [
    "Pool",
    "POOLS",
    "FACTOR_KEYS",
    "pool_size",
    "sample_setups",
    "tuned_weights",
    "setup_overrides",
    "sweep_jobs",
    "rank_methods",
    "summarize_ranks",
    "summary_table",
    "build_tables",
    "run_sweep",
    "add_arguments",
    "run",
    "main",
]

#: factor name -> the config keys it sets (all to the same value)
FACTOR_KEYS = {
    "loss": ("loss",),
    "batch": ("train.batch_size",),
    "lr": ("optim.lr_g", "optim.lr_d"),
    "block": ("model.block",),
    "width": ("model.width",),
    "nonlinearity": ("model.nonlinearity",),
    "normalisation": ("model.normalisation",),
}


@dataclass(frozen=True)
class Pool:
    """A setup pool: the preset every run starts from, the factors and fixed overrides."""

    name: str
    preset: str
    factors: dict
    overrides: tuple = ()
    description: str = ""
    extra: dict = field(default_factory=dict)
    #: a run has *left the start* when its final main metric is better than this (None: not judged)
    left_start: float | None = None


_PAPER_FACTORS = {
    "loss": ("gan", "lsgan", "wgan"),
    "batch": (8, 64),
    "lr": (1e-3, 1e-4),
    "block": ("plain", "residual"),
    "width": (32, 128),
    "nonlinearity": ("relu", "leaky_relu", "tanh"),
    "normalisation": ("batch", "instance", "none"),
}

POOLS = {
    "paper": Pool(
        "paper", "cifar10-resnet", _PAPER_FACTORS,
        ("log.progress=false",),
        "the paper's pool on CIFAR-10 with the Table 3 ResNet and the preset's budget (needs a GPU)"),
    "cpu": Pool(
        "cpu", "fmnist-dcgan",
        dict(_PAPER_FACTORS, batch=(16, 64), lr=(1e-3, 2e-4), width=(16, 32)),
        ("train.steps=1500", "train.amp=none", "log.every=50", "log.samples_every=1500",
         "log.checkpoint_every=500", "log.eval_n=2000", "log.metrics=[fd,kid]", "log.tensorboard=false",
         "log.progress=false"),
        "Fashion-MNIST 28x28, the DCGAN (plain or residual) at widths 16/32, batch 16/64, lr 1e-3/2e-4, "
        "1500 steps: a few minutes per run on one CPU core",
        left_start=250.0),
    "cpu-resnet": Pool(
        "cpu-resnet", "fmnist-resnet",
        dict(_PAPER_FACTORS, batch=(8, 32), width=(16, 32)),
        ("train.steps=250", "log.every=25", "log.samples_every=250", "log.checkpoint_every=50",
         "log.eval_n=1000", "log.metrics=[fd]", "log.tensorboard=false", "log.progress=false"),
        "Fashion-MNIST 28x28, the Table 3 ResNet at widths 16/32, batch 8/32, 250 steps (the earlier CPU pool: "
        "most of its setups do not leave the start in 250 steps, and a step costs 3-7x the DCGAN's)"),
    "toy": Pool(
        "toy", "toy-8gaussians",
        dict(_PAPER_FACTORS, width=(32, 128)),
        ("train.steps=500", "log.every=50", "log.samples_every=500", "log.checkpoint_every=250",
         "log.eval_n=1000", "log.tensorboard=false", "log.progress=false"),
        "8 Gaussians with the MLP pair, 500 steps: a few minutes in all"),
}


def pool_size(pool: Pool) -> int:
    """Number of distinct setups in ``pool`` (the product of its factor sizes)."""
    return math.prod(len(v) for v in pool.factors.values())


def sample_setups(pool: Pool | str, n: int, seed: int = 0) -> list[dict]:
    """Draw ``n`` distinct setups uniformly without replacement from ``pool`` with ``random.Random(seed)``.

    Returns ``[{"id": "setup00", "factors": {factor: value}}, ...]`` in draw order; ``n`` may be at
    most :func:`pool_size` (then every setup appears once). Raises ValueError otherwise.
    """
    pool = POOLS[pool] if isinstance(pool, str) else pool
    size = pool_size(pool)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"--setups must be a positive integer, got {n!r}")
    if n > size:
        raise ValueError(f"pool {pool.name!r} has only {size} distinct setups; ask for at most {size}")
    names = list(pool.factors)
    width = max(2, len(str(n - 1)))
    setups = []
    for k, index in enumerate(random.Random(seed).sample(range(size), n)):
        factors = {}
        for name in reversed(names):  # mixed-radix digits of the setup's index in the product
            values = pool.factors[name]
            index, digit = divmod(index, len(values))
            factors[name] = values[digit]
        setups.append({"id": f"setup{k:0{width}d}", "factors": {name: factors[name] for name in names}})
    return setups


def setup_overrides(factors: dict) -> list[str]:
    """Config overrides of a setup, e.g. ``{"lr": 1e-3}`` -> ``["optim.lr_g=0.001", "optim.lr_d=0.001"]``."""
    out = []
    for name, value in factors.items():
        if name not in FACTOR_KEYS:
            raise ValueError(f"unknown factor {name!r}; known: {', '.join(FACTOR_KEYS)}")
        out += [f"{key}={value}" for key in FACTOR_KEYS[name]]
    return out


def _check_overrides(overrides: list[str], pool: Pool) -> None:
    taken = {k for name in pool.factors for k in FACTOR_KEYS[name]} | {"reg.name", "seed"}
    for text in overrides:
        key = override_key(text)
        if key in taken:
            raise ValueError(f"override {text!r}: the sweep sets {key} itself (pool factors, --methods, --seed)")


def sweep_jobs(pool: Pool, setups: list[dict], methods, out: str | Path, seed: int = 0,
               overrides: list[str] | None = None, steps: int | None = None, metric: str | None = None,
               weights: dict | None = None) -> list[Job]:
    """One job per (setup, method), setup-major, in ``out/runs/<setup>-<method>``.

    ``weights`` (from :func:`tuned_weights`), if given, holds each method's weight per loss,
    ``{loss: {method: {"reg.lam": 100}}}``: a run gets the weight of its setup's loss, and a method
    with a weight to set (every one but ``none``) must have one for every loss it meets.
    """
    from ..regularizers import REGULARIZERS

    methods = list(methods)
    bad = [m for m in methods if m not in REGULARIZERS]
    if bad or not methods or len(set(methods)) != len(methods):
        raise ValueError(f"--methods must list distinct regularisers from {', '.join(REGULARIZERS)}; got "
                         f"{','.join(methods) or 'nothing'}")
    extra = list(overrides or [])
    _check_overrides(extra, pool)
    base = list(pool.overrides) + extra
    if steps is not None:
        base.append(f"train.steps={int(steps)}")
    jobs = []
    for setup in setups:
        for method in methods:
            run_id = f"{setup['id']}-{method}"
            ov = base + setup_overrides(setup["factors"]) + [f"reg.name={method}", f"seed={seed}"]
            info = {"setup": setup["id"], "factors": dict(setup["factors"]), "method": method, "seed": seed}
            if weights is not None and method != "none":
                loss = setup["factors"].get("loss")
                chosen = (weights.get(loss) or {}).get(method)
                if not chosen:
                    raise ValueError(f"no tuned weight for {method} on the {loss} loss in the weights given; "
                                     f"tune that cell first (its grid's results.json), or leave {method} out")
                ov += [f"{key}={value}" for key, value in chosen.items()]
                info["weights"] = dict(chosen)
            jobs.append(Job(run_id, Path(out) / "runs" / run_id, pool.preset, ov, info, metric,
                            record_dir=Path(out) / "records" / "eval" / run_id, record_samples=True))
    return jobs


def tuned_weights(paths) -> dict[str, dict[str, dict]]:
    """The weights grids tuned, as ``{loss: {reg: {key: value}}}``, from their ``results.json``.

    ``paths``: grid folders or their ``results.json`` files. A cell counts when its tuning chose
    (``tuned``); only the plain cells (FGM against D, as Table 1 tunes them) give the weight of
    ``ar`` and ``rfm``. Two grids that chose differently for the same loss and regulariser are an
    error, and so is a file that is not a grid's.
    """
    from .results import read_json

    out: dict[str, dict[str, dict]] = {}
    for path in paths:
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        if not file.is_file():
            raise ValueError(f"{file}: no such file; run that grid (or its study part) first")
        results = read_json(file)
        if not isinstance(results, dict) or results.get("kind") != "grid":
            raise ValueError(f"{file}: not a grid's results.json (kind {results.get('kind') if isinstance(results, dict) else None!r})")
        for cell in results.get("cells") or []:
            if not cell.get("tuned") or cell.get("attack") not in (None, "fgm") \
                    or cell.get("target") not in (None, "discriminator"):
                continue
            loss, reg = cell["loss"], cell["reg"]
            before = out.setdefault(loss, {}).get(reg)
            if before is not None and before != cell["tuned"]:
                raise ValueError(f"{file}: {loss} {reg} tuned to {cell['tuned']}, another grid chose {before}")
            out[loss][reg] = dict(cell["tuned"])
    return out


# ------------------------------------------------------------------------------------------------- ranking
def rank_methods(values: dict, direction: str = "min") -> dict[str, float]:
    """Ranks 1..M of the methods in ``values`` (``{method: value or None}``) for one setup.

    Better values get smaller ranks (``direction`` "min": smaller is better; "max": larger).
    Exactly equal values share the average of the positions they occupy; ``None`` / NaN / Inf
    (diverged, failed, not evaluated) rank after every finite value, sharing the average of the
    remaining positions. Example: ``{a: 1, b: 2, c: 2, d: None}`` -> ``{a: 1, b: 2.5, c: 2.5, d: 4}``.
    """
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    clean = {m: numeric(v) for m, v in values.items()}
    valid = sorted((v, m) for m, v in clean.items() if v is not None)
    if direction == "max":
        valid.sort(key=lambda t: -t[0])
    ranks: dict[str, float] = {}
    pos = 0
    while pos < len(valid):
        end = pos
        while end + 1 < len(valid) and valid[end + 1][0] == valid[pos][0]:
            end += 1
        shared = (pos + 1 + end + 1) / 2
        for k in range(pos, end + 1):
            ranks[valid[k][1]] = shared
        pos = end + 1
    invalid = [m for m, v in clean.items() if v is None]
    if invalid:
        shared = (len(valid) + 1 + len(clean)) / 2
        for m in invalid:
            ranks[m] = shared
    return {m: ranks[m] for m in values}


def summarize_ranks(per_setup: list[dict[str, float]], methods) -> dict[str, dict]:
    """#top, #worst and average rank per method over setups (``per_setup``: one rank dict each).

    A method is top in a setup if its rank equals that setup's smallest rank, worst if it equals
    the largest (ties count for every tied method). Returns
    ``{method: {"top": int, "worst": int, "avg_rank": float | None, "setups": int}}``.
    """
    out = {m: {"top": 0, "worst": 0, "avg_rank": None, "setups": 0} for m in methods}
    sums = {m: 0.0 for m in methods}
    for ranks in per_setup:
        lo, hi = min(ranks.values()), max(ranks.values())
        for m in methods:
            r = ranks[m]
            sums[m] += r
            out[m]["setups"] += 1
            out[m]["top"] += r == lo
            out[m]["worst"] += r == hi
    for m in methods:
        if out[m]["setups"]:
            out[m]["avg_rank"] = sums[m] / out[m]["setups"]
    return out


def left_the_start(value, threshold: float | None, direction: str = "min") -> bool | None:
    """Whether a final value is past the pool's ``left_start`` threshold (``None``: not judged)."""
    if threshold is None:
        return None
    v = numeric(value)
    if v is None:
        return False
    return v < threshold if direction == "min" else v > threshold


def rank_setups(setups: list[dict], methods, records: list[dict], direction: str,
                left_start: float | None = None) -> tuple[list[dict], dict]:
    """Per-setup values, statuses and ranks from run ``records``; returns (setup rows, summary).

    A setup is ranked only if every method has a record and at least one has a finite value. With
    a ``left_start`` threshold, each row says whether every method's run passed it (``trained``),
    and the summary also holds ``"trained"``: the same counts over those setups only. Each summary
    has the average rank's 95% percentile bootstrap interval over setups (``avg_rank_ci``).
    """
    by_key = {(r["info"]["setup"], r["info"]["method"]): r for r in records if "setup" in r.get("info", {})}
    rows, ranked, trained = [], [], []
    failed = {m: 0 for m in methods}
    for s in setups:
        recs = {m: by_key.get((s["id"], m)) for m in methods}
        values = {m: (numeric(r.get("final")) if r else None) for m, r in recs.items()}
        statuses = {m: (r.get("status") if r else None) for m, r in recs.items()}
        for m, st in statuses.items():
            failed[m] += st in ("diverged", "failed")
        ranks = None
        if all(r is not None for r in recs.values()) and any(v is not None for v in values.values()):
            ranks = rank_methods(values, direction)
            ranked.append(ranks)
        left = None
        if left_start is not None and ranks is not None:
            left = all(left_the_start(v, left_start, direction) for v in values.values())
            if left:
                trained.append(ranks)
        rows.append({"id": s["id"], "factors": s["factors"], "values": values, "statuses": statuses, "ranks": ranks,
                     "trained": left})
    summary = summarize_ranks(ranked, methods)
    _rank_intervals(summary, ranked, methods)
    for m in methods:
        summary[m]["failed"] = failed[m]
    if left_start is not None:
        summary["trained"] = summarize_ranks(trained, methods)
        _rank_intervals(summary["trained"], trained, methods)
        summary["trained"]["threshold"] = left_start
    return rows, summary


def _rank_intervals(summary: dict, ranked: list[dict], methods) -> None:
    from .stats import bootstrap_mean

    for m in methods:
        b = bootstrap_mean([r[m] for r in ranked])
        summary[m]["avg_rank_ci"] = [b["lo"], b["hi"]] if b["n"] else None


def summary_table(results: dict, trained: bool = False) -> Table:
    """Table 2: #top, #worst, average rank (with its bootstrap interval over setups) and
    #diverged/failed per method (methods as columns); ``trained``: over the setups where every
    method left the start only."""
    methods, summary = results["methods"], results["summary"]
    if trained:
        summary = dict(summary["trained"], **{m: dict(summary["trained"][m], failed=summary[m]["failed"])
                                              for m in methods})
    n = max((summary[m]["setups"] for m in methods), default=0)

    def interval(m):
        ci = summary[m].get("avg_rank_ci")
        return f"[{format_value(ci[0], 3)}, {format_value(ci[1], 3)}]" if ci else "n/a"

    rows = [["#top"] + [str(summary[m]["top"]) for m in methods],
            ["#worst"] + [str(summary[m]["worst"]) for m in methods],
            ["average rank"] + [format_value(summary[m]["avg_rank"], 3) for m in methods],
            ["95% bootstrap interval"] + [interval(m) for m in methods],
            ["#diverged or failed"] + [str(summary[m]["failed"]) for m in methods]]
    bold = set()
    for i, key, pick in ((0, "top", max), (1, "worst", min), (2, "avg_rank", min)):
        vals = {j: summary[m][key] for j, m in enumerate(methods, start=1) if summary[m][key] is not None}
        if vals and n:
            best = pick(vals.values())
            bold |= {(i, j) for j, v in vals.items() if v == best}
    better = "lower" if results["direction"] == "min" else "higher"
    which = (f" where every method left the start ({results['metric']} "
             f"{'<' if results['direction'] == 'min' else '>'} {format_value(summary['threshold'])})") if trained else ""
    note = (f"{n} ranked setups{which} of {len(results['setups'])} (pool {results['pool']}); ranked by final "
            f"{results['metric']} ({better} is better); ties share the average rank, diverged/failed runs rank last; "
            f"the interval resamples setups (10,000 bootstrap resamples).")
    title = f"Stability over {n} setups" + (" that left the start" if trained else "") + " (Table 2)"
    return Table(title, [""] + list(methods), rows, note, bold)


def subset_tables(results: dict, methods) -> list[Table]:
    """:func:`summary_table` (over every setup, and over those where every one of ``methods`` left
    the start) with the setups ranked again among ``methods`` only, from the same runs: e.g. the
    paper's four columns of Table 2 out of a sweep that also trained other methods."""
    methods = list(methods)
    unknown = [m for m in methods if m not in results["methods"]]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in this sweep's methods ({', '.join(results['methods'])})")
    _, summary = rank_setups(results["setups"], methods, results["runs"], results["direction"],
                             results.get("left_start"))
    sub = dict(results, methods=methods, summary=summary)
    among = f", ranked among {', '.join(methods)} only"
    tables = [summary_table(sub)]
    if "trained" in summary:
        tables.append(summary_table(sub, trained=True))
    for t in tables:
        t.title = t.title.replace(" (Table 2)", f"{among} (Table 2)")
    return tables


def rank_difference_table(results: dict, methods, pairs, trained: bool = False) -> Table:
    """Each pair ``(a, b)`` of ``pairs``: a's rank minus b's, setup by setup, with the setups ranked
    among ``methods``; its mean, 95% percentile bootstrap interval over setups (10,000 resamples)
    and a verdict for a: ``better`` when the interval lies below zero (a ranks ahead), ``worse``
    above, else ``not distinguishable``. ``trained``: only the setups where every one of ``methods``
    left the start. Paired by setup, this separates methods whose average-rank intervals overlap."""
    from .stats import bootstrap_mean

    methods = list(methods)
    rows_in, _ = rank_setups(results["setups"], methods, results["runs"], results["direction"],
                             results.get("left_start") if trained else None)
    ranked = [r["ranks"] for r in rows_in if r["ranks"] is not None and (not trained or r["trained"])]
    rows = []
    for a, b in pairs:
        if a not in methods or b not in methods:
            raise ValueError(f"{a} vs {b}: both must be among {', '.join(methods)}")
        d = bootstrap_mean([r[a] - r[b] for r in ranked])
        if d["n"] == 0:
            rows.append([f"{a} vs {b}", "0", "n/a", "not distinguishable"])
            continue
        verdict = "better" if d["hi"] < 0 else "worse" if d["lo"] > 0 else "not distinguishable"
        rows.append([f"{a} vs {b}", str(d["n"]), f"{format_value(d['mean'], 3)} [{format_value(d['lo'], 3)}, "
                     f"{format_value(d['hi'], 3)}]", verdict])
    which = " that left the start" if trained else ""
    title = f"Rank differences over the setups{which}, ranked among {', '.join(methods)}"
    note = ("Δ rank = a's rank - b's in the same setup (negative: a ranks ahead), mean [95% percentile bootstrap "
            "interval over setups, 10,000 resamples]; better / worse when the interval excludes zero.")
    return Table(title, ["a vs b", "setups", "Δ rank [95% CI]", "verdict"], rows, note)


def _short(factors: dict) -> str:
    f = dict(factors)
    parts = [str(f.pop("loss", "")), f"b{f.pop('batch', '')}", f"lr{f.pop('lr', '')}"]
    return " ".join(parts + [str(v) for v in f.values()])


def build_tables(results: dict) -> list[Table]:
    """The sweep's tables: :func:`summary_table`, then one row per setup (value, rank) per method."""
    methods = results["methods"]
    rows, bold = [], set()
    for i, s in enumerate(results["setups"]):
        row = [s["id"], _short(s["factors"])]
        for j, m in enumerate(methods, start=2):
            v, st, r = s["values"].get(m), s["statuses"].get(m), (s["ranks"] or {}).get(m)
            text = format_value(v) if v is not None else (st or "to do")
            if r is not None:
                text += f" ({format_value(r, 2)})"
                if r == min(s["ranks"].values()):
                    bold.add((i, j))
            row.append(text)
        rows.append(row)
    judged = any(s.get("trained") is not None for s in results["setups"])
    if judged:
        for row, s in zip(rows, results["setups"]):
            row.append({True: "yes", False: "no", None: "to do"}[s.get("trained")])
    per_setup = Table(f"Final {results['metric']} per setup (rank)", ["setup", "loss batch lr block width act norm"]
                      + list(methods) + (["left the start"] if judged else []), rows, "", bold)
    tables = [summary_table(results)]
    if results.get("weights"):
        weights = results["weights"]
        losses = [loss for loss in results["factors"].get("loss", []) if loss in weights] or sorted(weights)
        shown = [m for m in methods if m != "none"]
        wrows = [[loss] + [", ".join(f"{k.split('.')[-1]} {format_value(v, 3)}"
                                     for k, v in (weights[loss].get(m) or {}).items()) or "--" for m in shown]
                 for loss in losses]
        tables.append(Table("Weights, per loss, the same in every setup", ["loss"] + shown, wrows,
                            "Each method's weight as tuned for that loss (`--weights-from`)."))
    if "trained" in results["summary"]:
        tables.append(summary_table(results, trained=True))
    return tables + [per_setup]


def tables_markdown(results: dict) -> str:
    """The contents of ``table.md``."""
    head = [f"# Stability sweep: pool {results['pool']} ({results['preset']})", ""]
    if results.get("command"):
        head += [f"`{results['command']}`", ""]
    return "\n".join(head) + "\n".join(t.to_markdown() for t in build_tables(results))


# ------------------------------------------------------------------------------------------------- driver
def run_sweep(pool: str | Pool, out: str | Path, *, setups: int = 55, methods=("none", "noise", "gp", "rfm"),
              seed: int = 0, steps: int | None = None, overrides: list[str] | None = None, metric: str | None = None,
              executor=None, on_record=None, command: str | None = None, weights: dict | None = None) -> dict:
    """Draw the setups, train every method on each, rank them; write ``results.json`` and ``table.md``.

    Args:
        pool: a :data:`POOLS` name or a :class:`Pool`.
        out: the sweep folder.
        setups: how many setups to draw (<= :func:`pool_size`).
        methods: regularisers to compare (``reg.name`` values).
        seed: the sampler's seed and every run's training seed.
        steps: ``train.steps`` (``None``: the pool's).
        overrides: extra ``key=value`` overrides for every run (not the pool's factors).
        metric: main metric (``None``: ``fd`` for images, ``w1`` for 2-D data).
        executor: an executor (default: one local subprocess at a time).
        on_record: ``on_record(job, record, reused)`` after each run.
        weights: each method's weight per loss (:func:`tuned_weights`); ``None``: every method
            runs with its default weight.
    """
    if isinstance(pool, str):
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        pool = POOLS[pool]
    methods = list(methods)
    out = Path(out)
    drawn = sample_setups(pool, setups, seed)
    jobs = sweep_jobs(pool, drawn, methods, out, seed, overrides, steps, metric, weights)
    for job in jobs:
        job.config()  # every config is valid before the first run starts
    metric, direction = main_metric(metric, jobs[0].config())
    for job in jobs:
        job.metric = metric
    results = {
        "kind": "sweep", "version": 1, "command": command, "pool": pool.name, "preset": pool.preset,
        "pool_description": pool.description, "factors": {k: list(v) for k, v in pool.factors.items()},
        "pool_overrides": list(pool.overrides), "overrides": list(overrides or []), "steps": steps,
        "left_start": pool.left_start, "weights": weights,
        "seed": seed, "methods": methods, "metric": metric, "direction": direction, "runs": [],
    }

    def rank(results):
        results["setups"], results["summary"] = rank_setups(drawn, methods, results["runs"], direction,
                                                            pool.left_start)

    file = ResultsFile(out / "results.json", results, refresh=rank, carry=("runs",))
    file.save()
    file.run(jobs, executor, "runs", on_record)
    file.close()
    file.write_table(tables_markdown(results))
    return results


# ------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``robustgan sweep``."""
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides for every run (not the pool's factors), e.g. optim.d_steps=2")
    parser.add_argument("--pool", required=True, choices=sorted(POOLS),
                        help="; ".join(f"{p.name}: {p.description}" for p in POOLS.values()))
    parser.add_argument("--setups", type=int, default=55, help="setups drawn from the pool (default 55)")
    parser.add_argument("--methods", type=csv_list, default=["none", "noise", "gp", "rfm"],
                        help="regularisers compared on every setup, from none,noise,gp,r1,r2,r1r2,ar,rfm "
                             "(default none,noise,gp,rfm)")
    parser.add_argument("--out", required=True, help="sweep folder (runs/, results.json, table.md)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the setup sampler and of every run (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="train.steps of every run (default: the pool's)")
    parser.add_argument("--metric", default=None, help="ranking metric (default fd for images, w1 for 2-D data)")
    parser.add_argument("--weights-from", action="append", default=[], metavar="GRID",
                        help="a tuned grid's folder (repeatable): each method runs with the weight that grid "
                             "chose for the setup's loss (default: every method's default weight)")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robustgan sweep``."""
    if not args.dry_run:  # a file, a folder under a file, a read-only place: one line, before any run
        from ..train.rundir import prepare_run_dir
        prepare_run_dir(args.out)
    pool = POOLS[args.pool]
    drawn = sample_setups(pool, args.setups, args.seed)
    weights = tuned_weights(args.weights_from) if args.weights_from else None
    jobs = sweep_jobs(pool, drawn, args.methods, args.out, args.seed, list(args.overrides), args.steps, args.metric,
                      weights)
    if args.dry_run:
        print_jobs(jobs)
        print(f"{len(drawn)} setups x {len(args.methods)} methods = {len(jobs)} runs")
        return 0
    print(f"sweep: {len(drawn)} setups of pool {pool.name} x {len(args.methods)} methods = {len(jobs)} runs, "
          f"in {args.out}", flush=True)
    results = run_sweep(pool, args.out, setups=args.setups, methods=args.methods, seed=args.seed, steps=args.steps,
                        overrides=list(args.overrides), metric=args.metric, executor=executor_from_args(args),
                        on_record=print_progress(len(jobs)), command=command_line(args, "sweep"), weights=weights)
    print(summary_table(results).to_markdown())
    print(f"wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'table.md'}; next: robustgan report {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m robustgan.experiments.sweep ...`` (the same as ``robustgan sweep ...``)."""
    return standalone_main("sweep", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
