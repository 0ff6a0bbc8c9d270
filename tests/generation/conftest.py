import pytest
import torch
from PIL import Image

from gro_fast.models import tiny_qwen2_5_vl


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    """Every test here runs torch on one thread (see tests/conftest.py)."""
    yield


@pytest.fixture(scope="module")
def tiny():
    model, processor = tiny_qwen2_5_vl(seed=0)
    return model, processor


def image_conversation(size=(112, 112), text="find the red box", color=(200, 30, 30)):
    image = Image.new("RGB", size, color)
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


def hf_greedy(model, processor, conversation=None, *, input_ids=None, model_inputs=None, max_new_tokens=8):
    """Hugging Face ``generate`` (greedy) continuation ids of a conversation or of given ids."""
    if conversation is not None:
        batch = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                              return_dict=True, return_tensors="pt")
    else:
        ids = input_ids[None]
        batch = {k: v for k, v in model_inputs.items() if k != "mm_token_type_ids"}
        if "mm_token_type_ids" in model_inputs:
            mm = model_inputs["mm_token_type_ids"]
            batch["mm_token_type_ids"] = torch.nn.functional.pad(mm, (0, ids.shape[1] - mm.shape[1]))
        batch.update(input_ids=ids, attention_mask=torch.ones_like(ids))
    batch = {k: v.to(model.device) for k, v in batch.items()}
    # The engine never samples vision placeholder tokens; generate is told the same.
    placeholders = [getattr(model.config, name) for name in ("image_token_id", "video_token_id",
                                                              "vision_start_token_id", "vision_end_token_id")]
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, suppress_tokens=placeholders)
    ids = out[0, batch["input_ids"].shape[1]:].cpu()
    stops = set(model.generation_config.eos_token_id)
    for i, token in enumerate(ids.tolist()):
        if token in stops:
            return ids[:i + 1]
    return ids
