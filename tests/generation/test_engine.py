"""RolloutEngine against Hugging Face generate and a teacher-forced forward (tiny model, CPU)."""
import io

import pytest
import torch

from gro_fast.generation import RolloutEngine
from gro_fast.models import tiny_processor
from gro_fast.ops.token_logprobs import token_logprobs

from .conftest import hf_greedy, image_conversation

TEXT_ONLY = [{"role": "user", "content": "point to the largest object"}]
BATCH = [image_conversation((112, 112), "find the red box"),
         image_conversation((224, 168), "locate the small blue circle left of the tall tree", (10, 20, 200)),
         TEXT_ONLY]


def test_greedy_single_prompt_matches_hf(tiny, reference_kernels):
    model, processor = tiny
    conversation = image_conversation()
    group = RolloutEngine(model, processor).generate([conversation], 1, 10, temperature=0)[0]
    expected = hf_greedy(model, processor, conversation, max_new_tokens=10)
    assert group.samples[0].token_ids.tolist() == expected.tolist()
    batch = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                          return_dict=True, return_tensors="pt")
    assert torch.equal(group.prompt_token_ids, batch["input_ids"][0])
    assert torch.equal(group.model_inputs["pixel_values"], batch["pixel_values"])


def test_greedy_batch_of_different_lengths_matches_hf(tiny, reference_kernels):
    model, processor = tiny
    groups = RolloutEngine(model, processor).generate(BATCH, 2, 8, temperature=0)
    assert len({g.prompt_token_ids.numel() for g in groups}) == 3
    for conversation, group in zip(BATCH, groups):
        expected = hf_greedy(model, processor, conversation, max_new_tokens=8).tolist()
        assert [s.token_ids.tolist() for s in group.samples] == [expected, expected]


def test_gro_revision_turn_matches_hf(tiny, reference_kernels):
    model, processor = tiny
    rounds = RolloutEngine(model, processor).gro_round(
        BATCH[:2], 2, 8, temperature=0, is_well_formed_fn=lambda text: True,
        revision_query_fn=lambda query, initial: f"Check each object again: {query}")
    for conversation, gro in zip(BATCH[:2], rounds):
        assert not gro.fell_back and gro.revision_query.startswith("Check each object again")
        initial = hf_greedy(model, processor, conversation, max_new_tokens=8)
        assert gro.initial.token_ids.tolist() == initial.tolist()
        text = processor.tokenizer.decode(gro.prompt_token_ids)
        assert text.endswith(f"<|im_start|>user\n{gro.revision_query}<|im_end|>\n<|im_start|>assistant\n")
        expected = hf_greedy(model, processor, input_ids=gro.prompt_token_ids, model_inputs=gro.model_inputs)
        assert [s.token_ids.tolist() for s in gro.samples] == [expected.tolist()] * 2
        prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt")["input_ids"][0]
        assert torch.equal(gro.prompt_token_ids[:gro.prompt_length], prompt)
        kept = initial.tolist()[:-1] if gro.initial.finish_reason == "stop" else initial.tolist()
        assert gro.prompt_token_ids[gro.prompt_length:].tolist()[:len(kept)] == kept


def test_gro_fallback_samples_the_original_prompt(tiny, reference_kernels):
    model, processor = tiny
    engine = RolloutEngine(model, processor)
    rounds = engine.gro_round(BATCH[:1], 3, 6, temperature=0, is_well_formed_fn=lambda text: False)
    plain = engine.generate(BATCH[:1], 1, 6, temperature=0)[0]
    assert rounds[0].fell_back and rounds[0].revision_query is None
    assert torch.equal(rounds[0].prompt_token_ids, plain.prompt_token_ids)
    assert rounds[0].prompt_length == plain.prompt_token_ids.numel()
    # One group type for both calls: a plain group has no initial response or revision.
    assert type(rounds[0]) is type(plain) and rounds[0].initial is not None
    assert plain.initial is None and plain.revision_query is None and plain.fell_back
    assert plain.prompt_length == plain.prompt_token_ids.numel()
    assert all(s.token_ids.tolist() == plain.samples[0].token_ids.tolist() for s in rounds[0].samples)


def test_gro_round_default_callables_from_algo(tiny, reference_kernels):
    model, processor = tiny
    rounds = RolloutEngine(model, processor).gro_round(BATCH[:1], 2, 6, seed=0)
    # A random model never writes <think>...</think><answer>[...]</answer>: it falls back.
    assert rounds[0].fell_back and len(rounds[0].samples) == 2


def _teacher_forced_logprobs(model, group, sample, temperature):
    ids = torch.cat([group.prompt_token_ids, sample.token_ids])[None]
    inputs = dict(group.model_inputs)
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.nn.functional.pad(inputs["mm_token_type_ids"],
                                                              (0, sample.length))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **inputs).logits
    n = group.prompt_token_ids.numel()
    return token_logprobs(logits[:, n - 1:-1], sample.token_ids[None], temperature=temperature)[0]


@pytest.mark.parametrize("temperature,top_k,top_p", [pytest.param(0.7, 50, 0.9, id="T0.7-k50-p0.9"),
                                                     pytest.param(0.0, 0, 1.0, id="greedy")])
def test_logprobs_match_teacher_forced_forward(tiny, reference_kernels, temperature, top_k, top_p):
    model, processor = tiny
    groups = RolloutEngine(model, processor).generate(BATCH[:2], 2, 8, temperature=temperature,
                                                      top_k=top_k, top_p=top_p, seed=1)
    for group in groups:
        for sample in group.samples:
            assert sample.logprobs.dtype == torch.float32 and sample.logprobs.shape == sample.token_ids.shape
            expected = _teacher_forced_logprobs(model, group, sample, temperature or 1.0)
            torch.testing.assert_close(sample.logprobs, expected, atol=2e-4, rtol=1e-4)


def test_seeded_sampling_is_reproducible(tiny, reference_kernels):
    model, processor = tiny
    engine = RolloutEngine(model, processor)
    run = lambda seed: [[s.token_ids.tolist() for s in g.samples]  # noqa: E731
                        for g in engine.generate(BATCH[:2], 3, 6, temperature=1.0, seed=seed)]
    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert len({tuple(ids) for ids in first[0]}) > 1  # samples of a group differ


def test_stop_and_length_per_sample(tiny, reference_kernels):
    model, processor = tiny
    im_end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    bias = torch.zeros(model.config.text_config.vocab_size)
    bias[im_end] = 6.0  # makes <|im_end|> likely (p ~ 0.2 per step) so samples stop at different steps
    handle = model.lm_head.register_forward_hook(lambda module, args, out: out + bias)
    try:
        groups = RolloutEngine(model, processor).generate(BATCH[:2], 6, 10, seed=3)
    finally:
        handle.remove()
    reasons, lengths = set(), set()
    for sample in (s for g in groups for s in g.samples):
        ids = sample.token_ids.tolist()
        reasons.add(sample.finish_reason)
        lengths.add(sample.length)
        assert sample.logprobs.numel() == sample.length
        if sample.finish_reason == "stop":
            assert ids[-1] == im_end and im_end not in ids[:-1] and sample.length <= 10
        else:
            assert sample.length == 10 and im_end not in ids
    assert reasons == {"stop", "length"} and len(lengths) > 2


def test_prefix_kv_is_stored_once_per_group(tiny, reference_kernels):
    model, processor = tiny
    engine = RolloutEngine(model, processor)
    groups = engine.generate(BATCH[:2], 4, 5, temperature=0)
    text = model.config.text_config
    P, G, Hkv, D = 2, 4, text.num_key_value_heads, text.hidden_size // text.num_attention_heads
    Lp = max(g.prompt_token_ids.numel() for g in groups)
    stats = engine.last_stats
    assert stats["prefix_kv_shape"] == (P, Hkv, Lp, D)
    assert stats["suffix_kv_shape"] == (P, G, Hkv, 5, D)
    assert stats["prefix_kv_bytes"] == text.num_hidden_layers * 2 * P * Hkv * Lp * D * 4
    assert stats["first_token_s"] > 0


def test_training_mode_is_restored(tiny, reference_kernels):
    model, processor = tiny
    model.train()
    try:
        RolloutEngine(model, processor).generate([TEXT_ONLY], 1, 2, temperature=0)
        assert model.training
    finally:
        model.eval()


def test_bad_inputs_raise_clear_errors(tiny):
    model, processor = tiny
    engine = RolloutEngine(model, processor)
    with pytest.raises(ValueError, match="max_new_tokens"):
        engine.generate([TEXT_ONLY], 1, 0)
    with pytest.raises(ValueError, match="num_samples"):
        engine.generate([TEXT_ONLY], 0, 4)
    with pytest.raises(ValueError, match="conversation 1: the last user turn has no text"):
        engine.generate([TEXT_ONLY, [{"role": "user", "content": "  "}]], 1, 4)
    broken = [{"role": "user", "content": [{"type": "image", "image": b"not an image"},
                                           {"type": "text", "text": "find it"}]}]
    with pytest.raises(ValueError, match="conversation 0, message 0, part 0: image could not be decoded"):
        engine.generate([broken], 1, 4)
    with pytest.raises(ValueError, match="conversation 0: prompt of .* exceeds the context of 40"):
        RolloutEngine(model, processor, max_context=40).generate([image_conversation()], 1, 4)
    with pytest.raises(ValueError, match="conversations"):
        engine.generate([], 1, 4)
    with pytest.raises(ValueError, match="temperature"):
        engine.generate([TEXT_ONLY], 1, 4, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        engine.generate([TEXT_ONLY], 1, 4, top_p=0.0)
    with pytest.raises(ValueError, match="attention"):
        RolloutEngine(model, processor, attention="flash")


def test_processor_without_chat_template_is_rejected(tiny):
    model, _ = tiny
    processor = tiny_processor()
    processor.chat_template = None
    processor.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        RolloutEngine(model, processor)


def test_images_as_bytes_and_paths(tiny, reference_kernels, tmp_path):
    model, processor = tiny
    image = image_conversation()[0]["content"][0]["image"]
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    image.save(tmp_path / "x.png")
    as_bytes = [{"role": "user", "content": [{"type": "image", "image": buffer.getvalue()},
                                             {"type": "text", "text": "find the red box"}]}]
    as_path = [{"role": "user", "content": [{"type": "image", "image": str(tmp_path / "x.png")},
                                            {"type": "text", "text": "find the red box"}]}]
    groups = RolloutEngine(model, processor).generate([as_bytes, as_path, image_conversation()], 1, 3,
                                                      temperature=0)
    assert groups[0].samples[0].token_ids.tolist() == groups[2].samples[0].token_ids.tolist()
    assert groups[1].samples[0].token_ids.tolist() == groups[2].samples[0].token_ids.tolist()


def test_triton_decode_attention_under_interpreter(tiny):
    pytest.importorskip("triton")
    model, processor = tiny
    conversation = [image_conversation((56, 56), "the dog")]
    triton = RolloutEngine(model, processor, attention="triton").generate(conversation, 2, 3, temperature=0)
    reference = RolloutEngine(model, processor, attention="reference").generate(conversation, 2, 3, temperature=0)
    assert [s.token_ids.tolist() for s in triton[0].samples] == [s.token_ids.tolist() for s in reference[0].samples]
    torch.testing.assert_close(triton[0].samples[0].logprobs, reference[0].samples[0].logprobs,
                               atol=1e-4, rtol=1e-4)


def test_cuda_graphs_need_a_cuda_model(tiny):
    model, processor = tiny
    with pytest.raises(ValueError, match="cuda_graphs"):
        RolloutEngine(model, processor, cuda_graphs=True).generate([TEXT_ONLY], 1, 3, temperature=0)


@pytest.mark.gpu
def test_cuda_graph_decode_matches_eager_and_hf():
    from gro_fast.models import tiny_qwen2_5_vl

    model, processor = tiny_qwen2_5_vl(seed=0)
    model = model.cuda()
    graphed = RolloutEngine(model, processor, cuda_graphs=True).generate(BATCH, 2, 12, temperature=0)
    eager = RolloutEngine(model, processor, cuda_graphs=False).generate(BATCH, 2, 12, temperature=0)
    for conversation, g, e in zip(BATCH, graphed, eager):
        assert [s.token_ids.tolist() for s in g.samples] == [s.token_ids.tolist() for s in e.samples]
        expected = hf_greedy(model, processor, conversation, max_new_tokens=12).tolist()
        assert g.samples[0].token_ids.tolist() == expected


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen3-vl"])
def test_other_qwen_vl_families_match_hf(family, reference_kernels):
    from gro_fast.models import tiny_qwen_vl

    model, processor = tiny_qwen_vl(family, seed=0)
    engine = RolloutEngine(model, processor)
    groups = engine.generate(BATCH, 1, 6, temperature=0)
    for conversation, group in zip(BATCH, groups):
        expected = hf_greedy(model, processor, conversation, max_new_tokens=6)
        assert group.samples[0].token_ids.tolist() == expected.tolist()
    gro = engine.gro_round(BATCH[:1], 1, 6, temperature=0, is_well_formed_fn=lambda text: True,
                           revision_query_fn=lambda query, initial: "again: " + query)[0]
    expected = hf_greedy(model, processor, input_ids=gro.prompt_token_ids, model_inputs=gro.model_inputs,
                         max_new_tokens=6)
    assert gro.samples[0].token_ids.tolist() == expected.tolist()


def test_vision_placeholders_are_never_sampled(tiny, reference_kernels):
    model, processor = tiny
    image_pad = model.config.image_token_id
    bias = torch.zeros(model.config.text_config.vocab_size)
    bias[image_pad] = 20.0
    handle = model.lm_head.register_forward_hook(lambda module, args, out: out + bias)
    try:
        groups = RolloutEngine(model, processor).generate(BATCH[:1], 3, 5, seed=0)
        forced = RolloutEngine(model, processor, suppress_token_ids=[]).generate(BATCH[:1], 1, 2, temperature=0)
    finally:
        handle.remove()
    assert all(image_pad not in s.token_ids.tolist() for s in groups[0].samples)
    assert forced[0].samples[0].token_ids.tolist() == [image_pad, image_pad]


def test_prefill_runs_through_the_chosen_backend(tiny, reference_kernels):
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    model, processor = tiny
    assert RolloutEngine(model, processor).prefill_attention is None  # CPU fp32: the model's own (sdpa)
    calls = []

    def spy(module, *args, **kwargs):
        calls.append(module.layer_idx)
        return sdpa_attention_forward(module, *args, **kwargs)

    AttentionInterface.register("gro_fast_test_spy", spy)
    conversation = [image_conversation()]
    expected = RolloutEngine(model, processor).generate(conversation, 1, 5, temperature=0)[0].samples[0]
    spied = RolloutEngine(model, processor, prefill_attention="gro_fast_test_spy")
    assert spied.generate(conversation, 1, 5, temperature=0)[0].samples[0].token_ids.tolist() == \
        expected.token_ids.tolist()
    assert calls == list(range(model.config.text_config.num_hidden_layers))  # prefill only, once per layer
    assert model.model.language_model.layers[0].self_attn.config._attn_implementation == "sdpa"
