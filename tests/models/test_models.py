"""Tiny offline Qwen2.5-VL, its tokenizer and processor, full-size configs, local loading."""
import unicodedata
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gro_fast.models import (FULL_SIZES, GRO_FORMAT_TOKENS, QWEN_SPECIAL_TOKENS, load_pretrained,
                             mrope_turn_per_token, qwen2_5_vl_from_config, save_pretrained,
                             tiny_qwen2_5_vl, tiny_tokenizer)

ANSWER = ('<think>The red circle left of the big square.</think>'
          '<answer>[{"bbox_2d": [10, 20, 110, 220], "point_2d": [60, 120]}]</answer>')


@pytest.fixture(scope="module")
def tiny():
    return tiny_qwen2_5_vl(seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _messages(size=(112, 112), text="find the red box"):
    image = Image.new("RGB", size, (200, 30, 30))
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_text_round_trips(tokenizer, text):
    # Qwen2's tokenizer normalises input to NFC (its tokenizer.json has an NFC normalizer), so
    # e.g. the compatibility ideograph U+2F800 comes back as U+4E3D: the round trip is to NFC.
    assert tokenizer.decode(tokenizer.encode(text)) == unicodedata.normalize("NFC", text)


def test_text_is_nfc_normalised_like_qwen2(tokenizer):
    assert tokenizer.decode(tokenizer.encode("\U0002F800")) == "\u4e3d"


def test_gro_answer_is_compact(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode(ANSWER))
    for marker in GRO_FORMAT_TOKENS:
        assert marker in tokens
    assert {"Ġred", "Ġcircle", "Ġleft", "Ġof", "Ġthe", "Ġbig", "Ġsquare"} <= set(tokens)
    assert len(tokens) <= 50, len(tokens)


def test_special_tokens_are_single_and_skipped(tokenizer):
    for token in QWEN_SPECIAL_TOKENS:
        assert tokenizer.encode(token) == [tokenizer.convert_tokens_to_ids(token)]
    ids = tokenizer.encode("<|im_start|>assistant\n" + ANSWER + "<|im_end|>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "assistant\n" + ANSWER
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_chat_template_matches_qwen_format(tiny):
    _, processor = tiny
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "find it"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                {"role": "user", "content": "again"}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>find it<|im_end|>\n"
                    "<|im_start|>assistant\nok<|im_end|>\n<|im_start|>user\nagain<|im_end|>\n"
                    "<|im_start|>assistant\n")


@pytest.mark.parametrize("size,grid", [pytest.param((112, 112), (1, 8, 8), id="112x112"),
                                       pytest.param((640, 480), (1, 6, 8), id="640x480")])
def test_apply_chat_template_tokenizes_images(tiny, size, grid):
    model, processor = tiny
    batch = processor.apply_chat_template(_messages(size), add_generation_prompt=True, tokenize=True,
                                          return_dict=True, return_tensors="pt")
    assert tuple(batch["image_grid_thw"][0].tolist()) == grid
    n_visual = (batch["input_ids"] == model.config.image_token_id).sum().item()
    assert n_visual == grid[0] * grid[1] * grid[2] // 4
    assert batch["pixel_values"].shape == (grid[0] * grid[1] * grid[2], 3 * 2 * 14 * 14)
    logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


def test_seed_fixes_weights():
    a, _ = tiny_qwen2_5_vl(seed=3)
    b, _ = tiny_qwen2_5_vl(seed=3)
    c, _ = tiny_qwen2_5_vl(seed=4, num_hidden_layers=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert c.config.text_config.num_hidden_layers == 3
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_save_load_round_trip(tiny, tmp_path):
    from transformers import AutoModelForImageTextToText

    model, processor = tiny
    save_pretrained(model, processor, tmp_path / "ckpt")
    loaded, loaded_processor = load_pretrained(tmp_path / "ckpt", dtype="fp32")
    auto = AutoModelForImageTextToText.from_pretrained(tmp_path / "ckpt")
    kwargs = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    batch = processor.apply_chat_template(_messages(), **kwargs)
    batch2 = loaded_processor.apply_chat_template(_messages(), **kwargs)
    assert all(torch.equal(batch[k], batch2[k]) for k in batch)
    with torch.no_grad():
        ref = model(**batch).logits
        assert torch.equal(ref, loaded(**batch2).logits)
        assert torch.equal(ref, auto(**batch).logits)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)
    with pytest.raises(TypeError, match="path"):
        load_pretrained(3)


def test_full_size_3b_shape():
    model, processor = qwen2_5_vl_from_config("qwen2.5-vl-3b", device="meta")
    n_params = sum(p.numel() for p in model.parameters())
    assert 3.70e9 < n_params < 3.80e9, n_params
    text = model.config.text_config
    assert (text.num_hidden_layers, text.hidden_size, text.num_key_value_heads) == (36, 2048, 2)
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    with pytest.raises(ValueError, match="name_or_dict"):
        qwen2_5_vl_from_config("qwen9-vl")


@pytest.mark.parametrize("family,processor_class", [("qwen2-vl", "Qwen2VLProcessor"),
                                                    ("qwen3-vl", "Qwen3VLProcessor")])
def test_other_families_round_trip(family, processor_class, tmp_path):
    from gro_fast.models import tiny_qwen_vl

    model, processor = tiny_qwen_vl(family, seed=0)
    save_pretrained(model, processor, tmp_path)
    loaded, loaded_processor = load_pretrained(tmp_path)
    assert type(loaded) is type(model) and type(loaded_processor).__name__ == processor_class
    kwargs = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    batch = loaded_processor.apply_chat_template(_messages(), **kwargs)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)


def test_small_preset_is_larger_than_tiny_with_the_same_processor():
    from gro_fast.models import small_qwen2_5_vl
    from gro_fast.train.config import ModelConfig
    from gro_fast.train.model_setup import load_policy
    model, processor = load_policy(ModelConfig(path="small", seed=1), torch.device("cpu"))
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.intermediate_size) == (128, 4, 384)
    assert text.hidden_size // text.num_attention_heads == 2 * sum(text.rope_parameters["mrope_section"])
    # both image axes turn enough per visual token to be told apart, width within a factor
    # 2 of height (docs/training.md, "Why these settings"); the published layout
    # does not, and text positions are the same either way
    turns = mrope_turn_per_token(text)
    assert turns["height"] >= 0.5 and turns["width"] >= 0.5 * turns["height"], turns
    published = mrope_turn_per_token(SimpleNamespace(**FULL_SIZES["qwen2.5-vl-3b"]["text"]))
    assert published["width"] < 1e-3 and published["temporal"] == 1.0
    assert model.config.vision_config.out_hidden_size == 128
    n_small = sum(p.numel() for p in model.parameters())
    n_tiny = sum(p.numel() for p in tiny_qwen2_5_vl()[0].parameters())
    assert 1_000_000 < n_small < 2_000_000 and n_small > 3 * n_tiny
    assert model.training  # load_policy hands back a model ready to train
    again, _ = small_qwen2_5_vl(seed=1)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), again.state_dict().values()))
    kwargs = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    batch = processor.apply_chat_template(_messages(), **kwargs)
    assert batch["input_ids"].tolist() == tiny_qwen2_5_vl()[1].apply_chat_template(_messages(), **kwargs)["input_ids"].tolist()
    with torch.no_grad():
        out = model.eval().generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3 or out[0, -1] in model.generation_config.eos_token_id
    assert int(out.max()) < text.vocab_size
