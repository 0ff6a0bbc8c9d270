"""``gro-fast train`` and ``gro-fast sft``: argument parsing around the trainer.

  gro-fast train [recipe.yaml] [key.sub=value ...] [--resume [auto|PATH]] [--print-config]
                 (options and overrides may come in any order)
  gro-fast sft   [recipe.yaml] [key.sub=value ...] [--resume [auto|PATH]]

With no arguments, ``train`` runs the built-in synthetic grounding task on the small model:
a supervised warm start, GRO steps, and held-out accuracy before, after the warm start,
during RL and after. ``sft`` runs the warm start alone and saves the model; both resume
with ``--resume``. Both return an exit code: 0 on success (also after a SIGINT / SIGTERM
that stopped the run cleanly), 2 on a bad config, bad data, a custom reward that returns no
finite number, or no usable checkpoint to resume, 3 when a checkpoint could not be written
(disk full, permission denied: the previous checkpoint is intact), 1 on any other failure.
Under ``torchrun`` the same entry points run one process per rank (``python -m
gro_fast.train`` / ``torchrun -m gro_fast.train``).
"""
from __future__ import annotations

import argparse
import os
import sys

from .config import Config, ConfigError, field_docs, load_config, to_dict

EPILOG = "Overrides: section.key=value (YAML scalars), e.g. optimizer.lr=1e-6 rollout.num_samples=8."


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("args", nargs="*", help="an optional YAML recipe, then key=value overrides")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="continue from the newest checkpoint of output_dir that passes "
                             "its checksums (auto) or from a checkpoint folder")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (with field docs) and exit")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options and ``key=value`` overrides in any order: ``recipe.yaml --resume auto
    trainer.steps=9`` as well as ``--resume recipe.yaml k=v``. ``--resume`` takes a value
    only when it is not an override or the recipe."""
    ns = parser.parse_intermixed_args(argv)
    resume = getattr(ns, "resume", None)
    if resume is not None and ("=" in resume or _is_recipe(resume)):
        ns.args.insert(0 if _is_recipe(resume) else len(ns.args), resume)
        ns.resume = "auto"
    return ns


def _is_recipe(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) and os.path.isfile(value)


def _config(args: list[str]) -> Config:
    recipe = None
    overrides = []
    for item in args:
        if "=" in item:
            overrides.append(item)
        elif recipe is None:
            recipe = item
        else:
            raise ConfigError(f"unexpected argument {item!r}: only one recipe file, then "
                              "key=value overrides")
    return load_config(recipe, overrides)


def print_config(config: Config) -> None:
    import yaml
    values = to_dict(config)
    for section, cls_value in values.items():
        docs = field_docs(type(getattr(config, section)))
        print(f"{section}:")
        for key, value in cls_value.items():
            text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
            text = text.strip().removesuffix("...").strip()
            print(f"  {key}: {text}    # {docs.get(key, '')}")


def _run(argv: list[str] | None, prog: str, sft_only: bool) -> int:
    parser = _parser(prog)
    ns = _parse(parser, list(argv or []))
    try:
        config = _config(ns.args)
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2
    if ns.print_config:
        print_config(config)
        return 0
    from gro_fast.data import DataError, FrameMismatch
    from .checkpoint import CheckpointError, CheckpointWriteError
    from gro_fast.rewards import RewardError
    from .trainer import Trainer
    try:
        trainer = Trainer(config, resume=ns.resume)
        result = trainer.run_sft_only() if sft_only else trainer.run()
    except (ConfigError, DataError, FrameMismatch, FileNotFoundError, CheckpointError,
            RewardError) as exc:
        kind = {ConfigError: "config error", FileNotFoundError: "error",
                RewardError: "reward error"}.get(type(exc))
        if kind is None:
            kind = "checkpoint error" if isinstance(exc, CheckpointError) else "data error"
        print(f"{prog}: {kind}: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, CheckpointWriteError) else 2
    return 0 if result is not None else 1


def train_main(argv: list[str] | None = None) -> int:
    """``gro-fast train``: returns an exit code."""
    return _run(argv, "gro-fast train", sft_only=False)


def sft_main(argv: list[str] | None = None) -> int:
    """``gro-fast sft``: returns an exit code."""
    return _run(argv, "gro-fast sft", sft_only=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m gro_fast.train [train|sft] ...`` (``train`` when omitted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sft":
        return sft_main(argv[1:])
    if argv and argv[0] == "train":
        argv = argv[1:]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return train_main(argv)
