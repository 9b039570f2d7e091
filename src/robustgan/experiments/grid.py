"""The loss x regulariser grid: Table 1, Table 4 (robust loss) and Appendix F (other attacks).

    robustgan grid --preset fmnist-dcgan --losses gan,lsgan,wgan --regs none,noise,gp,ar,rfm \\
        --seeds 3 --out grids/fmnist --steps 2000
    robustgan grid --preset cifar10-resnet --regs ar,rfm --attacks fgm,fgsm,pgd,cw --out grids/appF
    robustgan grid --preset cifar10-resnet --regs none,gp,rfm --targets loss --out grids/table4
    robustgan grid --preset toy-8gaussians --regs gp,ar,rfm --tune reg.lam=0.1,1,10 --out grids/toy

Every *cell* is a (loss, regulariser[, attack, target]) combination; the attack only exists for
the attack-based regularisers (``ar``, ``rfm``) and the target (``discriminator``: penalise D;
``loss``: penalise f o D, Appendix D) for those and ``gp`` (a gp cell names its target only when
it is ``loss``: ``gan-gp-loss``), so ``none``, ``noise``, ``r1``, ``r2`` and ``r1r2`` get one cell
per loss whatever ``--attacks`` / ``--targets`` say. Which regulariser takes which setting comes
from :data:`robustgan.regularizers.REGULARIZERS`. Each cell is trained once per seed (seeds 0 .. N-1) in
``OUT/runs/<cell>-s<seed>/``. Outputs:

* ``OUT/results.json``: the grid's settings, its cells (with tuned values), the tuning scores and
  one run record per run (status, resolved config, final metrics, best-during-training value of
  the main metric, wall time; see :mod:`robustgan.experiments.results`). Rewritten after every run.
* ``OUT/table.md``: mean +- std over seeds of the final main metric and of its best value during
  training, laid out like the paper (rows: losses, columns: regularisers), one pair of tables per
  (attack, target) combination.

Lambda tuning (``--tune reg.lam=0.1,1,10``, repeatable; several keys make a product;
``--tune reg.lam=default`` tunes each cell over its registry default weight times 0.1, 1 and 10):
for every cell the key applies to (a ``reg.*`` key: the regularisers that use it, e.g. ``reg.lam``:
gp, r1, r2, r1r2, ar, rfm; ``reg.sigma``: noise; attack options only where the cell's attack takes
them; other keys: every cell), each
candidate is trained with the tuning seeds (``--tune-seeds K``: seeds 1000 .. 1000+K-1, kept apart
from the evaluation seeds so the reported numbers are not selected on their own noise) in
``OUT/tune/``. The candidate with the best mean *final* main metric wins; a diverged or failed
tuning run counts as the worst possible value; ties go to the candidate listed first. If every
candidate failed, the cell keeps the default value. The evaluation runs then use the winner.
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from .driver import (ResultsFile, command_line, csv_list, main_metric, override_key, print_jobs,
                     standalone_main)
from .executors import (MACHINE_KEYS, Job, add_executor_arguments, config_differences, executor_from_args,
                        print_progress, saved_config)
from .records import adopt_shared, read_stored
from .results import RESULT_FILE, Table, format_mean_std, format_value, mean_std

__all__ = [
    "ATTACK_REGULARIZERS",
    "Cell",
    "expand_cells",
    "parse_tune",
    "tune_applies",
    "grid_jobs",
    "tuning_jobs",
    "choose_tuned",
    "edge_candidates",
    "build_tables",
    "run_grid",
    "add_arguments",
    "run",
    "main",
]

from ..attacks import ATTACK_REGISTRY, ATTACK_SETTINGS
from ..objectives import OBJECTIVES
from ..regularizers import REGULARIZERS, SETTINGS, default_weight

#: Regularisers that use an attack (and may target D or f o D), from the registry.
ATTACK_REGULARIZERS = tuple(n for n, c in REGULARIZERS.items() if c.uses_attack)
#: Regularisers with a target setting (the attack-based ones and gp).
TARGET_REGULARIZERS = tuple(n for n, c in REGULARIZERS.items() if "target" in c.settings)
#: Config keys the grid sets itself (they may not be given as extra overrides).
GRID_KEYS = ("loss", "reg.name", "reg.attack", "reg.target", "seed")
#: ``reg.*`` keys -> the regularisers that use them (other keys apply to every cell); from the registry.
TUNE_APPLIES = {f"reg.{k}": tuple(n for n, c in REGULARIZERS.items() if k in c.settings) for k in SETTINGS}
#: ``--tune reg.lam=default``: each cell's default weight times these factors
DEFAULT_TUNE_FACTORS = (0.1, 1.0, 10.0)
TUNE_SEED_BASE = 1000


@dataclass(frozen=True)
class Cell:
    """One grid cell. ``attack`` is ``None`` unless ``reg`` uses an attack; ``target`` is ``None``
    unless ``reg`` has one (for gp: unless it is ``loss``)."""

    loss: str
    reg: str
    attack: str | None = None
    target: str | None = None

    @property
    def id(self) -> str:
        """``gan-none``, ``lsgan-rfm-fgm-discriminator``, ``wgan-ar-pgd-loss``."""
        return "-".join(p for p in (self.loss, self.reg, self.attack, self.target) if p)

    def overrides(self) -> list[str]:
        """The config overrides that select this cell."""
        out = [f"loss={self.loss}", f"reg.name={self.reg}"]
        if self.attack:
            out.append(f"reg.attack={self.attack}")
        if self.target:
            out.append(f"reg.target={self.target}")
        return out

    def as_dict(self) -> dict:
        return {"id": self.id, "loss": self.loss, "reg": self.reg, "attack": self.attack, "target": self.target}


def _check_names(kind: str, names, choices) -> list[str]:
    names = list(names)
    if not names:
        raise ValueError(f"--{kind} is empty; give a comma-separated list from {', '.join(map(str, choices))}")
    bad = [n for n in names if n not in choices]
    if bad:
        raise ValueError(f"unknown {kind} {', '.join(map(repr, bad))}; choose from {', '.join(map(str, choices))}")
    if len(set(names)) != len(names):
        raise ValueError(f"--{kind} lists a name twice: {','.join(names)}")
    return names


def expand_cells(losses, regs, attacks=("fgm",), targets=("discriminator",)) -> list[Cell]:
    """All cells of the grid, loss-major, in the order given.

    ``attacks`` x ``targets`` multiply only the ar/rfm cells; ``none``, ``noise`` and ``gp`` get one
    cell per loss. Raises ValueError for unknown or repeated names.
    """
    losses = _check_names("losses", losses, tuple(OBJECTIVES))
    regs = _check_names("regs", regs, tuple(REGULARIZERS))
    attacks = _check_names("attacks", attacks, tuple(ATTACK_REGISTRY))
    targets = _check_names("targets", targets, SETTINGS["target"].choices)
    cells = []
    for loss in losses:
        for reg in regs:
            if reg in ATTACK_REGULARIZERS:
                cells += [Cell(loss, reg, a, t) for a in attacks for t in targets]
            elif reg in TARGET_REGULARIZERS:
                cells += [Cell(loss, reg, None, None if t == "discriminator" else t) for t in targets]
            else:
                cells.append(Cell(loss, reg))
    return cells


def cell_for(loss: str, reg: str, attack: str | None, target: str | None) -> Cell:
    """The cell of ``reg`` in the (attack, target) table of a grid."""
    if reg in ATTACK_REGULARIZERS:
        return Cell(loss, reg, attack, target)
    if reg in TARGET_REGULARIZERS and target not in (None, "discriminator"):
        return Cell(loss, reg, None, target)
    return Cell(loss, reg)


def parse_tune(specs: list[str] | None) -> dict[str, list]:
    """``["reg.lam=0.1,1,10"]`` -> ``{"reg.lam": [0.1, 1, 10]}`` (values parsed as YAML scalars)."""
    out: dict[str, list] = {}
    for spec in specs or []:
        key = override_key(spec)
        raw = spec.split("=", 1)[1]
        values = [_scalar(v) for v in raw.split(",") if v.strip()]
        if key == "reg.lam" and values == ["default"]:
            values = "default"  # per cell: its registry default weight times DEFAULT_TUNE_FACTORS
        if not values:
            raise ValueError(f"--tune {spec}: give candidate values, e.g. --tune reg.lam=0.1,1,10")
        if key in GRID_KEYS:
            raise ValueError(f"--tune {key}: the grid sets {key} itself; tune a setting such as reg.lam")
        if key in out:
            raise ValueError(f"--tune {key} given twice")
        out[key] = values
    return out


def _scalar(text: str):
    """A YAML scalar; '1e-3' (which YAML 1.1 reads as a string) becomes a float."""
    import yaml

    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def tune_applies(key: str, reg: str, attack: str | None = None) -> bool:
    """Whether setting ``key`` makes sense for regulariser ``reg`` (see :data:`TUNE_APPLIES`) and,
    for an attack option, for ``attack`` (the config default when None)."""
    if reg not in TUNE_APPLIES.get(key, (reg,)):
        return False
    name = key.split(".", 1)[1] if key.startswith("reg.") else None
    if name in ATTACK_SETTINGS:
        return name in ATTACK_REGISTRY[attack or SETTINGS["attack"].default].options
    return True


def _tune_keys(cell: Cell, tune: dict) -> list[str]:
    return [k for k in tune if tune_applies(k, cell.reg, cell.attack)]


def _cell_overrides(overrides: list[str], cell: Cell) -> list[str]:
    """The grid-wide overrides that apply to ``cell``: a ``reg.*`` setting its regulariser (or its
    attack) does not use is left out (the config refuses settings that would mean nothing)."""
    return [text for text in overrides if tune_applies(override_key(text), cell.reg, cell.attack)]


def _tune_values(cell: Cell, key: str, tune: dict) -> list:
    if tune[key] == "default":
        w = default_weight(cell.reg, cell.loss)
        return [float(f"{w * f:.6g}") for f in DEFAULT_TUNE_FACTORS]
    return tune[key]


def _value_tag(key: str, value) -> str:
    return f"{key.split('.')[-1]}{value}".replace("/", "_")


def _base_overrides(overrides: list[str], steps: int | None, tune: dict) -> list[str]:
    keys = []
    for text in overrides:
        key = override_key(text)
        if key in GRID_KEYS:
            raise ValueError(f"override {text!r}: the grid sets {key} itself (use --losses, --regs, --attacks, "
                             f"--targets, --seeds)")
        if key in tune:
            raise ValueError(f"override {text!r}: {key} is being tuned with --tune")
        keys.append(key)
    base = list(overrides)
    if "log.progress" not in keys:
        base.append("log.progress=false")  # progress bars would only fill output.txt
    if steps is not None:
        if "train.steps" in keys:
            raise ValueError("give the number of steps once: --steps or train.steps=..., not both")
        base.append(f"train.steps={int(steps)}")
    return base


def grid_jobs(cells: list[Cell], seeds, out: str | Path, preset: str | None, overrides: list[str],
              tuned: dict[str, dict] | None = None, metric: str | None = None,
              fixed: dict[str, dict] | None = None) -> list[Job]:
    """One :class:`Job` per (cell, seed) in ``out/runs/<cell>-s<seed>``; ``tuned[cell.id]`` holds the
    chosen ``{key: value}`` of a tuned cell, ``fixed[cell.id]`` the given one of a cell that is not
    tuned (see :func:`fixed_weights`). ``overrides`` are the full base overrides."""
    jobs = []
    seeds = list(seeds)
    first = seeds[0] if seeds else None
    for cell in cells:
        given = (fixed or {}).get(cell.id) or {}
        chosen = given or (tuned or {}).get(cell.id) or {}
        for seed in seeds:
            run_id = f"{cell.id}-s{seed}"
            ov = (_cell_overrides(overrides, cell) + cell.overrides() + [f"{k}={v}" for k, v in chosen.items()]
                  + [f"seed={seed}"])
            info = dict(cell.as_dict(), cell=cell.id, seed=seed, tuned=None if given else (dict(chosen) or None),
                        phase="eval")
            if given:
                info["weights"] = dict(given)
            info.pop("id")
            jobs.append(Job(run_id, Path(out) / "runs" / run_id, preset, ov, info, metric,
                            record_dir=Path(out) / "records" / "eval" / run_id, record_samples=seed == first))
    return jobs


def fixed_weights(cells: list[Cell], weights: dict | None) -> dict[str, dict]:
    """``{cell_id: {key: value}}`` for the cells whose loss and regulariser ``weights`` holds
    (``{loss: {reg: {key: value}}}``, e.g. :func:`robustgan.experiments.sweep.tuned_weights` of
    another grid): those cells are not tuned and run with that weight, whatever their attack or
    target. The other cells are left to the grid's tuning (or their defaults)."""
    out = {}
    for cell in cells:
        given = ((weights or {}).get(cell.loss) or {}).get(cell.reg)
        if given:
            out[cell.id] = dict(given)
    return out


def _candidates(keys: list[str], tune: dict, cell: Cell) -> list[dict]:
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_tune_values(cell, k, tune) for k in keys))]


def tuning_jobs(cells: list[Cell], tune: dict, tune_seeds, out: str | Path, preset: str | None,
                overrides: list[str], metric: str | None = None, candidates: dict | None = None) -> list[Job]:
    """The tuning runs: every candidate of every tunable cell, once per tuning seed, in ``out/tune/``.

    ``candidates`` (``{cell_id: [candidate dicts]}``), if given, replaces the grid: only those cells,
    with those candidates (the values beyond the grid's edge, see :func:`edge_candidates`)."""
    jobs = []
    for cell in cells:
        keys = _tune_keys(cell, tune)
        if not keys or (candidates is not None and cell.id not in candidates):
            continue
        beyond = candidates is not None
        for cand in (candidates[cell.id] if beyond else _candidates(keys, tune, cell)):
            tag = "-".join(_value_tag(k, v) for k, v in cand.items())
            for seed in tune_seeds:
                run_id = f"{cell.id}-{tag}-s{seed}"
                ov = _cell_overrides(overrides, cell) + cell.overrides() + [f"{k}={v}" for k, v in cand.items()] + [f"seed={seed}"]
                info = dict(cell.as_dict(), cell=cell.id, seed=seed, candidate=cand, phase="tune")
                if beyond:
                    info["beyond_grid"] = True
                info.pop("id")
                jobs.append(Job(run_id, Path(out) / "tune" / run_id, preset, ov, info, metric,
                                record_dir=Path(out) / "records" / "tune" / run_id))
    return jobs


def _step_beyond(values: list, chosen):
    """One step past ``chosen`` if it is the smallest or the largest of ``values`` (3 or more
    positive numbers), by the ratio to its neighbour (a geometric grid 0.1, 1, 10 continues
    with 0.01 or 100; integers stay integers); ``None`` if ``chosen`` lies inside."""
    if len(set(values)) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                       for v in list(values) + [chosen]):
        return None
    nums = sorted({float(v) for v in values})
    c = float(chosen)
    if c == nums[0]:
        nxt = c * c / nums[1]
    elif c == nums[-1]:
        nxt = c * c / nums[-2]
    else:
        return None
    if all(isinstance(v, int) for v in values):
        nxt = int(round(nxt))
        return None if nxt == chosen or nxt <= 0 else nxt
    return float(f"{nxt:.3g}")


def edge_candidates(cells: list[Cell], tune: dict, tuning: dict, extra: dict) -> dict[str, dict]:
    """``{cell_id: candidate}`` for each cell tuned over one key whose choice is the smallest or
    the largest value tried (the grid's and those in ``extra``): the next value beyond it."""
    out = {}
    for cell in cells:
        keys = _tune_keys(cell, tune)
        chosen = (tuning.get(cell.id) or {}).get("chosen")
        if len(keys) != 1 or not chosen:
            continue
        key = keys[0]
        tried = list(_tune_values(cell, key, tune)) + [c[key] for c in extra.get(cell.id, [])]
        nxt = _step_beyond(tried, chosen[key])
        if nxt is not None and nxt not in tried:
            out[cell.id] = {key: nxt}
    return out


def choose_tuned(cells: list[Cell], tune: dict, records: list[dict], direction: str,
                 extra: dict | None = None) -> dict[str, dict]:
    """Pick each tunable cell's best candidate from its tuning ``records``; ``extra``
    (``{cell_id: [candidates]}``) adds the values tried beyond the grid, listed after it.

    Score of a candidate: the mean final main metric over its tuning seeds, where a run without a
    finite final value (diverged, failed, not evaluated) counts as +inf for ``direction="min"``
    (-inf for ``"max"``). The best score wins; ties go to the candidate listed first. Returns
    ``{cell_id: {"candidates": [{"values", "score", "runs", "statuses"}], "chosen": dict | None, "note"}}``;
    ``chosen`` is ``None`` when every candidate failed (the cell then keeps the default).
    """
    worst = math.inf if direction == "min" else -math.inf
    out = {}
    for cell in cells:
        keys = _tune_keys(cell, tune)
        if not keys:
            continue
        cands = []
        for cand in _candidates(keys, tune, cell) + list((extra or {}).get(cell.id, [])):
            mine = [r for r in records if r.get("info", {}).get("cell") == cell.id
                    and r.get("info", {}).get("candidate") == cand]
            scores = [r["final"] if isinstance(r.get("final"), (int, float)) and math.isfinite(r["final"]) else worst
                      for r in mine]
            score = sum(scores) / len(scores) if scores else worst
            cands.append({"values": cand, "score": score if math.isfinite(score) else None,
                          "runs": [r["run_id"] for r in mine], "statuses": [r.get("status") for r in mine],
                          "_key": score})
        best = None
        for c in cands:  # strict improvement only: the first listed wins ties
            if math.isfinite(c["_key"]) and (best is None or (c["_key"] < best["_key"] if direction == "min"
                                                              else c["_key"] > best["_key"])):
                best = c
        for c in cands:
            c.pop("_key")
        out[cell.id] = {"candidates": cands, "chosen": dict(best["values"]) if best else None,
                        "note": None if best else "every tuning run failed; the default value is used"}
    return out


# ------------------------------------------------------------------------------------------------ tables
def build_tables(results: dict) -> list[Table]:
    """The grid's result tables from ``results.json`` content.

    For every (attack, target) combination of the ar/rfm cells: a table of the final main metric and
    one of its best value during training, each cell ``mean ± std`` over seeds (sample std, ddof 1;
    ``(n/N)`` when only n of N seeds gave a value), the best mean of each row in bold.
    """
    metric, direction = results["metric"], results["direction"]
    cells = [Cell(c["loss"], c["reg"], c.get("attack"), c.get("target")) for c in results["cells"]]
    runs = [r for r in results.get("runs", []) if r.get("info", {}).get("phase", "eval") == "eval"]
    losses = list(dict.fromkeys(c.loss for c in cells))
    regs = list(dict.fromkeys(c.reg for c in cells))
    combos = list(dict.fromkeys((c.attack, c.target) for c in cells if c.reg in ATTACK_REGULARIZERS))
    if not combos:  # only gp has a target: one table per target it was run with
        targets = list(dict.fromkeys(c.target or "discriminator" for c in cells if c.reg in TARGET_REGULARIZERS))
        combos = [(None, t) for t in targets] if targets not in ([], ["discriminator"]) else [(None, None)]
    n_seeds = len(results.get("seeds", [])) or 1
    better = "lower" if direction == "min" else "higher"
    tables = []
    for attack, target in combos:
        where = f", attack {attack}, target {target}" if attack else (f", target {target}" if target else "")
        for which, title in (("final", f"Final {metric}"), ("best", f"Best {metric} during training")):
            header = ["loss"] + regs
            rows, bold = [], set()
            for i, loss in enumerate(losses):
                row, means = [loss], {}
                for j, reg in enumerate(regs, start=1):
                    cell = cell_for(loss, reg, attack, target)
                    mine = [r for r in runs if r.get("info", {}).get("cell") == cell.id]
                    if cell not in cells:
                        row.append("")
                        continue
                    vals = [r.get("final") if which == "final" else (r.get("best") or {}).get("value") for r in mine]
                    mean, std, n = mean_std(vals)
                    total = max(len(mine), n_seeds)
                    row.append(format_mean_std(mean, std, n, total) if mine else "not run")
                    if mean is not None:
                        means[j] = mean
                if means:
                    pick = min if direction == "min" else max
                    best = pick(means.values())
                    bold |= {(i, j) for j, m in means.items() if m == best}
                rows.append(row)
            note = (f"{metric}: {better} is better; mean ± std over {n_seeds} seed(s)"
                    + ("; best = the best evaluation during training (log.eval_every)" if which == "best" else ""))
            tables.append(Table(f"{title}{where}", header, rows, note, bold))
    tuning = results.get("tuning") or {}
    if tuning:
        rows = []
        for cell_id, t in tuning.items():
            cands = "; ".join(f"{_fmt_cand(c['values'])}: {format_value(c['score'])}" for c in t["candidates"])
            chosen = _fmt_cand(t["chosen"]) if t.get("chosen") else "default (all failed)"
            rows.append([cell_id, chosen, cands])
        tables.append(Table(f"Tuning (mean final {metric} over {len(results.get('tune_seeds', []))} tuning seed(s))",
                            ["cell", "chosen", "candidates"], rows,
                            "Diverged or failed tuning runs count as the worst value; ties go to the first candidate."))
    counts = {}
    for r in runs:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    failed = [r for r in runs if r.get("status") != "complete"]
    if failed:
        tables.append(Table("Runs that did not complete", ["run", "status", "error"],
                            [[r["run_id"], r["status"], r.get("error") or ""] for r in failed]))
    return tables


def _fmt_cand(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def tables_markdown(results: dict) -> str:
    """The contents of ``table.md``."""
    head = [f"# Grid: {results.get('preset')} ({results['metric']})", ""]
    if results.get("command"):
        head += [f"`{results['command']}`", ""]
    return "\n".join(head) + "\n".join(t.to_markdown() for t in build_tables(results))


# ------------------------------------------------------------------------------------------------- driver
def run_grid(preset: str | None, out: str | Path, *, losses=("gan", "lsgan", "wgan"),
             regs=("none", "noise", "gp", "ar", "rfm"), attacks=("fgm",), targets=("discriminator",),
             seeds: int = 3, steps: int | None = None, overrides: list[str] | None = None,
             tune: dict | None = None, tune_seeds: int = 1, metric: str | None = None,
             executor=None, on_record=None, command: str | None = None, seed_base: int = 0,
             tune_overrides: list[str] | None = None, share=(), extend: int = 0,
             replace_retuned: bool = False, weights: dict | None = None, weights_from=()) -> dict:
    """Train the grid (tuning first if ``tune``), write ``results.json`` and ``table.md``; return the results.

    Args:
        preset: preset name or YAML file every run starts from.
        out: the grid folder.
        losses, regs, attacks, targets: the cells (see :func:`expand_cells`).
        seeds: evaluation seeds ``seed_base .. seed_base+seeds-1`` per cell (>= 1; ``seed_base``
            default 0); they may not overlap the tuning seeds.
        steps: ``train.steps`` of every run (``None``: the preset's).
        overrides: extra ``key=value`` overrides for every run.
        tune: ``{key: [candidates]}`` (see :func:`parse_tune`); ``tune_seeds`` seeds per candidate.
        tune_overrides: extra overrides for the tuning runs only, appended after ``overrides``; for
            settings that do not change training, e.g. ``log.eval_every=0`` (tuning reads only the
            final value).
        metric: main metric (``None``: ``fd`` for images, ``w1`` for 2-D data).
        executor: a :mod:`robustgan.experiments.executors` executor (default: one local subprocess).
        on_record: called as ``on_record(job, record, reused)`` after each run.
        share: folders of other grids whose stored records stand for identical runs here: a run
            with no record of its own whose config equals a complete run recorded under
            ``SHARE/records/`` with the same run id is not trained; its record is copied (see
            :func:`robustgan.experiments.records.adopt_shared`).
        extend: rounds of tuning past the grid's edge: a cell tuned over one key whose best value
            is the smallest or the largest tried gets one more candidate beyond it (0.1 -> 0.01,
            1000 -> 10000; see :func:`edge_candidates`), trained with the tuning seeds, and the
            choice is made again; up to ``extend`` times (default 0: the grid only).
        replace_retuned: an evaluation run recorded with another value of a tuned key (the choice
            moved, e.g. after ``extend``) is set aside, not refused: its record moves to
            ``records/superseded/`` and its run folder to ``runs/<run_id>.superseded``, and it
            trains again with the new value. Any other difference is still refused.
        weights: ``{loss: {reg: {key: value}}}``: the cells of those losses and regularisers are not
            tuned; they run with these weights (:func:`fixed_weights`), e.g. Appendix F's attacks at
            the weight Table 1 tuned with FGM. ``weights_from`` names where they came from (kept in
            ``results.json``).
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {seeds!r}")
    if not isinstance(tune_seeds, int) or tune_seeds < 1:
        raise ValueError(f"--tune-seeds must be a positive integer, got {tune_seeds!r}")
    out = Path(out)
    tune = dict(tune or {})
    cells = expand_cells(losses, regs, attacks, targets)
    base = _base_overrides(list(overrides or []), steps, tune)
    probe = Job("probe", out / "runs" / "probe", preset, base + cells[0].overrides())
    metric, direction = main_metric(metric, probe.config())
    seed_list = list(range(seed_base, seed_base + seeds))
    tune_seed_list = list(range(TUNE_SEED_BASE, TUNE_SEED_BASE + tune_seeds)) if tune else []
    if set(seed_list) & set(tune_seed_list):
        raise ValueError(f"evaluation seeds {seed_list[0]}..{seed_list[-1]} overlap the tuning seeds "
                         f"{tune_seed_list[0]}..{tune_seed_list[-1]}; choose another seed base")
    fixed = fixed_weights(cells, weights)
    tcells = [c for c in cells if c.id not in fixed]
    results = {
        "kind": "grid", "version": 1, "command": command, "preset": preset, "metric": metric, "direction": direction,
        "losses": list(losses), "regs": list(regs), "attacks": list(attacks), "targets": list(targets),
        "seeds": seed_list, "steps": steps, "overrides": base, "tune": tune, "tune_seeds": tune_seed_list,
        "tune_overrides": list(tune_overrides or []),
        "cells": [dict(c.as_dict(), tuned=None, **({"weights": fixed[c.id]} if c.id in fixed else {}))
                  for c in cells], "tuning": {}, "tuning_runs": [], "runs": [],
    }
    if fixed:
        results["weights_from"] = [str(w) for w in weights_from]
    file = ResultsFile(out / "results.json", results, carry=("tuning_runs", "runs"))
    if tune and file.earlier:
        _keep_earlier_choices(results, file.earlier)

    # Every config is resolved (and every run folder checked) before the first run starts.
    tjobs = tuning_jobs(tcells, tune, tune_seed_list, out, preset, base + list(tune_overrides or []),
                        metric) if tune else []
    mjobs_untuned = grid_jobs(cells, seed_list, out, preset, base, None, metric, fixed)
    for job in tjobs + mjobs_untuned:
        job.config()

    file.save()
    tuned = {}
    if tjobs:
        share_records(tjobs, share, "tune")
        file.run(tjobs, executor, "tuning_runs", on_record)
        results["tuning"] = choose_tuned(tcells, tune, results["tuning_runs"], direction)
        extra: dict = {}
        for _ in range(extend):
            new = edge_candidates(tcells, tune, results["tuning"], extra)
            if not new:
                break
            for cid, cand in new.items():
                extra.setdefault(cid, []).append(cand)
            xjobs = tuning_jobs(tcells, tune, tune_seed_list, out, preset, base + list(tune_overrides or []),
                                metric, candidates={cid: [cand] for cid, cand in new.items()})
            share_records(xjobs, share, "tune")
            file.run(xjobs, executor, "tuning_runs", on_record)
            results["tuning"] = choose_tuned(tcells, tune, results["tuning_runs"], direction, extra)
        results["tuned_beyond_grid"] = extra
        tuned = {cid: t["chosen"] for cid, t in results["tuning"].items() if t["chosen"]}
        for c in results["cells"]:
            c["tuned"] = tuned.get(c["id"])
        file.save()
    mjobs = grid_jobs(cells, seed_list, out, preset, base, tuned, metric, fixed)
    if replace_retuned:
        file.forget(supersede_retuned(mjobs, list(tune)))
    share_records(mjobs, share, "eval")
    file.run(mjobs, executor, "runs", on_record)
    file.close()
    file.write_table(tables_markdown(results))
    return results


def _keep_earlier_choices(results: dict, earlier: dict) -> None:
    """Until this run's tuning has chosen again, ``results`` shows the choices the earlier
    ``results.json`` recorded (for the cells both have), so a rerun stopped during tuning leaves
    the tuned values in the file. The tuning overwrites them all."""
    cells = {c["id"] for c in results["cells"]}
    results["tuning"] = {cid: t for cid, t in (earlier.get("tuning") or {}).items() if cid in cells}
    results["tuned_beyond_grid"] = {cid: v for cid, v in (earlier.get("tuned_beyond_grid") or {}).items()
                                    if cid in cells}
    before = {c.get("id"): c.get("tuned") for c in earlier.get("cells") or [] if isinstance(c, dict)}
    for c in results["cells"]:
        c["tuned"] = before.get(c["id"])


def supersede_retuned(jobs: list[Job], tuned_keys: list[str]) -> list[str]:
    """Set aside each job's earlier run whose config differs from the job's only in tuned keys:
    its stored record moves to ``records/superseded/<run_id>/`` and its run folder to
    ``runs/<run_id>.superseded`` (each replacing an older one), so the job trains again. Returns
    the run ids set aside; prints one line for each."""
    import shutil

    def retuned(saved) -> bool:
        if not saved:
            return False
        diffs = config_differences(saved, cfg, ignore=MACHINE_KEYS)
        return bool(diffs) and all(d.split(":", 1)[0] in tuned_keys for d in diffs)

    moved = []
    for job in jobs:
        cfg = job.config()
        run_dir = Path(job.run_dir)
        saved_run = saved_config(run_dir)
        stored = read_stored(job.record_dir) if job.record_dir else None
        hit = False
        if stored is not None and retuned(stored.get("config")):
            aside = Path(job.record_dir).parent.parent / "superseded" / job.run_id
            if aside.exists():
                shutil.rmtree(aside)
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(job.record_dir), str(aside))
            hit = True
        if retuned(saved_run):
            aside = run_dir.with_name(run_dir.name + ".superseded")
            if aside.exists():
                shutil.rmtree(aside)
            shutil.move(str(run_dir), str(aside))
            hit = True
        if hit:
            changed = config_differences((stored or {}).get("config") or saved_run, cfg, ignore=MACHINE_KEYS)
            print(f"{job.run_id}: the tuned value changed ({'; '.join(changed)}); its earlier run is set aside "
                  f"(records/superseded/) and it trains again", flush=True)
            moved.append(job.run_id)
    return moved


def share_records(jobs: list[Job], share, phase: str) -> int:
    """Copy into each job's record folder an identical complete run recorded under
    ``SHARE/records/<phase>/<run_id>`` for one of the ``share`` folders, unless the job has a record
    or a finished run of its own. Returns how many records were copied."""
    if not share:
        return 0
    copied = 0
    for job in jobs:
        if not job.record_dir or (Path(job.run_dir) / RESULT_FILE).is_file():
            continue
        sources = [Path(s) / "records" / phase / job.run_id for s in share]
        if adopt_shared(job.record_dir, job.config(), sources,
                        lambda a, b: config_differences(a, b, ignore=MACHINE_KEYS)) is not None:
            copied += 1
    return copied


# ------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``robustgan grid``."""
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides for every run, e.g. log.eval_every=500 optim.d_steps=2")
    parser.add_argument("--preset", required=True, help="preset name or YAML file every run starts from")
    parser.add_argument("--out", required=True, help="grid folder (runs/, results.json, table.md)")
    parser.add_argument("--losses", type=csv_list, default=["gan", "lsgan", "wgan"],
                        help=f"from {','.join(OBJECTIVES)} (default gan,lsgan,wgan)")
    parser.add_argument("--regs", type=csv_list, default=["none", "noise", "gp", "ar", "rfm"],
                        help=f"from {','.join(REGULARIZERS)} (default none,noise,gp,ar,rfm)")
    parser.add_argument("--attacks", type=csv_list, default=["fgm"],
                        help=f"for {'/'.join(ATTACK_REGULARIZERS)}: {','.join(ATTACK_REGISTRY)} (default fgm)")
    parser.add_argument("--targets", type=csv_list, default=["discriminator"],
                        help=f"for {'/'.join(TARGET_REGULARIZERS)}: discriminator (robust D) and/or loss (f o D, Table 4)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell: 0 .. N-1 (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="train.steps of every run (default: the preset's)")
    parser.add_argument("--tune", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="tune KEY per cell over the candidates, e.g. reg.lam=0.1,1,10, or reg.lam=default "
                             "(each cell's default weight x 0.1, 1, 10); repeatable")
    parser.add_argument("--tune-seeds", type=int, default=1, help="tuning seeds per candidate (default 1)")
    parser.add_argument("--extend-edges", type=int, default=0, metavar="N",
                        help="when a cell's best value is the smallest or largest tried, try one more beyond it, "
                             "up to N times (default 0)")
    parser.add_argument("--metric", default=None,
                        help="main metric (default fd for images, w1 for 2-D data); e.g. kid, modes_covered")
    parser.add_argument("--weights-from", action="append", default=[], metavar="GRID",
                        help="a tuned grid's folder (repeatable): each cell whose loss and regulariser that grid "
                             "tuned (with fgm, on D) runs at that weight, for every attack and target, and is "
                             "not tuned here")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``robustgan grid``."""
    if not args.dry_run:  # a file, a folder under a file, a read-only place: one line, before any run
        from ..train.rundir import prepare_run_dir
        prepare_run_dir(args.out)
    from .sweep import tuned_weights

    tune = parse_tune(args.tune)
    cells = expand_cells(args.losses, args.regs, args.attacks, args.targets)
    base = _base_overrides(list(args.overrides), args.steps, tune)
    weights = tuned_weights(args.weights_from) if args.weights_from else None
    fixed = fixed_weights(cells, weights)
    tjobs = tuning_jobs([c for c in cells if c.id not in fixed], tune,
                        list(range(TUNE_SEED_BASE, TUNE_SEED_BASE + args.tune_seeds)), args.out,
                        args.preset, base) if tune else []
    jobs = grid_jobs(cells, range(args.seeds), args.out, args.preset, base, fixed=fixed)
    if args.dry_run:
        print_jobs(tjobs + jobs)
        print(f"{len(cells)} cells, {len(jobs)} runs" + (f" (+ {len(tjobs)} tuning runs; evaluation runs then use "
                                                         f"the tuned values)" if tjobs else ""))
        return 0
    executor = executor_from_args(args)
    print(f"grid: {len(cells)} cells x {args.seeds} seeds = {len(jobs)} runs"
          + (f" after {len(tjobs)} tuning runs" if tjobs else "") + f", in {args.out}", flush=True)
    results = run_grid(args.preset, args.out, losses=args.losses, regs=args.regs, attacks=args.attacks,
                       targets=args.targets, seeds=args.seeds, steps=args.steps, overrides=list(args.overrides),
                       tune=tune, tune_seeds=args.tune_seeds, metric=args.metric, executor=executor,
                       extend=args.extend_edges, weights=weights, weights_from=args.weights_from,
                       on_record=print_progress(len(jobs) + len(tjobs)), command=command_line(args, "grid"))
    statuses = [r["status"] for r in results["runs"]]
    print(f"{statuses.count('complete')} complete, {statuses.count('diverged')} diverged, "
          f"{statuses.count('failed')} failed; wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'table.md'}")
    print(f"next: robustgan report {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m robustgan.experiments.grid ...`` (the same as ``robustgan grid ...``)."""
    return standalone_main("grid", add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
