"""``gro-fast eval``: evaluate a checkpoint on grounding rows or the synthetic task.

  gro-fast eval --model PATH|tiny --data PATH|synthetic --task seg|rec|count --out DIR
                [--sam2 PATH] [--protocol gro_fast|lisa|skip_failures|vision_reasoner|k=v,...]
                [--limit N] [--batch-size B] [--max-new-tokens N] [--no-resume]
                [--split NAME] [--bbox-format xyxy|xywh] [--coords auto|pixels|norm1000]
                [--query-normalization none|vision_reasoner] [--resize processor|WxH]

``--model tiny`` is the tiny random Qwen2.5-VL (offline; for smoke runs); a path is a
local checkpoint folder. ``--data`` is a JSON / JSONL file or a ``datasets`` save_to_disk
folder of evaluation rows, or ``synthetic`` (the synthetic task's held-out split).
Without ``--sam2``, segmentation uses filled boxes and the report says ``segmenter: box``.
Samples are built in the frame the model's processor feeds (``gro_fast.data.model_frame``)
and the first is checked against the processor's own output.
This module only wires arguments to ``runner.evaluate``; exit codes: 0 done, 2 bad
arguments or data.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

from dataclasses import replace

from .metrics import EvalProtocol
from .runner import EVAL_TASKS, EvalConfig, evaluate


def build_parser() -> argparse.ArgumentParser:
    from gro_fast.data.synthetic import DIFFICULTIES
    p = argparse.ArgumentParser(prog="gro-fast eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint folder, or 'tiny'")
    p.add_argument("--data", required=True, help="rows file / save_to_disk folder, or 'synthetic'")
    p.add_argument("--task", required=True, choices=EVAL_TASKS)
    p.add_argument("--out", required=True, help="output folder (created; resumed if it exists)")
    p.add_argument("--sam2", default=None, help="local SAM2 checkpoint folder (seg task)")
    p.add_argument("--protocol", default="gro_fast",
                   help="preset (gro_fast, lisa, skip_failures, vision_reasoner) or "
                        "key=value,... of metrics.EvalProtocol fields")
    p.add_argument("--limit", type=int, default=None, help="first N samples only")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--template", default=None,
                   help="prompt template with {query} (default: the one recorded beside a model "
                        "trained by gro-fast, else gro_fast.data's default)")
    p.add_argument("--image-root", default=None, help="folder relative image paths start from")
    p.add_argument("--split", default=None,
                   help="split of a datasets save_to_disk folder holding several")
    p.add_argument("--bbox-format", choices=("xyxy", "xywh"), default="xyxy",
                   help="how the rows write boxes: [x1, y1, x2, y2] or COCO's [x, y, w, h]")
    p.add_argument("--coords", choices=("auto", "pixels", "norm1000"), default="auto",
                   help="units of the rows' boxes: pixels (auto) or 0-1000 normalised")
    p.add_argument("--query-normalization", choices=("none", "vision_reasoner"), default=None,
                   help="rewrite queries before asking: vision_reasoner lower-cases them and "
                        "strips .\"?! at both ends, as VisionReasoner's evaluation does "
                        "(default: the protocol's; --protocol vision_reasoner sets it)")
    p.add_argument("--resize", default="processor",
                   help="processor (the model processor's own frame) or WxH: resize each image "
                        "to WxH first (VisionReasoner feeds 840x840), then the processor's rule")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="bad data rows: stop with the row's file/line/field, or skip and count")
    p.add_argument("--synthetic-samples", type=int, default=64, help="items of --data synthetic")
    p.add_argument("--synthetic-difficulty", choices=DIFFICULTIES, default="mixed",
                   help="split of --data synthetic (gro-fast train's default recipe uses easy)")
    p.add_argument("--synthetic-size", type=int, default=112, help="side of synthetic images (px)")
    p.add_argument("--seed", type=int, default=0, help="synthetic data / tiny model seed")
    p.add_argument("--no-resume", action="store_true", help="discard finished samples in --out")
    p.add_argument("--grid", type=int, default=8, help="predictions drawn in predictions.png")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", default="auto", help="model dtype for a checkpoint (auto, bf16, fp32)")
    return p


def load_model(spec: str, *, seed: int, device: str, dtype: str):
    """(model, processor, identity) for ``--model``."""
    from gro_fast import models
    if spec == "tiny":
        model, processor = models.tiny_qwen2_5_vl(seed=seed)
        identity = {"name": "tiny_qwen2_5_vl", "path": "tiny", "seed": seed}
    else:
        model, processor = models.load_pretrained(spec, dtype=dtype)
        identity = {"name": os.path.basename(os.path.normpath(spec)), "path": os.path.abspath(spec)}
    model = model.to(device).eval()
    identity["dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
    return model, processor, identity


def load_samples(args, resize):
    """(samples, data identity) for ``--data``; ``resize``: the model's frame
    (``gro_fast.data.model_frame``)."""
    from gro_fast import data
    if args.data == "synthetic":
        task = data.SyntheticGroundingTask(seed=args.seed, image_size=args.synthetic_size,
                                           split="heldout", difficulty=args.synthetic_difficulty,
                                           length=args.synthetic_samples)
        # Items are a pure function of these parameters, so they identify the content.
        return task, {"name": "synthetic-heldout", "path": "synthetic", "params": repr(task),
                      "sha256": hashlib.sha256(repr(task).encode()).hexdigest()}
    from .report import content_hash
    samples = data.load_eval_rows(args.data, image_root=args.image_root, resize=resize,
                                  on_error=args.on_error, split=args.split,
                                  bbox_format=args.bbox_format, coords=args.coords)
    identity = {"name": os.path.basename(os.path.normpath(args.data)), "path": os.path.abspath(args.data),
                "sha256": content_hash(args.data)}
    # What changes the ground truth read from the same files is part of the data's identity.
    for key, default in (("split", None), ("bbox_format", "xyxy"), ("coords", "auto"),
                         ("resize", "processor")):
        if getattr(args, key) != default:
            identity[key] = getattr(args, key)
    skipped = getattr(samples, "skipped", None)
    if skipped:
        identity["skipped_rows"] = dict(skipped)
    return samples, identity


def prompt_template(args) -> str | None:
    """--template, else the template recorded beside a trained model (save_template)."""
    from gro_fast.data import load_template
    from gro_fast.data.prompts import check_template
    if args.template is not None:
        return check_template(args.template)
    return load_template(args.model) if os.path.isdir(args.model) else None


def make_segmenter(args):
    from .segmenters import BoxSegmenter, Sam2Segmenter
    if args.task != "seg":
        return None
    if args.sam2:
        return Sam2Segmenter(args.sam2, device=args.device)
    return BoxSegmenter()


def run(args) -> dict:
    import torch
    from gro_fast import data
    from gro_fast.generation import RolloutEngine
    from .report import markdown_table
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    protocol = EvalProtocol.parse(args.protocol)
    if args.query_normalization is not None:
        protocol = replace(protocol, query_normalization=args.query_normalization)
    config = EvalConfig(task=args.task, protocol=protocol,
                        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                        limit=args.limit, resume=not args.no_resume, grid_samples=args.grid,
                        template=prompt_template(args))
    segmenter = make_segmenter(args)  # before the model: a bad --sam2 fails fast
    model, processor, model_id = load_model(args.model, seed=args.seed, device=args.device,
                                            dtype=args.dtype)
    samples, data_id = load_samples(args, data.model_frame(processor, args.resize))
    if len(samples):
        data.check_frame(samples[0], processor, where=args.data)
    engine = RolloutEngine(model, processor)
    report = evaluate(engine, samples, args.out, config, segmenter=segmenter,
                      identity={"model": model_id, "data": data_id})
    print(markdown_table(report))
    print(f"wrote {os.path.join(args.out, 'report.json')}")
    return report


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (code 2)
        return int(exc.code or 0)
    try:
        run(args)
    except (ValueError, FileNotFoundError) as exc:
        # Bad rows name their file, line and field (gro_fast.data.DataError).
        print(f"gro-fast eval: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
