"""``gro-fast ablation``: the paper's GRPO -> + revision -> + consolidation ablation, measured.

  gro-fast ablation [recipe.yaml] [key=value ...] [--seeds N] [--arms grpo,revision,gro]
                    [--quick] [--out DIR] [--jobs N]

Arms (``ARMS``, the one place that maps an arm to config keys):
  grpo      G plain samples per prompt, VisionReasoner reward;
  revision  GRO's initial response + G revisions, reward without the improvement term
            (omega = 0) and no post-scaling (A_hat = A);
  gro       omega = 5 and A_hat = (1 + dphi) A.
Per seed, one supervised warm start (with revision-turn examples) is trained once and every
arm starts from it, so the arms differ only in the RL algorithm. With
``ablation.pretrain_steps``, every seed's warm start starts from one shared pretraining on
one-shape scenes (``warm_start.difficulty: single``), as it would from a pretrained
checkpoint: a model built from scratch learns there to look at the image
(docs/ablation.md). Every arm gets the same budget of generated tokens (``trainer.max_generated_tokens``): GRO spends 1 + G samples
per prompt and longer prefixes, so GRPO takes more steps for the same tokens. Held-out
Acc@0.5 / mean IoU / accuracy are scored greedily on the hard and the easy synthetic splits
after the warm start (shared by the arms) and ``ablation.evals`` times during RL. A run's
result is written when it finishes, so rerunning the command skips finished (arm, seed)
runs. The recipe's ``ablation:`` section (``AblationConfig``) fixes arms, seeds and budget
before any result is seen. Reports are ``ablation_report.py``'s job.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields

from .config import (Config, ConfigError, apply_overrides, config_from_values, parse_override,
                     read_recipe)

ARMS: dict[str, tuple[str, ...]] = {
    "grpo": ("algorithm.name=grpo",),
    "revision": ("algorithm.name=gro", "algorithm.omega=0", "algorithm.post_scale=false"),
    "gro": ("algorithm.name=gro", "algorithm.omega=5", "algorithm.post_scale=true"),
}
"""Each arm as overrides of the training config (the only place arms touch config keys)."""

QUICK = ("ablation.seeds=1", "ablation.token_budget=3000", "ablation.eval_size=32",
         "ablation.evals=1", "warm_start.steps=60")
"""``--quick``: the same pipeline, a few steps and a few held-out prompts (minutes on CPU)."""


@dataclass
class AblationConfig:
    arms: list = field(default_factory=lambda: list(ARMS))
    """Arms to run, in order (names from ``ARMS``)."""
    seeds: int = 3
    """Seeds 0..N-1; each seed has its own model init, warm start, data order and sampling."""
    token_budget: int = 100000
    """Generated tokens per RL run, the same for every arm."""
    max_steps: int = 400
    """Upper bound on RL steps per run (the token budget normally stops it first)."""
    eval_size: int = 512
    """Held-out prompts per split (hard and easy) scored greedily."""
    evals: int = 3
    """Held-out scorings during RL, evenly spaced in generated tokens (plus before/after)."""
    pretrain_steps: int = 0
    """Supervised steps on one-shape scenes (``warm_start.difficulty: single``, no revision
    turns), trained once before the warm starts and shared by every seed, as a pretrained
    checkpoint would be; 0: the warm starts start from ``model.path``."""


PRETRAIN_EVAL = 128
"""Held-out prompts per split that score the shared pretraining."""
QUICK_PRETRAIN = 20
"""``--quick`` caps a recipe's pretraining at this many steps."""


def split_ablation_values(values: dict, overrides: list[str]
                          ) -> tuple[dict, list[str], list[str], list[str]]:
    """A recipe's mapping and command-line ``key=value`` overrides, split into (training
    values, the recipe's ``ablation:`` entries as overrides, training overrides, ablation
    overrides)."""
    values = dict(values)
    ablation = values.pop("ablation", None) or {}
    if not isinstance(ablation, dict):
        raise ConfigError(f"ablation: expected a mapping, got {ablation!r}")
    recipe = [f"ablation.{k}={json.dumps(v)}" for k, v in ablation.items()]
    own = [o for o in overrides if o.strip().startswith("ablation.")]
    train = [o for o in overrides if not o.strip().startswith("ablation.")]
    return values, recipe, train, own


def ablation_config(overrides: list[str]) -> AblationConfig:
    """``AblationConfig`` from ``ablation.key=value`` overrides; errors name the key."""
    cfg = AblationConfig()
    names = {f.name for f in fields(cfg)}
    for text in overrides:
        parts, value = parse_override(text)
        if len(parts) != 2 or parts[1] not in names:
            raise ConfigError(f"unknown config key {'.'.join(parts)!r}; known keys: "
                              + ", ".join(f"ablation.{n}" for n in sorted(names)))
        if parts[1] == "arms" and isinstance(value, str):
            value = [a.strip() for a in value.split(",") if a.strip()]
        setattr(cfg, parts[1], value)
    return check_ablation(cfg)


def check_ablation(cfg: AblationConfig) -> AblationConfig:
    """Raises ``ConfigError`` naming the bad ``ablation.*`` key."""
    if not isinstance(cfg.arms, list) or not cfg.arms or len(set(cfg.arms)) != len(cfg.arms) \
            or any(a not in ARMS for a in cfg.arms):
        raise ConfigError(f"ablation.arms: distinct names from {list(ARMS)}, got {cfg.arms!r}")
    if not isinstance(cfg.pretrain_steps, int) or isinstance(cfg.pretrain_steps, bool) \
            or cfg.pretrain_steps < 0:
        raise ConfigError(f"ablation.pretrain_steps: must be an integer >= 0, got "
                          f"{cfg.pretrain_steps!r}")
    for name in ("seeds", "token_budget", "max_steps", "eval_size"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"ablation.{name}: must be an integer >= 1, got {value!r}")
    if not isinstance(cfg.evals, int) or isinstance(cfg.evals, bool) or cfg.evals < 0:
        raise ConfigError(f"ablation.evals: must be an integer >= 0, got {cfg.evals!r}")
    return cfg


def load_ablation(recipe: str | None, overrides: list[str] = (), *, quick: bool = False
                  ) -> tuple[Config, AblationConfig]:
    """The base training config and the ablation settings: the recipe, then ``QUICK``
    (with ``quick``), then the command line's overrides."""
    values, recipe_own, train, own = split_ablation_values(
        read_recipe(recipe) if recipe else {}, list(overrides))
    quick_own = [q for q in QUICK if q.startswith("ablation.")] if quick else []
    quick_train = [q for q in QUICK if not q.startswith("ablation.")] if quick else []
    ab = ablation_config(recipe_own + quick_own + own)
    if quick:
        ab.pretrain_steps = min(ab.pretrain_steps, QUICK_PRETRAIN)
    return config_from_values(values, quick_train + train), ab


def arm_config(base: Config, ab: AblationConfig, arm: str, seed: int, warm_start: str,
               out: str) -> Config:
    """The training config of one (arm, seed) run: ``ARMS[arm]`` on top of the base config,
    starting from the seed's warm start, stopped by the shared token budget."""
    config = copy.deepcopy(base)
    apply_overrides(config, ARMS[arm] + (
        f"model.path={warm_start}", "warm_start.steps=0", f"trainer.steps={ab.max_steps}",
        f"trainer.max_generated_tokens={ab.token_budget}", "evaluation.every=0",
        "checkpoint.save_every=0", "evaluation.size=0", "logging.plots=false",
        "logging.tensorboard=false", f"trainer.output_dir={out}"))
    _seeded(config, seed)
    return config


def warm_start_config(base: Config, seed: int, out: str) -> Config:
    """The seed's shared warm start: GRO's (with revision-turn examples), no RL steps."""
    config = copy.deepcopy(base)
    apply_overrides(config, ("algorithm.name=gro", "trainer.steps=0", "evaluation.size=0",
                              "logging.plots=false", "logging.tensorboard=false",
                              f"trainer.output_dir={out}"))
    _seeded(config, seed)
    return config


def pretrain_config(base: Config, ab: AblationConfig, out: str) -> Config:
    """The shared pretraining: ``ab.pretrain_steps`` supervised steps on one-shape scenes,
    plain prompt -> answer examples (no revision turns), no RL steps; seed 0's seeds."""
    config = copy.deepcopy(base)
    apply_overrides(config, ("algorithm.name=grpo", "warm_start.difficulty=single",
                              f"warm_start.steps={ab.pretrain_steps}", "trainer.steps=0",
                              "evaluation.size=0", "logging.plots=false",
                              "logging.tensorboard=false", f"trainer.output_dir={out}"))
    _seeded(config, 0)
    return config


def ensure_pretrain(base: Config, ab: AblationConfig, out: str, log) -> dict | None:
    """The shared pretraining's record (trained once; reused when ``pretrain.json``
    exists), or None without ``ablation.pretrain_steps``."""
    if ab.pretrain_steps <= 0:
        return None
    path = pretrain_path(out)
    return _trained_once(path, lambda: pretrain_config(base, ab, os.path.dirname(path)),
                         min(ab.eval_size, PRETRAIN_EVAL), base.data.seed, log,
                         f"pretraining, shared by every seed: {ab.pretrain_steps} supervised "
                         "steps on one-shape scenes")


def _seeded(config: Config, seed: int) -> None:
    """Seed ``seed`` moves the model init, the data order and the sampling together."""
    config.model.seed = base_seed(config.model.seed, seed)
    config.data.seed = base_seed(config.data.seed, seed)
    config.trainer.seed = base_seed(config.trainer.seed, seed)


def base_seed(recipe_seed: int, seed: int) -> int:
    return recipe_seed + 1000 * seed


def run_dir(out: str, arm: str, seed: int) -> str:
    return os.path.join(out, "runs", arm, f"seed{seed}")


def pretrain_path(out: str) -> str:
    return os.path.join(out, "pretrain", "pretrain.json")


def warm_path(out: str, seed: int) -> str:
    return os.path.join(out, "warm_start", f"seed{seed}", "warm_start.json")


def _read_json(path: str):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, value) -> None:
    """Written whole or not at all (a run killed mid-write is simply rerun)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def ensure_warm_start(base: Config, ab: AblationConfig, seed: int, out: str, log) -> dict:
    """The seed's warm start (trained once; reused when ``warm_start.json`` exists)."""
    path = warm_path(out, seed)
    return _trained_once(path, lambda: warm_start_config(base, seed, os.path.dirname(path)),
                         ab.eval_size, base.data.seed, log,
                         f"warm start, seed {seed}: {base.warm_start.steps} supervised steps")


def _trained_once(path: str, config, eval_size: int, heldout_seed: int, log, what: str) -> dict:
    """The record in ``path``; without one, ``ablation_run.warm_start`` trains ``config()``
    and writes its record there (whole or not at all)."""
    done = _read_json(path)
    if done is not None:
        return done
    from .ablation_run import warm_start
    log(what)
    result = warm_start(config(), eval_size, heldout_seed)
    _write_json(path, result)
    return result


def run_arm(base: Config, ab: AblationConfig, arm: str, seed: int, warm: dict, out: str) -> dict:
    """One (arm, seed) run from the seed's warm start; its record (also ``result.json``)."""
    from .ablation_run import ArmTrainer
    folder = run_dir(out, arm, seed)
    config = arm_config(base, ab, arm, seed, warm["model"], folder)
    trainer = ArmTrainer(config, eval_size=ab.eval_size, heldout_seed=base.data.seed,
                         evals=ab.evals, before=warm["heldout"])
    if trainer.run() is None:
        raise RuntimeError(f"ablation run {arm} seed {seed} failed")
    result = {"arm": arm, "seed": seed, **trainer.record()}
    _write_json(os.path.join(folder, "result.json"), result)
    return result


def run_ablation(base: Config, ab: AblationConfig, out: str, log=print, jobs: int = 1) -> dict:
    """Every (arm, seed) run not yet finished, then the reports; returns the results
    {arm: {seed: record}}. Finished runs (a ``result.json``) are read, not rerun. ``jobs``
    runs that many warm starts / runs at once, each in its own process (one torch thread
    each, ``trainer.cpu_threads``); a seed's runs start when its warm start is written."""
    from .ablation_report import write_reports
    began = time.perf_counter()  # the elapsed time printed includes the pretraining
    os.makedirs(out, exist_ok=True)
    _write_json(os.path.join(out, "settings.json"),
                {"ablation": asdict(ab), "arms": {a: list(ARMS[a]) for a in ab.arms},
                 "config": asdict(base)})
    results: dict[str, dict] = {arm: {} for arm in ab.arms}
    todo = [(arm, seed) for seed in range(ab.seeds) for arm in ab.arms]
    number = {key: k + 1 for k, key in enumerate(todo)}
    finished = {(a, s): _read_json(os.path.join(run_dir(out, a, s), "result.json"))
                for a, s in todo}
    for arm, seed in todo:
        if finished[(arm, seed)] is not None:
            log(f"[{number[(arm, seed)]}/{len(todo)}] {arm} seed {seed}: finished before, skipped")
            results[arm][seed] = finished[(arm, seed)]
    pending = [key for key in todo if finished[key] is None]
    cold = sorted({s for _, s in pending if not os.path.isfile(warm_path(out, s))})
    pretrain = ensure_pretrain(base, ab, out, log) if cold else \
        _read_json(pretrain_path(out)) if ab.pretrain_steps > 0 else None
    if pretrain is not None:
        base = copy.deepcopy(base)
        base.model.path = pretrain["model"]
    clock = Clock(len(pending), len(cold), jobs=jobs, start=began)

    def started(arm: str, seed: int, verb: str = "RL") -> None:
        log(f"[{number[(arm, seed)]}/{len(todo)}] {arm} seed {seed}: {verb} for "
            f"{ab.token_budget} generated tokens")

    def done(arm: str, seed: int, record: dict) -> None:
        results[arm][seed] = record
        log(f"[{number[(arm, seed)]}/{len(todo)}] {arm} seed {seed}: done; {clock.status()}")

    if jobs <= 1:
        for arm, seed in pending:
            if seed in cold and not os.path.isfile(warm_path(out, seed)):
                clock.timed("warm", lambda: ensure_warm_start(base, ab, seed, out, log))
            warm = ensure_warm_start(base, ab, seed, out, log)
            started(arm, seed)
            done(arm, seed, clock.timed("run", lambda: run_arm(base, ab, arm, seed, warm, out)))
    else:
        _run_parallel(base, ab, out, pending, cold, jobs, clock, log, started, done)
    warm = {seed: _read_json(warm_path(out, seed)) for seed in range(ab.seeds)}
    paths = write_reports(out, ab, results, warm, pretrain, base.trainer.cpu_threads, jobs)
    log("ablation: " + ", ".join(paths))
    return results


def _worker_init(slots) -> None:
    """A parallel worker takes a terminal line for its progress bars."""
    from . import metrics
    metrics.BAR_POSITION = slots.get()


def _timed_call(label: str, fn, *args) -> tuple:
    """(fn(*args), seconds): a worker's job, timed where it ran; ``label`` names its bars."""
    from . import metrics
    metrics.BAR_LABEL = label
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def _run_parallel(base: Config, ab: AblationConfig, out: str, pending: list, cold: list,
                  jobs: int, clock: "Clock", log, started, done) -> None:
    """``pending`` (arm, seed) runs on ``jobs`` worker processes: the missing warm starts
    first, each seed's runs queued as soon as its warm start is written. A failed job
    stops the whole ablation (finished runs keep their ``result.json``)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    by_seed: dict[int, list[str]] = {}
    for arm, seed in pending:
        by_seed.setdefault(seed, []).append(arm)
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(jobs):
        slots.put(slot)
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init,
                             initargs=(slots,)) as pool:
        futures: dict = {}

        def submit_runs(seed: int) -> None:
            warm = _read_json(warm_path(out, seed))
            for arm in by_seed[seed]:
                started(arm, seed, "queued: RL")
                job = pool.submit(_timed_call, f"{arm} seed {seed}", run_arm, base, ab, arm,
                                  seed, warm, out)
                futures[job] = ("run", arm, seed)

        for seed in sorted(by_seed):
            if seed in cold:
                log(f"warm start, seed {seed}: {base.warm_start.steps} supervised steps")
                futures[pool.submit(_timed_call, f"seed {seed}", ensure_warm_start, base,
                                    ab, seed, out, print)] = ("warm", None, seed)
        for seed in sorted(by_seed):
            if seed not in cold:
                submit_runs(seed)
        try:
            while futures:
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for future in finished:
                    kind, arm, seed = futures.pop(future)
                    value, seconds = future.result()
                    clock.add(kind, seconds)
                    if kind == "warm":
                        log(f"warm start, seed {seed}: done; {clock.status()}")
                        submit_runs(seed)
                    else:
                        done(arm, seed, value)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


class Clock:
    """Overall ETA: runs and warm starts left, each at the mean duration of its kind so far,
    shared among ``jobs`` parallel workers."""

    def __init__(self, runs: int, warm_starts: int, jobs: int = 1, start: float | None = None):
        self.left = {"run": runs, "warm": warm_starts}
        self.seconds: dict[str, list[float]] = {"run": [], "warm": []}
        self.jobs = max(1, jobs)
        self.start = time.perf_counter() if start is None else start  # elapsed counts from it

    def timed(self, kind: str, fn):
        t0 = time.perf_counter()
        value = fn()
        self.add(kind, time.perf_counter() - t0)
        return value

    def add(self, kind: str, seconds: float) -> None:
        """One finished job of ``kind`` that took ``seconds``."""
        self.seconds[kind].append(seconds)
        self.left[kind] -= 1

    def eta_s(self) -> float:
        """Seconds left (nan until each kind still to come has one measured duration)."""
        total = 0.0
        for kind, left in self.left.items():
            if left > 0:
                spent = self.seconds[kind]
                total += left * sum(spent) / len(spent) if spent else float("nan")
        return total / self.jobs

    def status(self) -> str:
        elapsed = (time.perf_counter() - self.start) / 60
        eta = self.eta_s()
        eta = "after the first run" if math.isnan(eta) else f"{eta / 60:.1f} min"
        return f"overall ETA {eta} ({self.left['run']} run(s) left), elapsed {elapsed:.1f} min"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gro-fast ablation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("args", nargs="*", help="an optional YAML recipe, then key=value "
                        "overrides (ablation.* keys set AblationConfig)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1)")
    parser.add_argument("--arms", default=None, help="comma-separated arms, e.g. grpo,gro")
    parser.add_argument("--quick", action="store_true",
                        help="a few steps and a few held-out prompts (a smoke run)")
    parser.add_argument("--out", default=None,
                        help="output folder (default runs/ablation, runs/ablation-quick)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="warm starts / runs at once, one process and one torch thread "
                        "each (e.g. 2 on a 2-core machine); results do not depend on it")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``gro-fast ablation``: returns an exit code (2 on a bad config)."""
    ns = _parser().parse_intermixed_args(list(argv or []))
    recipe = [a for a in ns.args if "=" not in a]
    overrides = [a for a in ns.args if "=" in a]
    overrides += [f"ablation.seeds={ns.seeds}"] if ns.seeds is not None else []
    overrides += [f"ablation.arms={ns.arms}"] if ns.arms is not None else []
    out = ns.out or ("runs/ablation-quick" if ns.quick else "runs/ablation")
    try:
        if len(recipe) > 1:
            raise ConfigError(f"unexpected argument {recipe[1]!r}: one recipe, then key=value")
        base, ab = load_ablation(recipe[0] if recipe else default_recipe(), overrides,
                                 quick=ns.quick)
    except ConfigError as exc:
        print(f"gro-fast ablation: config error: {exc}", file=sys.stderr)
        return 2
    if ns.jobs < 1:
        print(f"gro-fast ablation: --jobs must be >= 1, got {ns.jobs}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_ablation(base, ab, out, jobs=ns.jobs)
    return 0


def default_recipe() -> str | None:
    """``configs/ablation_synthetic.yaml`` of a source checkout, when present."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(here, "configs", "ablation_synthetic.yaml")
    return path if os.path.isfile(path) else None
