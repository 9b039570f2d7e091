"""Named studies: the evidence behind docs/results.md, rerunnable, committed run by run.

    robustgan study list                      # the studies, their parts and how much is recorded
    robustgan study run table1 --workers 2    # train what is not recorded yet (resumable)
    robustgan study report table1             # studies/table1/summary.md from the stored records

A study is a list of *parts*, each an ordinary grid (:func:`robustgan.experiments.grid.run_grid`)
in ``studies/<study>/<part>/``: first a ``budget`` part (a few long runs evaluated along the way,
on their own seeds, from which the step budget was chosen), then the study proper, one part per
loss (so each loss is tuned and evaluated before the next starts, and a partial study holds whole
rows). Every finished run keeps a small record in ``<part>/records/`` (see
:mod:`robustgan.experiments.records`); those and ``results.json`` are what is committed. The run
folders (``runs/``, ``tune/``: checkpoints, TensorBoard) are not, and need not be: running the
same command on a fresh clone trains only the runs without a record.

Every run is pinned to fp32 (``train.amp=none``): what ``auto`` picks depends on the CPU (bf16
with native support), and a study spans machines. The executor gives each run one thread by
default (``--workers 2`` on 2 cores).

The summary (:func:`summary_markdown`) gives per cell the mean, sd and 95% t interval over the
evaluation seeds of the main metric and the check metrics; the paired difference of each robust
method against each baseline of the same loss with its interval and verdict in each metric, and
the combined verdict (a verdict must hold in the main metric and the check metric, else "not
distinguishable"); the budget curves; the tuning tables; what each part cost; and what is still
to run.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .records import stored_records
from .results import Table, format_value, read_json
from .stats import combined_verdict, paired, summarize

__all__ = ["Part", "SweepPart", "Study", "STUDIES", "part_jobs", "run_study", "load_part", "summary_markdown", "main"]

#: the tuning grid of the Table 1 and 2-D studies: every weight, and the instance-noise sigma
WIDE_TUNE = {"reg.lam": [0.1, 1, 10, 100, 1000], "reg.sigma": [0.05, 0.1, 0.2]}
#: a choice at the grid's edge is tuned further, up to this many steps beyond it (0.1 -> 0.01 -> 0.001)
EXTEND = 2
PINNED = ("train.amp=none",)
BUDGET_SEED = 2000


@dataclass(frozen=True)
class Part:
    """One grid of a study (see :func:`robustgan.experiments.grid.run_grid` for the fields)."""

    name: str
    preset: str
    losses: tuple
    regs: tuple
    seeds: int
    steps: int
    overrides: tuple = ()
    tune: dict = field(default_factory=dict)
    tune_seeds: int = 1
    tune_overrides: tuple = ()
    seed_base: int = 0
    role: str = "study"  # "budget": runs that chose the budget; "study": the evidence itself
    extend: int = 0  # rounds of tuning past the grid's edge (run_grid's ``extend``)
    attacks: tuple = ("fgm",)
    targets: tuple = ("discriminator",)
    #: (study, part) grids whose tuned weights the cells of the same loss and regulariser use, not
    #: tuned here (Appendix F: every attack at the weight Table 1 tuned with FGM)
    weights_from: tuple = ()

    def cells(self) -> list:
        from .grid import expand_cells
        return expand_cells(self.losses, self.regs, self.attacks, self.targets)

    def weights(self, root: str | Path) -> dict | None:
        """``{loss: {reg: {key: value}}}`` from the ``weights_from`` grids; every cell with a
        weighted regulariser must find its weight there, else a ValueError says what to run."""
        if not self.weights_from:
            return None
        from .sweep import tuned_weights
        weights = tuned_weights([Path(root) / s / p for s, p in self.weights_from])
        where = ", ".join(f"{s}/{p}" for s, p in self.weights_from)
        for cell in self.cells():
            if cell.reg != "none" and cell.reg not in (weights.get(cell.loss) or {}):
                raise ValueError(f"{where} has no tuned weight for {cell.loss} {cell.reg}; "
                                 f"run that first (robustgan study run {self.weights_from[0][0]})")
        return weights


@dataclass(frozen=True)
class SweepPart:
    """A stability sweep of a study (see :func:`robustgan.experiments.sweep.run_sweep`)."""

    name: str
    pool: str
    setups: int
    methods: tuple
    seed: int = 0
    overrides: tuple = ()
    role: str = "sweep"  # "start": the same setups after one step (the score a run has to leave)
    #: (study, part) grids whose tuned weights the methods use, per loss (``sweep --weights-from``)
    weights_from: tuple = ()
    #: subsets of the methods the summary also ranks among themselves (the paper's Table 2 columns)
    also_rank: tuple = ()

    def weights(self, root: str | Path) -> dict | None:
        from .sweep import tuned_weights
        return tuned_weights([Path(root) / s / p for s, p in self.weights_from]) if self.weights_from else None


@dataclass(frozen=True)
class Study:
    """A named study: its parts, its metrics and which methods are compared with which."""

    name: str
    description: str
    parts: tuple
    metric: str  # the main metric (a key of the final evaluation)
    checks: tuple  # metrics a verdict must also hold in
    extra: tuple = ()  # metrics shown with their intervals but not part of the verdict
    robust: tuple = ("ar", "rfm")
    baselines: tuple = ("none", "noise", "gp", "r1r2")
    budget_note: str = ""
    #: (study, part) whose cells of the same loss and regulariser each cell is also compared with,
    #: paired by seed: Table 4's robust loss against Table 1's robust discriminator, Appendix F's
    #: attacks against Table 1's FGM
    reference: tuple = ()
    #: (study, part) pairs whose records stand for identical runs of this study: a run whose
    #: config equals one recorded there is copied, not trained (Table 4's and Appendix F's none
    #: cells are Table 1's gan none runs)
    share: tuple = ()


TABLE1_REGS = ("none", "noise", "gp", "r1r2", "ar", "rfm")
TABLE1_STEPS = 3000
TOY_REGS = TABLE1_REGS
TOY_STEPS = 2000


def _table1() -> Study:
    base = PINNED + ("log.eval_every=1000",)
    parts = [Part("budget", "fmnist-dcgan", ("gan",), ("none", "rfm"), 1, 4000,
                  PINNED + ("log.eval_every=500",), seed_base=BUDGET_SEED, role="budget")]
    for loss in ("gan", "wgan", "lsgan", "rpgan"):
        parts.append(Part(loss, "fmnist-dcgan", (loss,), TABLE1_REGS, 3, TABLE1_STEPS, base, dict(WIDE_TUNE),
                          tune_overrides=("log.eval_every=0",), extend=EXTEND))
    return Study("table1", "Table 1 at CPU scale: Fashion-MNIST, DCGAN width 32 with the pooled-feature head",
                 tuple(parts), "fd", ("kid_mean",), ("precision", "recall"),
                 budget_note=f"{TABLE1_STEPS} steps (see the budget curves)")


def _toy() -> Study:
    model = ("model.width=128",)  # about 2x cheaper than the preset's 256 (measured: docs/results.md)
    lr = ("optim.lr_g=2e-4", "optim.lr_d=2e-4")  # the preset's 1e-4 needs 3000 steps (budget-lr1e-4)
    base = PINNED + model + lr + ("log.eval_every=500",)
    parts = [Part("budget-lr1e-4", "toy-8gaussians", ("gan",), ("none", "rfm"), 1, 4000,
                  PINNED + model + ("log.eval_every=250",), seed_base=BUDGET_SEED, role="budget"),
             Part("budget", "toy-8gaussians", ("gan",), ("none", "rfm"), 1, 3000,
                  PINNED + model + lr + ("log.eval_every=250",), seed_base=BUDGET_SEED, role="budget"),
             # measured after the 25-Gaussians part: how far from levelling off its 2000 steps are
             Part("budget-25gaussians", "toy-8gaussians", ("gan",), ("none", "ar", "rfm"), 1, 8000,
                  PINNED + model + lr + ("log.eval_every=500", "data.name=25gaussians"), seed_base=BUDGET_SEED,
                  role="budget")]
    for data in ("8gaussians", "25gaussians"):
        parts.append(Part(data, "toy-8gaussians", ("gan", "lsgan", "wgan", "rpgan"), TOY_REGS, 10, TOY_STEPS,
                          base + (f"data.name={data}",), dict(WIDE_TUNE), tune_overrides=("log.eval_every=0",),
                          extend=EXTEND))
    return Study("toy", "2-D mixtures of 8 and 25 Gaussians, MLP pair", tuple(parts), "w1",
                 ("high_quality_fraction",), ("modes_covered",),
                 budget_note=f"{TOY_STEPS} steps (see the budget curves)")


def _table4() -> Study:
    base = PINNED + ("log.eval_every=1000",)
    part = Part("gan", "fmnist-dcgan", ("gan",), ("none", "gp", "ar", "rfm"), 3, TABLE1_STEPS, base,
                {"reg.lam": WIDE_TUNE["reg.lam"]}, tune_overrides=("log.eval_every=0",), targets=("loss",),
                extend=EXTEND)
    return Study("table4", "Table 4 at CPU scale: the robust loss (penalties on f o D), gan, Fashion-MNIST DCGAN",
                 (part,), "fd", ("kid_mean",), ("precision", "recall"), baselines=("none", "gp"),
                 budget_note=f"{TABLE1_STEPS} steps, the Table 1 budget", reference=("table1", "gan"),
                 share=(("table1", "gan"),))


def _appf() -> Study:
    base = PINNED + ("log.eval_every=1000",)
    # Each attack at the weight Table 1 tuned with FGM: the attacks share the radius (fgsm's L-inf
    # radius defaults to delta / sqrt(numel), the same L2 size), so one weight means the same
    # penalty scale, and the study asks only whether the attack matters. Tuning each attack anew
    # would cost 30 more runs, 20 of them multi-step (about 1.8x an FGM step each).
    part = Part("gan", "fmnist-dcgan", ("gan",), ("none", "ar", "rfm"), 3, TABLE1_STEPS, base,
                attacks=("fgsm", "pgd", "cw"), weights_from=(("table1", "gan"),))
    return Study("appF", "Appendix F at CPU scale: AR and RFM with FGSM, PGD and CW attacks, gan, Fashion-MNIST DCGAN",
                 (part,), "fd", ("kid_mean",), ("precision", "recall"), baselines=("none",),
                 budget_note=f"{TABLE1_STEPS} steps, the Table 1 budget", reference=("table1", "gan"),
                 share=(("table1", "gan"),))


#: the overrides of a sweep's ``start`` part: one training step, so the final evaluation scores the
#: generator as it starts (what "left the start" is measured against)
START_OVERRIDES = ("train.steps=1", "log.checkpoint_every=1", "log.samples_every=1")


def _table2() -> Study:
    start = SweepPart("start", "cpu", 20, ("none",), overrides=START_OVERRIDES, role="start")
    # every method at the weight Table 1 tuned for the setup's loss, held fixed across setups (the
    # paper tuned lambda per loss, then swept the setups)
    part = SweepPart("cpu", "cpu", 20, ("none", "noise", "gp", "r1r2", "ar", "rfm"),
                     weights_from=(("table1", "gan"), ("table1", "lsgan"), ("table1", "wgan")),
                     also_rank=(("none", "noise", "gp", "rfm"),))
    return Study("table2", "Table 2 at CPU scale: 20 setups of the cpu pool (Fashion-MNIST DCGAN)", (start, part),
                 "fd", ("kid_mean",))


STUDIES = {s.name: s for s in (_table1(), _toy(), _table2(), _table4(), _appf())}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; choose from {', '.join(STUDIES)} (robustgan study list)")
    return STUDIES[name]


# ------------------------------------------------------------------------------------------------- running
def part_dir(root: str | Path, study: Study, part: Part) -> Path:
    return Path(root) / study.name / part.name


def part_jobs(root: str | Path, study: Study, part: Part) -> tuple[list, list]:
    """(tuning jobs, evaluation jobs with the default weights) of ``part``, for counting and listing."""
    if isinstance(part, SweepPart):
        from .sweep import POOLS, sample_setups, sweep_jobs
        drawn = sample_setups(part.pool, part.setups, part.seed)
        return [], sweep_jobs(POOLS[part.pool], drawn, part.methods, part_dir(root, study, part), part.seed,
                              list(part.overrides), weights=part.weights(root))
    from .grid import TUNE_SEED_BASE, _base_overrides, fixed_weights, grid_jobs, tuning_jobs

    out = part_dir(root, study, part)
    cells = part.cells()
    base = _base_overrides(list(part.overrides), part.steps, part.tune)
    tseeds = list(range(TUNE_SEED_BASE, TUNE_SEED_BASE + part.tune_seeds)) if part.tune else []
    fixed = fixed_weights(cells, part.weights(root))
    tjobs = tuning_jobs([c for c in cells if c.id not in fixed], part.tune, tseeds, out, part.preset,
                        base + list(part.tune_overrides)) if part.tune else []
    ejobs = grid_jobs(cells, range(part.seed_base, part.seed_base + part.seeds), out, part.preset, base,
                      fixed=fixed)
    return tjobs, ejobs


def run_study(study: Study, root: str | Path = "studies", parts: list[str] | None = None, executor=None,
              on_record=None) -> list[dict]:
    """Run the study's parts in order (or only ``parts``); each skips what its records hold."""
    from .grid import run_grid

    chosen = [p for p in study.parts if parts is None or p.name in parts]
    if parts:
        unknown = sorted(set(parts) - {p.name for p in study.parts})
        if unknown:
            raise ValueError(f"study {study.name} has no part {', '.join(unknown)}; "
                             f"its parts: {', '.join(p.name for p in study.parts)}")
    out = []
    for part in chosen:
        if isinstance(part, SweepPart):
            from .sweep import run_sweep
            out.append(run_sweep(part.pool, part_dir(root, study, part), setups=part.setups, methods=part.methods,
                                 seed=part.seed, overrides=list(part.overrides), weights=part.weights(root),
                                 executor=executor,
                                 on_record=on_record, command=f"robustgan study run {study.name} --part {part.name}"))
            continue
        out.append(run_grid(part.preset, part_dir(root, study, part), losses=part.losses, regs=part.regs,
                            attacks=part.attacks, targets=part.targets, seeds=part.seeds, seed_base=part.seed_base, steps=part.steps,
                            overrides=list(part.overrides), tune=dict(part.tune), tune_seeds=part.tune_seeds,
                            tune_overrides=list(part.tune_overrides), executor=executor, on_record=on_record,
                            share=[Path(root) / s / p for s, p in study.share], extend=part.extend,
                            replace_retuned=True, weights=part.weights(root),
                            weights_from=[f"{s}/{p}" for s, p in part.weights_from],
                            command=f"robustgan study run {study.name} --part {part.name}"))
    return out


# ------------------------------------------------------------------------------------------------- reading
@dataclass
class PartData:
    part: Part
    folder: Path
    tune_records: list
    eval_records: list
    results: dict | None
    planned_tune: int
    planned_eval: int
    superseded: list = field(default_factory=list)  # evaluation runs of an earlier tuned value


def load_part(root: str | Path, study: Study, part: Part) -> PartData:
    """The stored records of a part (not its run folders: they may be on another machine)."""
    folder = part_dir(root, study, part)
    tjobs, ejobs = part_jobs(root, study, part)
    results = read_json(folder / "results.json") if (folder / "results.json").is_file() else None
    return PartData(part, folder, stored_records(folder / "records" / "tune"),
                    stored_records(folder / "records" / "eval"), results, len(tjobs), len(ejobs),
                    stored_records(folder / "records" / "superseded"))


def _value(record: dict, key: str):
    if key == record.get("metric"):
        return record.get("final")
    return (record.get("metrics") or {}).get(key)


def _direction(key: str) -> str:
    from .results import metric_direction
    return metric_direction(key)


def _cell_values(records: list, key: str) -> dict:
    """{cell: {seed: value or None}} over ``records`` (diverged runs give None)."""
    out: dict = {}
    for r in records:
        info = r.get("info", {})
        value = _value(r, key) if r.get("status") == "complete" else None
        out.setdefault(info.get("cell"), {})[info.get("seed")] = value
    return out


def _interval(s: dict, with_sd: bool = True, bound_digits: int = 3) -> str:
    """``mean ± sd [lo, hi]`` of a :func:`summarize` result (``mean [lo, hi]`` without ``with_sd``)."""
    if s["mean"] is None:
        return "n/a"
    text = format_value(s["mean"], 3)
    if s["sd"] is not None:
        sd = f" ± {format_value(s['sd'], 2)}" if with_sd else ""
        text += f"{sd} [{format_value(s['lo'], bound_digits)}, {format_value(s['hi'], bound_digits)}]"
    return text


def _label(cell) -> str:
    """A cell's name within its loss: ``none``, ``gp-loss``, ``rfm-pgd-discriminator``."""
    return cell.id.removeprefix(f"{cell.loss}-")


def cell_table(study: Study, data: PartData) -> Table:
    """Per cell: runs, the main metric's final and best values and every check metric, each
    ``mean ± sd [95% CI]`` over the evaluation seeds, and the tuned weight."""
    records = data.eval_records
    keys = (study.metric,) + study.checks + study.extra
    values = {k: _cell_values(records, k) for k in keys}
    best = {}
    for r in records:
        info = r.get("info", {})
        v = (r.get("best") or {}).get("value") if r.get("status") == "complete" else None
        best.setdefault(info.get("cell"), {})[info.get("seed")] = v
    header = ["loss", "cell", "runs", f"final {study.metric}", f"best {study.metric}"] + list(keys[1:]) + ["tuned"]
    rows = []
    for cell in data.part.cells():
        mine = [r for r in records if r.get("info", {}).get("cell") == cell.id]
        if not mine:
            rows.append([cell.loss, _label(cell), f"0/{data.part.seeds}"] + ["not run"] * (len(keys) + 1) + [""])
            continue
        div = sum(r.get("status") == "diverged" for r in mine)
        runs = f"{len(mine)}/{data.part.seeds}" + (f" ({div} diverged)" if div else "")
        tuned = (mine[0]["info"].get("tuned") or mine[0]["info"].get("weights") or {})
        row = [cell.loss, _label(cell), runs, _interval(summarize(values[study.metric][cell.id].values())),
               _interval(summarize(best[cell.id].values()))]
        row += [_interval(summarize(values[k][cell.id].values())) for k in keys[1:]]
        row.append(", ".join(f"{k.split('.')[-1]}={v}" for k, v in tuned.items())
                   + (" (given)" if mine[0]["info"].get("weights") else "") or "default")
        rows.append(row)
    note = (f"mean ± sd [95% t interval] over the evaluation seeds "
            f"{data.part.seed_base}..{data.part.seed_base + data.part.seeds - 1}; "
            + ", ".join(f"{k}: {'lower' if _direction(k) == 'min' else 'higher'} is better" for k in keys)
            + f"; best {study.metric} = the best evaluation during training. Diverged runs have no value.")
    if getattr(data.part, "weights_from", ()):
        note += (" (given): not tuned here; the weight " + " and ".join(f"{s}/{p}" for s, p in data.part.weights_from)
                 + " tuned for the same loss and regulariser with FGM.")
    return Table(f"{data.part.name}: every cell", header, rows, note)


def _compare(study: Study, a, b, a_values: dict, b_values: dict, baseline: str) -> dict:
    """Cell ``a`` against cell ``b``, paired by seed in every metric, with the combined verdict;
    ``*_values`` are ``{metric: _cell_values(...)}``."""
    keys = (study.metric,) + study.checks + study.extra
    metrics = {k: paired(a_values[k][a.id], b_values[k][b.id], _direction(k)) for k in keys}
    return {"loss": a.loss, "method": _label(a), "baseline": baseline, "metrics": metrics,
            "verdict": combined_verdict([metrics[k]["verdict"] for k in (study.metric,) + study.checks])}


def verdicts(study: Study, data: PartData) -> list[dict]:
    """Every robust cell against every baseline cell of the same loss, paired by seed."""
    records = data.eval_records
    keys = (study.metric,) + study.checks + study.extra
    values = {k: _cell_values(records, k) for k in keys}
    have = {r.get("info", {}).get("cell") for r in records}
    cells = [c for c in data.part.cells() if c.id in have]
    out = []
    for a in cells:
        if a.reg not in study.robust:
            continue
        for b in cells:
            if b.loss != a.loss or b.reg not in study.baselines:
                continue
            out.append(_compare(study, a, b, values, values, _label(b)))
    return out


def reference_verdicts(study: Study, data: PartData, root: str | Path) -> list[dict]:
    """Every cell against the cell of the same loss and regulariser in ``study.reference``, paired
    by seed (the same evaluation seeds; identical cells, such as ``none``, are left out). Empty when
    the reference part has no records yet."""
    if not study.reference:
        return []
    ref_study, ref_part = get_study(study.reference[0]), study.reference[1]
    part = next(p for p in ref_study.parts if p.name == ref_part)
    ref = load_part(root, ref_study, part)
    keys = (study.metric,) + study.checks + study.extra
    mine = {k: _cell_values(data.eval_records, k) for k in keys}
    theirs = {k: _cell_values(ref.eval_records, k) for k in keys}
    have = {r.get("info", {}).get("cell") for r in data.eval_records}
    have_ref = {r.get("info", {}).get("cell") for r in ref.eval_records}
    out = []
    for a in data.part.cells():
        match = [b for b in part.cells() if b.loss == a.loss and b.reg == a.reg and b.id != a.id]
        if a.id not in have or len(match) != 1 or match[0].id not in have_ref:
            continue
        out.append(_compare(study, a, match[0], mine, theirs, f"{_label(match[0])} ({ref_study.name}/{ref_part})"))
    return out


def verdict_table(study: Study, data: PartData, comps: list[dict] | None = None, title: str | None = None) -> Table:
    keys = (study.metric,) + study.checks + study.extra
    header = ["loss", "method vs baseline", "pairs"] + [f"Δ {k} [95% CI]: verdict" for k in keys] + ["verdict"]
    rows = []
    for c in verdicts(study, data) if comps is None else comps:
        m = c["metrics"]
        cells = []
        for k in keys:
            d = m[k]
            cells.append("n/a" if d["lo"] is None else
                         f"{format_value(d['mean'], 3)} [{format_value(d['lo'], 3)}, {format_value(d['hi'], 3)}]: "
                         f"{d['verdict']}")
        rows.append([c["loss"], f"{c['method']} vs {c['baseline']}", str(len(m[study.metric]["seeds"]))]
                    + cells + [c["verdict"]])
    checked = " and ".join((study.metric,) + study.checks)
    note = (f"Δ = method - baseline, paired by seed, mean [95% t interval]. A verdict per metric says whether "
            f"the method is better, worse or not distinguishable; the last column holds only if {checked} "
            f"agree, else it is 'not distinguishable'. "
            + (f"{', '.join(study.extra)} are shown for the reader, not part of the verdict." if study.extra else ""))
    return Table(title or f"{data.part.name}: robust methods against the baselines", header, rows, note)


def _short(cell, part: Part) -> str:
    """A column name within a part: the regulariser, with the attack and target only where the part
    varies them or they are not the defaults (``rfm``, ``ar-pgd``, ``gp-loss``)."""
    out = [cell.reg]
    if cell.attack and (len(part.attacks) > 1 or cell.attack != "fgm"):
        out.append(cell.attack)
    if cell.target and cell.target != "discriminator":
        out.append(cell.target)
    return "-".join(out)


def glance_tables(study: Study, data: PartData) -> list[Table]:
    """The part at a glance: per metric a loss x method grid of ``mean [95% CI]``, then the combined
    verdict of every robust method against every baseline with the mean paired difference of the main
    metric. The same numbers as :func:`cell_table` and :func:`verdict_table`, shorter."""
    part, records = data.part, data.eval_records
    cells = part.cells()
    columns = list(dict.fromkeys(_short(c, part) for c in cells))
    losses = list(dict.fromkeys(c.loss for c in cells))
    by = {(c.loss, _short(c, part)): c for c in cells}
    out = []
    for k in (study.metric,) + study.checks + study.extra:
        values = _cell_values(records, k)
        rows = []
        for loss in losses:
            row = [loss]
            for col in columns:
                cell = by.get((loss, col))
                got = values.get(cell.id) if cell else None
                if not got:
                    row.append("not run" if cell else "")
                    continue
                s = summarize(got.values())
                text = _interval(s, with_sd=False, bound_digits=2)
                if s["n"] < part.seeds:
                    text += f" ({s['n']}/{part.seeds})"
                row.append(text)
            rows.append(row)
        better = "lower" if _direction(k) == "min" else "higher"
        out.append(Table(f"{part.name}: final {k} at a glance", ["loss"] + columns, rows,
                         f"mean [95% t interval] over the evaluation seeds ({better} is better); "
                         f"(n/{part.seeds}): only n seeds gave a value (runs not recorded yet, or diverged)."))
    comps = verdicts(study, data)
    baselines = list(dict.fromkeys(c["baseline"] for c in comps))
    if comps:
        label = {_label(c): _short(c, part) for c in cells}
        grid: dict = {}
        for c in comps:
            d = c["metrics"][study.metric]
            delta = "" if d["mean"] is None else f" ({format_value(d['mean'], 2)})"
            grid.setdefault((c["loss"], c["method"]), {})[c["baseline"]] = c["verdict"] + delta
        body = [[loss, label.get(m, m)] + [got.get(b, "") for b in baselines] for (loss, m), got in grid.items()]
        checked = " and ".join((study.metric,) + study.checks)
        out.append(Table(f"{part.name}: verdicts at a glance", ["loss", "method"] + [f"vs {b}" for b in baselines],
                         body, f"A verdict holds only if {checked} agree; in brackets the mean paired "
                               f"difference in {study.metric} (method - baseline)."))
    return out


def tuning_table(study: Study, data: PartData) -> Table | None:
    if not data.tune_records:
        return None
    scores: dict = {}
    for r in data.tune_records:
        info = r.get("info", {})
        cand = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in (info.get("candidate") or {}).items())
        v = r.get("final") if r.get("status") == "complete" else None
        scores.setdefault(info.get("cell"), []).append((cand, v, r.get("status")))
    tried: dict = {}  # cell -> key -> the values its candidates took
    for r in data.tune_records:
        for k, v in ((r.get("info") or {}).get("candidate") or {}).items():
            tried.setdefault(r["info"].get("cell"), {}).setdefault(k, set()).add(v)
    chosen = {}
    edge = False
    for c in (data.results or {}).get("cells", []):
        if c.get("tuned"):
            parts = []
            for k, v in c["tuned"].items():
                values = tried.get(c["id"], {}).get(k, set())
                numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)
                side = ("largest" if v == max(values) else "smallest" if v == min(values) else None) \
                    if len(values) > 2 and numeric else None
                edge = edge or side is not None
                parts.append(f"{k.split('.')[-1]}={v}" + (f" ({side} tried)" if side else ""))
            chosen[c["id"]] = ", ".join(parts)
    rows = []
    for cell, cands in scores.items():
        shown = "; ".join(f"{c}: {format_value(v, 3) if v is not None else s}" for c, v, s in cands)
        rows.append([cell, chosen.get(cell, "(tuning not finished)"), shown])
    seeds = data.part.tune_seeds
    return Table(f"{data.part.name}: tuning (final {study.metric}, {seeds} tuning seed{'s' * (seeds > 1)} "
                 f"from 1000, never an evaluation seed)", ["cell", "chosen", "candidates"], rows,
                 "A diverged candidate counts as the worst value; ties go to the first listed."
                 + (f" A choice at the grid's edge was tuned further, up to {data.part.extend} steps beyond it."
                    if data.part.extend else "")
                 + (" A value marked largest or smallest tried lies at the edge of what was tried: a wider "
                    "search might find a better one." if edge else ""))


def budget_table(study: Study, data: PartData) -> Table:
    """The budget runs' main metric at every evaluation, with its change per 1000 steps."""
    runs = {r["info"]["cell"]: r for r in data.eval_records}
    steps = sorted({e["step"] for r in runs.values() for e in r.get("evals", [])})
    header = ["step"] + [f"{c} {study.metric}" for c in runs] + [f"{c} change /1000 steps" for c in runs]
    rows = []
    prev: dict = {}
    for step in steps:
        row, changes = [str(step)], []
        for cell, r in runs.items():
            e = next((e for e in r.get("evals", []) if e["step"] == step), None)
            v = e.get(study.metric) if e else None
            row.append(format_value(v, 3) if v is not None else "")
            if v is not None and cell in prev:
                p_step, p_v = prev[cell]
                changes.append(f"{100 * (v - p_v) / p_v * 1000 / (step - p_step):+.1f}%")
            else:
                changes.append("")
            if v is not None:
                prev[cell] = (step, v)
        rows.append(row + changes)
    return Table(f"Budget: {study.metric} along training (seed {data.part.seed_base}, not an evaluation seed)",
                 header, rows, f"Chosen budget: {study.budget_note}.")


def start_table(study: Study, data: PartData) -> Table:
    """Each setup's main metric after one training step, against the pool's ``left_start`` threshold."""
    from .results import numeric
    from .sweep import POOLS, _short

    threshold = POOLS[data.part.pool].left_start
    by_setup = {(r.get("info") or {}).get("setup"): r for r in data.eval_records}
    rows, values = [], []
    for s in data.results.get("setups") or []:
        v = numeric((by_setup.get(s["id"]) or {}).get("final"))
        if v is not None:
            values.append(v)
        rows.append([s["id"], _short(s["factors"]), format_value(v, 3) if v is not None else "to do"])
    note = f"{len(values)} of {len(rows)} setups scored"
    if values:
        note += f": {format_value(min(values), 3)} to {format_value(max(values), 3)}"
    if threshold is not None:
        note += (f". A run of the sweep has left the start when its final {study.metric} is below "
                 f"{format_value(threshold, 3)}")
        if values:
            note += f", {min(values) / threshold:.1f}x below the best start here"
    return Table(f"{data.part.name}: {study.metric} of each setup after one step (seed {data.part.seed})",
                 ["setup", "loss batch lr block width act norm", study.metric], rows, note + ".")


def cost_table(study: Study, parts: list[PartData]) -> Table:
    rows = []
    total = 0.0
    shared = 0
    for d in parts:
        own_tune = [r for r in d.tune_records if not r.get("shared_from")]
        own_eval = [r for r in d.eval_records if not r.get("shared_from")]
        shared += len(d.tune_records) + len(d.eval_records) - len(own_tune) - len(own_eval)
        t = sum(r.get("wall_time") or 0 for r in own_tune)
        e = sum(r.get("wall_time") or 0 for r in own_eval)
        total += t + e
        cpus = sorted({(r.get("machine") or {}).get("cpu", "?") + " " + (r.get("machine") or {}).get("cpu_capability", "")
                       for r in own_tune + own_eval})
        beyond = sum(1 for r in d.tune_records if (r.get("info") or {}).get("beyond_grid"))
        tuned = f"{len(d.tune_records) - beyond}/{d.planned_tune}" + (f" + {beyond} beyond the grid" if beyond else "")
        rows.append([d.part.name, tuned, f"{len(d.eval_records)}/{d.planned_eval}",
                     f"{t / 3600:.2f}", f"{e / 3600:.2f}", "; ".join(c.strip() for c in cpus)])
    note = (f"Wall time of each run's last attempt, one thread per run, two runs at a time on 2 cores; "
            f"{total / 3600:.2f} hours in all.")
    aside = [r for d in parts for r in d.superseded]
    if aside:
        hours = sum(r.get("wall_time") or 0 for r in aside) / 3600
        note += (f" Not in these figures: {len(aside)} evaluation runs of an earlier tuned value "
                 f"({hours:.2f} CPU-hours), set aside in `records/superseded/` when the tuning moved.")
    if shared:
        names = ", ".join(f"{s} {p}" for s, p in study.share) or "another study"
        note += (f" {shared} recorded runs are identical runs of {names}, copied from there "
                 f"(`shared_from` in their records) and not counted here.")
    return Table("Cost and progress", ["part", "tuning runs recorded", "evaluation runs recorded",
                                       "tuning CPU-hours", "evaluation CPU-hours", "CPU (capability)"], rows, note)


def summary_markdown(study: Study, root: str | Path = "studies") -> str:
    """The study's summary from its stored records: cost, budget, cells, verdicts, tuning."""
    parts = [load_part(root, study, p) for p in study.parts]
    out = [f"# Study {study.name}: {study.description}", "",
           f"Made by `robustgan study run {study.name}`; this page by `robustgan study report {study.name}`. "
           f"Every number comes from the stored records in `{Path(root) / study.name}/*/records/`.", ""]
    out.append(cost_table(study, parts).to_markdown())
    for d in parts:
        if isinstance(d.part, SweepPart):
            if d.results is None:
                out += [f"### {d.part.name}: not run yet", ""]
                continue
            if d.part.role == "start":
                out.append(start_table(study, d).to_markdown())
                continue
            from .sweep import build_tables, rank_difference_table, subset_tables
            tables = build_tables(d.results)
            methods = list(d.results["methods"])
            groups = [methods] + [list(x) for x in d.part.also_rank]
            for subset in d.part.also_rank:  # after the summary tables, before the per-setup one
                tables[-1:-1] = subset_tables(d.results, subset)
            for group in groups:  # each robust method, then r1r2, against every method of the group not before it
                leaders = [m for m in (*study.robust, "r1r2") if m in group]
                pairs = [(a, b) for i, a in enumerate(leaders) for b in group if b != a and b not in leaders[:i]]
                for trained in (False, True):
                    tables[-1:-1] = [rank_difference_table(d.results, group, pairs, trained)]
            out += [t.to_markdown() for t in tables]
            continue
        if d.part.role == "budget":
            if d.eval_records:
                out.append(budget_table(study, d).to_markdown())
            continue
        if not d.eval_records and not d.tune_records:
            out += [f"### {d.part.name}: not run yet", ""]
            continue
        out += [t.to_markdown() for t in glance_tables(study, d)]
        out.append(cell_table(study, d).to_markdown())
        v = verdict_table(study, d)
        if v.rows:
            out.append(v.to_markdown())
        ref = reference_verdicts(study, d, root)
        if ref:
            out.append(verdict_table(study, d, ref, f"{d.part.name}: against {'/'.join(study.reference)}, "
                                                    f"paired by seed").to_markdown())
        t = tuning_table(study, d)
        if t is not None:
            out.append(t.to_markdown())
    return "\n".join(out)


# ------------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .executors import add_executor_arguments

    parser.add_argument("action", choices=("list", "run", "report"),
                        help="list: the studies and their progress; run: train what is not recorded; "
                             "report: write studies/NAME/summary.md")
    parser.add_argument("name", nargs="?", help="the study (robustgan study list)")
    parser.add_argument("--part", action="append", default=None, help="only this part (repeatable)")
    parser.add_argument("--root", default="studies", help="folder of the studies (default studies/)")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .executors import executor_from_args, print_progress

    if args.action == "list":
        for study in STUDIES.values() if not args.name else [get_study(args.name)]:
            print(f"{study.name}: {study.description}")
            for p in study.parts:
                d = load_part(args.root, study, p)
                steps = f"{p.steps} steps" if isinstance(p, Part) else f"pool {p.pool}, {p.setups} setups"
                print(f"  {p.name:12s} {p.role:6s} tuning {len(d.tune_records)}/{d.planned_tune}, "
                      f"evaluation {len(d.eval_records)}/{d.planned_eval} runs recorded, {steps}")
        return 0
    if not args.name:
        raise ValueError(f"name a study: robustgan study {args.action} NAME (one of {', '.join(STUDIES)})")
    study = get_study(args.name)
    if args.action == "report":
        path = Path(args.root) / study.name / "summary.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(summary_markdown(study, args.root))
        print(f"wrote {path}")
        return 0
    if args.dry_run:
        from .driver import print_jobs
        for p in study.parts:
            if args.part and p.name not in args.part:
                continue
            tjobs, ejobs = part_jobs(args.root, study, p)
            print_jobs(tjobs + ejobs)
            print(f"{p.name}: {len(tjobs)} tuning runs, {len(ejobs)} evaluation runs"
                  + (" (shown with the default weights; they run with the tuned ones)" if tjobs else "")
                  + (f" (weights from {', '.join(f'{s}/{q}' for s, q in p.weights_from)})"
                     if getattr(p, "weights_from", ()) else ""))
        return 0
    if args.workers is None and args.backend == "local":
        args.workers = 2
    total = sum(sum(map(len, part_jobs(args.root, study, p))) for p in study.parts
                if not args.part or p.name in args.part)
    run_study(study, args.root, args.part, executor_from_args(args), print_progress(total))
    print(f"next: robustgan study report {study.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m robustgan.experiments.studies ...`` (the same as ``robustgan study ...``)."""
    from .driver import standalone_main
    return standalone_main("study", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
