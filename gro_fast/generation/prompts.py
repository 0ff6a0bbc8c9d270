"""Conversations to model inputs: checks, image decoding, chat template, padding.

A conversation is a list of Hugging Face chat messages ``{"role", "content"}``; content is a
string or a list of parts ``{"type": "text", "text": ...}`` / ``{"type": "image", "image":
PIL image | local path | bytes}``. Each conversation is checked (clear ``ValueError`` naming
it), its images decoded here (so a broken file is reported as such), then run through the
processor's chat template one at a time; ``collate`` right-pads the results into one batch.
It does not sample or run the model.
"""
from __future__ import annotations

import io
import os

import torch
from PIL import Image

TOKEN_KEYS = ("input_ids", "attention_mask")


def require_chat_template(processor):
    template = getattr(processor, "chat_template", None) or getattr(
        getattr(processor, "tokenizer", None), "chat_template", None)
    if not template:
        raise ValueError("processor has no chat template (processor.chat_template and "
                         "processor.tokenizer.chat_template are both empty); set one before rollouts")


def _decode_image(image, where: str) -> Image.Image:
    if isinstance(image, Image.Image):
        source = image
    elif isinstance(image, (bytes, bytearray)):
        source = io.BytesIO(image)
    elif isinstance(image, (str, os.PathLike)):
        if str(image).startswith(("http://", "https://")):
            raise ValueError(f"{where}: image URLs are not fetched; pass a PIL image, a local path or bytes")
        if not os.path.isfile(image):
            raise ValueError(f"{where}: image file {str(image)!r} does not exist")
        source = image
    else:
        raise TypeError(f"{where}: image must be a PIL image, a local path or bytes, got {type(image).__name__}")
    try:
        decoded = source if isinstance(source, Image.Image) else Image.open(source)
        decoded.load()
        return decoded.convert("RGB")
    except Exception as error:  # PIL raises several types for corrupt data
        raise ValueError(f"{where}: image could not be decoded ({type(error).__name__}: {error})") from error


def _content_parts(message, where: str) -> list:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TypeError(f"{where}: content must be a string or a list of parts, got {type(content).__name__}")
    return content


def prepare_conversation(conversation, index: int) -> tuple[list, str]:
    """(conversation with images decoded to RGB PIL images, the last user turn's text)."""
    where = f"conversation {index}"
    if not isinstance(conversation, list) or not conversation:
        raise ValueError(f"{where}: must be a non-empty list of chat messages")
    prepared, query = [], None
    for m, message in enumerate(conversation):
        if not isinstance(message, dict) or "role" not in message:
            raise ValueError(f"{where}, message {m}: must be a dict with 'role' and 'content'")
        parts = []
        for p, part in enumerate(_content_parts(message, f"{where}, message {m}")):
            if isinstance(part, dict) and (part.get("type") == "image" or "image" in part):
                part = {"type": "image", "image": _decode_image(part.get("image"), f"{where}, message {m}, part {p}")}
            parts.append(part)
        prepared.append({**message, "content": parts})
        if message["role"] == "user":
            query = "".join(part.get("text", "") for part in parts if isinstance(part, dict)
                            and part.get("type", "text") == "text")
    if query is None or not query.strip():
        raise ValueError(f"{where}: the last user turn has no text (empty query)")
    if prepared[-1]["role"] != "user":
        raise ValueError(f"{where}: must end with a user turn, got {prepared[-1]['role']!r}")
    return prepared, query


def encode(processor, conversation: list) -> dict:
    """Processor outputs (batch of one) for the conversation with a generation prompt."""
    batch = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                          return_dict=True, return_tensors="pt")
    return dict(batch)


def collate(encoded: list[dict], pad_id: int) -> dict:
    """Right-padded batch of several single-conversation encodings.

    Token-aligned tensors (``input_ids``, ``attention_mask``, ``mm_token_type_ids``) are
    padded; image tensors (``pixel_values``, ``image_grid_thw``, ...) are concatenated in
    order, as the model expects them.
    """
    lengths = [e["input_ids"].shape[1] for e in encoded]
    width = max(lengths)
    batch = {}
    keys = dict.fromkeys(key for e in encoded for key in e)  # a text-only prompt has no pixel_values
    for key in keys:
        values = [e.get(key) for e in encoded]
        token_aligned = all(torch.is_tensor(v) and v.dim() == 2 and v.shape[0] == 1 and v.shape[1] == n
                            for v, n in zip(values, lengths))
        if token_aligned:
            fill = pad_id if key == "input_ids" else 0
            batch[key] = torch.stack([torch.nn.functional.pad(v[0], (0, width - v.shape[1]), value=fill)
                                      for v in values])
        elif all(torch.is_tensor(v) or v is None for v in values) and any(v is not None for v in values):
            batch[key] = torch.cat([v for v in values if v is not None], dim=0)
    return batch


def group_inputs(encoding: dict) -> dict:
    """The per-group ``model_inputs``: everything but input_ids / attention_mask."""
    return {k: v for k, v in encoding.items() if k not in TOKEN_KEYS}


def revision_turn_text(processor, conversation: list, initial_text: str, revision_query: str, index: int) -> str:
    """Chat-template text that follows the initial response: end of the assistant turn,
    the revision user turn and the next generation prompt."""
    def render(messages):
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    prompt = render(conversation)
    follow_up = conversation + [
        {"role": "assistant", "content": [{"type": "text", "text": initial_text}]},
        {"role": "user", "content": [{"type": "text", "text": revision_query}]},
    ]
    full = render(follow_up)
    if not full.startswith(prompt + initial_text):
        raise ValueError(f"conversation {index}: the chat template does not render the revision conversation "
                         "as the prompt followed by the initial response; cannot share the prefix")
    return full[len(prompt) + len(initial_text):]
