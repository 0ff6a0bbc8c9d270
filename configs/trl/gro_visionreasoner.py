"""GRO with TRL: a VLM-R1 / TRL GRPO script turned into GRO (the lines marked CHANGED).

    python configs/trl/gro_visionreasoner.py                       # tiny model, synthetic task, CPU
    python configs/trl/gro_visionreasoner.py --model /models/Qwen2.5-VL-7B-Instruct \
        --data visionreasoner_7k.jsonl --image-root images/ --resize 840x840 \
        --output-dir runs/gro-trl --steps 500 --lr 1e-6 --bf16

Data: any format ``gro_fast.data.load_grounding_dataset`` reads (Seg-Zero / VisionReasoner
rows, VLM-R1 REC JSONL, counting rows); ``grounding_rows`` stores each image resized to
the model-input size with its ground truth in those pixels. See docs/integrations.md.
"""
from __future__ import annotations

import argparse


def build_trainer(argv=None):
    from trl import GRPOConfig

    from gro_fast.algo import DEFAULT_REVISION_TEMPLATE, DETAILED_REVISION_TEMPLATE, GROConfig
    from gro_fast.data import ResizeConfig, SyntheticGroundingTask, load_grounding_dataset
    from gro_fast.integrations.trl import GROTrainer, grounding_rows  # CHANGED: was trl.GRPOTrainer
    from gro_fast.models import load_pretrained, tiny_qwen2_5_vl

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="'tiny' or a local Qwen-VL checkpoint folder")
    p.add_argument("--data", default="synthetic", help="'synthetic' or a training file / folder")
    p.add_argument("--image-root", default=None)
    p.add_argument("--resize", default="processor", help="'processor' or WxH, e.g. 840x840")
    p.add_argument("--output-dir", default="runs/gro-trl")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--max-completion-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--omega", type=float, default=5.0)
    p.add_argument("--loss-impl", default="gro_fast_fused", choices=["trl", "gro_fast", "gro_fast_fused"])
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--report-to", default="none", help="e.g. wandb, tensorboard")
    args = p.parse_args(argv)

    if args.model == "tiny":
        model, processor = tiny_qwen2_5_vl(seed=0)
    else:
        model, processor = load_pretrained(args.model, dtype="bf16" if args.bf16 else "fp32")
    if args.data == "synthetic":
        samples = SyntheticGroundingTask(seed=0, image_size=56, split="train", length=64)
    else:
        resize = ResizeConfig() if args.resize == "processor" else \
            ResizeConfig.fixed(*(int(v) for v in args.resize.split("x")))
        samples = load_grounding_dataset(args.data, image_root=args.image_root, resize=resize)
    config = GRPOConfig(
        output_dir=args.output_dir, max_steps=args.steps, learning_rate=args.lr,
        num_generations=args.num_generations,                 # G: revisions per initial response
        per_device_train_batch_size=args.num_generations * args.prompts_per_step,
        max_completion_length=args.max_completion_length, beta=0.0, bf16=args.bf16,
        use_cpu=args.model == "tiny", logging_steps=1, save_strategy="no",
        report_to=args.report_to)
    return GROTrainer(                                        # CHANGED: was GRPOTrainer
        model, args=config, processing_class=processor,
        train_dataset=grounding_rows(samples),                # CHANGED: gro_fast reads the data
        gro=GROConfig(omega=args.omega,                       # NEW: GRO's options; the
                      revision_template=(DEFAULT_REVISION_TEMPLATE  # detailed wording for
                                         if args.model == "tiny"    # a real checkpoint
                                         else DETAILED_REVISION_TEMPLATE)),
        loss_impl=args.loss_impl)                             # NEW: gro_fast's fused loss
    # reward_funcs: by default VisionReasoner's four terms (gro_fast.integrations.trl.rewards)


if __name__ == "__main__":
    build_trainer().train()
