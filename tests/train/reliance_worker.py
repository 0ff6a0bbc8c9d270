"""Run by ``test_image_reliance_on_two_sharded_ranks`` under torchrun: image reliance of
the tiny model sharded with FSDP2 over two CPU ranks, on three prompts (ranks hold 2 and 1)."""
import json
import sys

import torch

from gro_fast.data import SyntheticGroundingTask
from gro_fast.models import tiny_qwen2_5_vl
from gro_fast.train.distributed import close_world, init_world, shard_model
from gro_fast.train.heldout import image_reliance

world = init_world("cpu")
torch.set_num_threads(1)
model, processor = tiny_qwen2_5_vl(seed=1)
model = shard_model(model, world, mixed_precision=False)
samples = list(SyntheticGroundingTask(seed=3, image_size=56, split="heldout", difficulty="easy",
                                      length=3))
result = image_reliance(model, processor, samples, template="Find {query}.", world=world,
                        device=world.device, micro_batch_size=1)
if world.is_main:
    with open(sys.argv[1], "w") as f:
        json.dump(result, f)
close_world(world)
