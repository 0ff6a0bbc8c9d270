"""Load a vision-language checkpoint (model + processor) from a local directory.

Only local files are read (``local_files_only=True``): a hub id or a missing folder is a
clear error, never a download. Works for the Qwen-VL families that transformers maps to
``AutoModelForImageTextToText`` (Qwen2-VL, Qwen2.5-VL, Qwen3-VL). It does not build
models from configs (see :mod:`gro_fast.models.qwen_vl`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

_DTYPES = {"auto": "auto", "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def _checkpoint_dir(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"checkpoint directory {str(folder)!r} does not exist (gro_fast loads local checkpoints only; "
            "download the model first, e.g. with `huggingface-cli download`, and pass its folder)")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint directory {str(folder)!r} has no config.json")
    return folder


def _resolve_dtype(dtype):
    if isinstance(dtype, torch.dtype) or dtype is None:
        return dtype if dtype is not None else "auto"
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(f"dtype must be a torch.dtype or one of {sorted(_DTYPES)}, got {dtype!r}")


def load_processor(path: str | os.PathLike):
    """The checkpoint's processor. Without torchvision, transformers cannot load a Qwen-VL
    video processor, so the processor is assembled from its tokenizer, image processor and
    chat template instead (images and text behave the same)."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer
    from transformers.utils import is_torchvision_available

    from .qwen_vl import assemble_processor

    folder = _checkpoint_dir(path)
    if is_torchvision_available():
        return AutoProcessor.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, backend="pil")
    return assemble_processor(_processor_class(folder), image_processor, tokenizer, tokenizer.chat_template)


def _processor_class(folder: Path) -> str:
    """The processor class named by the checkpoint, or the one its model type implies."""
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = folder / name
        if file.is_file():
            value = json.loads(file.read_text()).get("processor_class")
            if value:
                return value
    model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
    by_type = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen3_vl": "Qwen3VLProcessor"}
    if model_type not in by_type:
        raise ValueError(f"{str(folder)!r}: cannot tell the processor class of model_type {model_type!r}")
    return by_type[model_type]


def load_pretrained(path: str | os.PathLike, *, dtype="auto", attn_implementation: str | None = None,
                    device: str | torch.device | None = None):
    """``(model, processor)`` from a local checkpoint directory.

    ``dtype``: a torch dtype, ``"auto"`` (the checkpoint's) or a name such as ``"bf16"``.
    ``attn_implementation``: ``"sdpa"``, ``"flash_attention_2"``, ``"eager"`` ... or None for
    transformers' default. The model is returned in eval mode.
    """
    from transformers import AutoModelForImageTextToText

    folder = _checkpoint_dir(path)
    kwargs = dict(dtype=_resolve_dtype(dtype), local_files_only=True)
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(folder, **kwargs)
    if device is not None:
        model = model.to(device)
    return model.eval(), load_processor(folder)


def save_pretrained(model, processor, path: str | os.PathLike) -> Path:
    """Write model and processor to ``path`` so that :func:`load_pretrained` (and
    ``AutoModelForImageTextToText.from_pretrained``) read them back."""
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
