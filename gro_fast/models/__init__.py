"""Vision-language models for gro_fast: tiny offline Qwen2.5-VL, full-size random ones, and
local checkpoint loading. It does not train or generate (see ``gro_fast.train`` and
``gro_fast.generation``).

The tiny model (``tiny_qwen2_5_vl``), about 0.33 M parameters, random weights:
- text decoder: 2 layers, hidden 64, MLP 128, 4 query heads and 2 key/value heads of
  dimension 16 (GQA), M-RoPE sections [2, 3, 3], context 4,096, vocabulary 1,344 (the
  tokenizer's 1,331 tokens padded to a multiple of 64);
- vision tower: 2 blocks (block 1 full attention), hidden 32, 2 heads, patch 14, temporal
  patch 2, spatial merge 2 -> output projected to 64;
- processor: images resized to between 56 x 56 and 112 x 112 pixels (a 112 x 112 image is
  an 8 x 8 patch grid = 16 visual tokens), byte-level BPE tokenizer with Qwen's special
  tokens and chat template, single tokens for the GRO answer format (``<think>``,
  ``<answer>``, ``"bbox_2d"``, ``"point_2d"`` ...) and common referring-expression words.

The small model (``small_qwen2_5_vl``, ``model.path: small``), about 1.4 M parameters:
the same tokenizer and processor, text decoder 4 layers of hidden 128 (MLP 384, 4 / 2 heads
of dimension 32, M-RoPE sections [0, 2, 14] at theta 100 so both image axes turn),
vision tower 2 blocks of hidden 64: the
default run's and the ablation's model (it localises better after its warm start than the
tiny one, at about 3x its cost per step); the tiny model is for tests.

``qwen2_5_vl_from_config("qwen2.5-vl-3b")`` builds the 3B shape (36 layers, hidden 2048,
16/2 heads, 32-block vision tower) with random weights and the same tokenizer, for
benchmarks. ``tiny_qwen_vl("qwen2-vl" | "qwen3-vl")`` gives the other Qwen-VL families at
the tiny size. ``load_pretrained(path)`` reads a local checkpoint directory only.
"""
from .loading import load_pretrained, load_processor, save_pretrained
from .qwen_vl import (FULL_SIZES, assemble_processor, mrope_turn_per_token, qwen2_5_vl_config,
                      qwen2_5_vl_from_config, small_qwen2_5_vl, tiny_processor, tiny_qwen2_5_vl,
                      tiny_qwen_vl)
from .tokenizer import GRO_FORMAT_TOKENS, QWEN_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS, tiny_tokenizer

__all__ = [
    "FULL_SIZES", "GRO_FORMAT_TOKENS", "QWEN_CHAT_TEMPLATE", "QWEN_SPECIAL_TOKENS", "assemble_processor",
    "load_pretrained", "load_processor", "mrope_turn_per_token", "qwen2_5_vl_config",
    "qwen2_5_vl_from_config", "save_pretrained",
    "small_qwen2_5_vl", "tiny_processor", "tiny_qwen2_5_vl", "tiny_qwen_vl", "tiny_tokenizer",
]
