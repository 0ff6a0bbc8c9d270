"""The ``gro-fast`` command: a thin dispatcher to each sub-command's own module.

  gro-fast                   same as ``gro-fast train`` (the built-in synthetic task)
  gro-fast train [cfg] [k=v] GRO / GRPO training
  gro-fast sft [cfg] [k=v]   supervised warm start (answer format) on the synthetic task
  gro-fast ablation [cfg] [k=v] [--seeds N] [--arms grpo,revision,gro] [--quick] [--out DIR]
                             GRPO vs GRO-without-consolidation vs GRO, equal token budgets
  gro-fast eval ...          evaluation with the field's metrics
  gro-fast doctor            versions, compiled kernels, Triton mode, attention backends
  gro-fast bench ...         the benchmark suite (bench/run.py)
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("gro_fast.train.cli", "train_main"),
    "sft": ("gro_fast.train.cli", "sft_main"),
    "ablation": ("gro_fast.train.ablation", "main"),
    "eval": ("gro_fast.eval.cli", "main"),
    "doctor": ("gro_fast.doctor", "main"),
    "bench": ("gro_fast.bench_cli", "main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    module_name, func_name = COMMANDS[command]
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
