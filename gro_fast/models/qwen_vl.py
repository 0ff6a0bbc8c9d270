"""Qwen2.5-VL models built from a config: the tiny offline model and full-size random ones.

``tiny_qwen2_5_vl`` gives a few-layer random model plus an offline processor (tokenizer
from :mod:`gro_fast.models.tokenizer`, PIL image processor with small pixel limits) so
tests and the default run need no download. ``qwen2_5_vl_from_config`` builds a model of
a named full size (e.g. the 3B shape) with random weights for benchmarks. Loading real
checkpoints lives in :mod:`gro_fast.models.loading`.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from .tokenizer import QWEN_CHAT_TEMPLATE, tiny_tokenizer

# Tiny image limits: a 112 x 112 image gives an 8 x 8 patch grid -> 16 visual tokens.
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 112

_VISION_TOKEN_KEYS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
TINY_TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
)
TINY_VISION = dict(
    depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1],
)

# The ``small`` preset (see ``small_qwen2_5_vl`` for why this size): the default run's and
# the ablation's model. Same tokenizer, processor and image limits as the tiny model; only
# the widths and depths grow.
# Its M-RoPE gives every rotary pair to the image's height (the 2 fastest) and width (the
# other 14) at theta 100, so height turns by 1.0 and 0.75 rad per visual token and width by
# 0.56, 0.42, 0.32, ... With the published layout ([4, 6, 6] at theta 1e6) width turns by at
# most 0.0002 rad and a model trained from scratch never learns where a shape is; at theta
# 1e4 (the earlier preset) width's fastest pair turned 0.32 rad, so 4 visual columns
# were barely told apart: the box centre's x was 4 times as wrong as its y (16.8 against
# 4.0 px after the default warm start) and held-out Acc@0.5 0.28 where theta 100 gives 0.85
# (docs/training.md, "Why these settings"). Text positions are unchanged by the
# sections (a text token's three M-RoPE indices are equal); at theta 100 the slowest pair
# turns 0.013 rad per token and completes a turn after about 470 tokens: longer than a
# one-shape revision turn (at most about 340 tokens), about as long as the longest on
# hard scenes (about 510), where together with the 15 faster pairs it still tells
# positions apart.
SMALL_TEXT = dict(
    TINY_TEXT, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
    num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 100.0, "mrope_section": [0, 2, 14]},
)
SMALL_VISION = dict(TINY_VISION, depth=2, hidden_size=64, intermediate_size=128, num_heads=2)

# Published shapes (text decoder and vision tower) of the Qwen2.5-VL family.
_VISION_FULL = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
)
FULL_SIZES: dict[str, dict[str, Any]] = {
    "qwen2.5-vl-3b": dict(
        text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                  num_key_value_heads=2, max_position_embeddings=128000, tie_word_embeddings=True,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}),
        vision=dict(_VISION_FULL, out_hidden_size=2048), vocab_size=151936),
    "qwen2.5-vl-7b": dict(
        text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                  num_key_value_heads=4, max_position_embeddings=128000, tie_word_embeddings=False,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}),
        vision=dict(_VISION_FULL, out_hidden_size=3584), vocab_size=152064),
}


def mrope_turn_per_token(text_config) -> dict[str, float]:
    """The fastest rotation (radians per position step) that a Qwen2-VL / Qwen2.5-VL
    decoder's M-RoPE gives each axis ("temporal", "height", "width"; 0 for an axis with no
    rotary pairs): how well attention can tell visual tokens apart along it."""
    rope = text_config.rope_parameters
    dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    inv_freq = float(rope["rope_theta"]) ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    turns, start = {}, 0
    for axis, width in zip(("temporal", "height", "width"), rope["mrope_section"]):
        turns[axis] = float(inv_freq[start:start + width].max()) if width else 0.0
        start += width
    return turns


def pil_image_processor(**kwargs):
    """Qwen2-VL's image processor on its PIL backend (no torchvision needed)."""
    try:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    except ImportError:  # transformers releases before the PIL / torchvision backend split
        from transformers import Qwen2VLImageProcessor as Qwen2VLImageProcessorPil
    return Qwen2VLImageProcessorPil(**kwargs)


def tiny_processor(min_pixels: int = TINY_MIN_PIXELS, max_pixels: int = TINY_MAX_PIXELS):
    """A ``Qwen2_5_VLProcessor`` built offline: tiny tokenizer, PIL image processor."""
    image_processor = pil_image_processor(min_pixels=min_pixels, max_pixels=max_pixels)
    return assemble_processor("Qwen2_5_VLProcessor", image_processor, tiny_tokenizer(), QWEN_CHAT_TEMPLATE)


def assemble_processor(processor_class: str, image_processor, tokenizer, chat_template: str | None):
    """A Qwen-VL processor from its parts. Its video part is Qwen2-VL's video processor when
    torchvision is installed, otherwise a plain one (images and text work either way)."""
    import transformers
    from transformers.utils import is_torchvision_available

    cls = getattr(transformers, processor_class)
    if is_torchvision_available():
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        video_processor = Qwen2VLVideoProcessor()
        return cls(image_processor=image_processor, tokenizer=tokenizer,
                   video_processor=video_processor, chat_template=chat_template)
    # Without torchvision, transformers exports only a placeholder for the video base class,
    # so its class check cannot pass; the check is relaxed (on this instance only) for a
    # plain ``BaseVideoProcessor``, which saves and reloads like any video processor.
    from transformers.video_processing_utils import BaseVideoProcessor

    processor = cls.__new__(cls)
    real_check = processor.check_argument_for_proper_class
    processor.check_argument_for_proper_class = (
        lambda name, arg: None if isinstance(arg, BaseVideoProcessor) else real_check(name, arg))
    try:
        cls.__init__(processor, image_processor=image_processor, tokenizer=tokenizer,
                     video_processor=BaseVideoProcessor(), chat_template=chat_template)
    finally:
        del processor.check_argument_for_proper_class
    return processor


def _special_ids(tokenizer) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"), bos_token_id=ids("<|endoftext|>"),
    )


def qwen2_5_vl_config(text: dict, vision: dict, vocab_size: int, special_ids: dict, **overrides):
    """A ``Qwen2_5_VLConfig``; ``overrides`` go to the text config, except ``vision_config``
    (a dict merged into the vision tower's) and ``tie_word_embeddings``."""
    from transformers import Qwen2_5_VLConfig

    text, vision = copy.deepcopy(text), copy.deepcopy(vision)
    vision.update(overrides.pop("vision_config", None) or {})
    text.update(overrides)
    tie = text.pop("tie_word_embeddings", False)
    vision.setdefault("out_hidden_size", text["hidden_size"])
    token_ids = {k: special_ids[k] for k in _VISION_TOKEN_KEYS}
    text.update(vocab_size=vocab_size, eos_token_id=special_ids["eos_token_id"],
                pad_token_id=special_ids["pad_token_id"], bos_token_id=special_ids["bos_token_id"])
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie, **token_ids)


def _build(config, seed: int, dtype: torch.dtype, attn_implementation: str | None, device=None, model_class=None):
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    model_class = model_class or Qwen2_5_VLForConditionalGeneration
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.device(device or "cpu"):
            model = model_class(config).to(dtype)
    finally:
        torch.random.set_rng_state(generator_state)
    text = config.text_config
    model.generation_config = GenerationConfig(
        eos_token_id=[text.eos_token_id, text.pad_token_id], pad_token_id=text.pad_token_id,
        bos_token_id=text.bos_token_id, do_sample=False,
    )
    return model.eval()


def tiny_qwen2_5_vl(seed: int = 0, *, dtype: torch.dtype = torch.float32,
                    attn_implementation: str | None = "sdpa", **overrides):
    """A tiny random ``Qwen2_5_VLForConditionalGeneration`` and its offline processor.

    ``overrides`` change text-config fields (``num_hidden_layers=4``, ``hidden_size=128`` ...);
    ``vision_config={...}`` changes the vision tower. The same ``seed`` gives the same weights.
    """
    processor = tiny_processor()
    vocab_size = -(-len(processor.tokenizer) // 64) * 64
    config = qwen2_5_vl_config(TINY_TEXT, TINY_VISION, vocab_size, _special_ids(processor.tokenizer), **overrides)
    return _build(config, seed, dtype, attn_implementation), processor



def small_qwen2_5_vl(seed: int = 0, *, dtype: torch.dtype = torch.float32,
                     attn_implementation: str | None = "sdpa", **overrides):
    """The ``small`` preset (``model.path: small``): a random Qwen2.5-VL of about 1.4 M
    parameters with the tiny model's offline processor (``SMALL_TEXT`` / ``SMALL_VISION``).

    Why this size: the tiny model (0.33 M) localises almost nothing after its warm start
    (held-out mean IoU 0.014 after 600 steps); this one (hidden 128, 4 decoder layers of
    4 query / 2 key-value heads of dimension 32, MLP 384; vision tower 2 blocks of hidden
    64) fits the warm start better (mean IoU 0.05-0.09 after 250-300 steps, Acc@0.5 still
    near 0 on the easy split) while a warm-start step of 16 examples stays about 1 s of CPU
    and a GRO step about 9 s. Images stay at most 112 x 112 (16 visual tokens): longer
    visual prefixes would slow every rollout. ``overrides`` as in :func:`tiny_qwen2_5_vl`.

    Its M-RoPE sections ([0, 2, 14] at theta 100, see ``SMALL_TEXT``) let the decoder tell
    visual tokens apart along both image axes. From scratch it still needs a first lesson
    before it looks at the image: a thousand or more supervised steps on one-shape scenes
    (``data.difficulty: single``), and small ones: 1,200 steps of 4 examples (the default
    run's warm start) find the shape for some seeds and 1,800 for every seed measured
    (docs/training.md, "Why these settings"), where 600 steps of 16 mostly do not; a warm
    start on the mixed task alone learns the answer format, not grounding (docs/ablation.md,
    "Why the warm start does not reach the regime").
    """
    processor = tiny_processor()
    vocab_size = -(-len(processor.tokenizer) // 64) * 64
    config = qwen2_5_vl_config(SMALL_TEXT, SMALL_VISION, vocab_size, _special_ids(processor.tokenizer),
                               **overrides)
    return _build(config, seed, dtype, attn_implementation), processor

# Other Qwen-VL families at the same tiny size (the same tokenizer and chat template), so
# code that claims to handle them can be tested offline.
_TINY_FAMILIES = {
    "qwen2-vl": dict(
        model="Qwen2VLForConditionalGeneration", config="Qwen2VLConfig", processor="Qwen2VLProcessor",
        patch_size=14, text={},
        vision=dict(depth=2, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2, patch_size=14)),
    "qwen3-vl": dict(
        model="Qwen3VLForConditionalGeneration", config="Qwen3VLConfig", processor="Qwen3VLProcessor",
        patch_size=16, text=dict(head_dim=16, rope_parameters={
            "rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
        vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, out_hidden_size=64,
                    num_position_embeddings=64, deepstack_visual_indexes=[1])),
}


def tiny_qwen_vl(family: str = "qwen2.5-vl", seed: int = 0, *, dtype: torch.dtype = torch.float32):
    """A tiny random model and offline processor of ``family``: "qwen2.5-vl" (as
    :func:`tiny_qwen2_5_vl`), "qwen2-vl" or "qwen3-vl" (same text sizes; Qwen3-VL uses
    16-pixel patches, so its images are resized to 64-128 px a side)."""
    import transformers

    if family == "qwen2.5-vl":
        return tiny_qwen2_5_vl(seed, dtype=dtype)
    if family not in _TINY_FAMILIES:
        raise ValueError(f"family must be 'qwen2.5-vl' or one of {sorted(_TINY_FAMILIES)}, got {family!r}")
    spec = _TINY_FAMILIES[family]
    tokenizer = tiny_tokenizer()
    ids = _special_ids(tokenizer)
    patch = spec["patch_size"]
    image_processor = pil_image_processor(min_pixels=(4 * patch) ** 2, max_pixels=(8 * patch) ** 2, patch_size=patch)
    processor = assemble_processor(spec["processor"], image_processor, tokenizer, QWEN_CHAT_TEMPLATE)
    text = dict(TINY_TEXT, vocab_size=-(-len(tokenizer) // 64) * 64, eos_token_id=ids["eos_token_id"],
                pad_token_id=ids["pad_token_id"], bos_token_id=ids["bos_token_id"], **spec["text"])
    token_ids = {k: ids[k] for k in _VISION_TOKEN_KEYS}
    config = getattr(transformers, spec["config"])(text_config=text, vision_config=spec["vision"], **token_ids)
    model = _build(config, seed, dtype, "sdpa", model_class=getattr(transformers, spec["model"]))
    return model, processor


def qwen2_5_vl_from_config(name_or_dict: str | dict, *, seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                           device: str | torch.device | None = None,
                           attn_implementation: str | None = "sdpa", **overrides):
    """A full-size Qwen2.5-VL with random weights and the tiny offline processor.

    ``name_or_dict``: one of ``FULL_SIZES`` (``"qwen2.5-vl-3b"``, ``"qwen2.5-vl-7b"``) or a
    dict ``{"text": {...}, "vision": {...}, "vocab_size": int}`` of the same form. The
    processor's image limits default to the real model's (about 1,000 visual tokens for a
    ~900 x 900 image); its token ids lie inside the model's vocabulary.
    """
    if isinstance(name_or_dict, str):
        if name_or_dict.lower() not in FULL_SIZES:
            raise ValueError(f"name_or_dict must be one of {sorted(FULL_SIZES)} or a dict, got {name_or_dict!r}")
        spec = FULL_SIZES[name_or_dict.lower()]
    elif isinstance(name_or_dict, dict) and {"text", "vision", "vocab_size"} <= set(name_or_dict):
        spec = name_or_dict
    else:
        raise TypeError("name_or_dict must be a size name or a dict with 'text', 'vision' and 'vocab_size'")
    processor = tiny_processor(min_pixels=56 * 56, max_pixels=28 * 28 * 1280)
    if spec["vocab_size"] < len(processor.tokenizer):
        raise ValueError(f"vocab_size {spec['vocab_size']} is smaller than the tokenizer ({len(processor.tokenizer)})")
    config = qwen2_5_vl_config(spec["text"], spec["vision"], spec["vocab_size"],
                               _special_ids(processor.tokenizer), **overrides)
    return _build(config, seed, dtype, attn_implementation, device), processor
