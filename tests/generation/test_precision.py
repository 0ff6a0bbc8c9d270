"""The engine under a trainer's GPU precision, emulated on CPU: fp32 master weights sampled
under bf16 autocast. One compute dtype in the caches (no crash), weights cast once per
change of the master weights (never per decode step), refreshed after an optimizer step."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from gro_fast.generation import RolloutEngine
from gro_fast.generation.engine import DECODE_STEP
from gro_fast.generation.weights import SamplingWeights
from gro_fast.models import tiny_qwen2_5_vl

from .conftest import image_conversation

BATCH = [image_conversation((112, 112), "find the red box"),
         image_conversation((168, 112), "locate the small blue circle", (10, 20, 200))]


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.fixture
def fp32_tiny():
    return tiny_qwen2_5_vl(seed=0)  # fresh: the tests change its weights


def token_lists(groups):
    return [[s.token_ids.tolist() for s in g.samples] for g in groups]


def test_generate_and_gro_round_under_autocast_over_fp32_weights(fp32_tiny, reference_kernels):
    model, processor = fp32_tiny
    engine = RolloutEngine(model, processor)
    with bf16_autocast():
        groups = engine.generate(BATCH, 3, 6, seed=0)
        assert engine.last_stats["compute_dtype"] == "bfloat16"
        bf16_bytes = engine.last_stats["prefix_kv_bytes"]
        rounds = engine.gro_round(BATCH, 2, 5, seed=0, is_well_formed_fn=lambda text: True)
    assert all(len(g.samples) == 3 for g in groups) and all(not r.fell_back for r in rounds)
    assert next(model.parameters()).dtype == torch.float32           # the model is untouched
    engine.generate(BATCH, 3, 6, seed=0)
    assert engine.last_stats["compute_dtype"] == "float32"
    assert engine.last_stats["prefix_kv_bytes"] == 2 * bf16_bytes     # the cache held bf16
    explicit = RolloutEngine(model, processor, dtype=torch.bfloat16).generate(BATCH, 3, 6, seed=0)
    assert token_lists(explicit) == token_lists(groups)


def _weight_casts(events, weight_shapes) -> int:
    """Casts (aten::_to_copy) of a tensor shaped like a weight, inside decode steps."""
    def walk(event):
        yield event
        for child in event.cpu_children:
            yield from walk(child)
    steps = [e for e in events if e.name == DECODE_STEP]
    assert steps, "no decode step was profiled"
    return sum(1 for step in steps for e in walk(step)
               if e.name == "aten::_to_copy" and e.input_shapes and tuple(e.input_shapes[0]) in weight_shapes)


def test_decode_steps_launch_no_weight_casts(fp32_tiny, reference_kernels):
    model, processor = fp32_tiny
    # 2-D parameters: the weights a per-step autocast would cast ([V, H], [out, in] ...); the
    # decode batch (2 x 3 rows) shapes no activation like them.
    weight_shapes = {tuple(p.shape) for p in model.parameters() if p.dim() == 2}
    engine = RolloutEngine(model, processor)
    with bf16_autocast():
        engine.generate(BATCH, 3, 4, seed=0)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            engine.generate(BATCH, 3, 4, seed=0)
    assert _weight_casts(prof.events(), weight_shapes) == 0
    # The check can fail: the same decode under autocast on the fp32 weights casts them.
    engine_on_master = RolloutEngine(model, processor, dtype=torch.float32)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        _decode_with_autocast_inside(engine_on_master)
    assert _weight_casts(prof.events(), weight_shapes) > 0


def _decode_with_autocast_inside(engine):
    """A decode whose forwards run under autocast (what the engine did before it sampled
    from compute-dtype weights)."""
    forward = engine._forward_step

    def autocast_forward(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(*args, **kwargs)
    engine._forward_step = autocast_forward
    engine.generate(BATCH, 3, 4, seed=0)


def test_copy_is_refreshed_once_after_an_optimizer_step(fp32_tiny, reference_kernels):
    model, processor = fp32_tiny
    engine = RolloutEngine(model, processor)
    with bf16_autocast():
        before = token_lists(engine.generate(BATCH, 2, 6, temperature=0))
        engine.generate(BATCH, 2, 6, temperature=0)
    assert engine.weights.refreshes == 1                               # made once, not refilled
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    with torch.no_grad():
        model.lm_head.weight.grad = torch.randn_like(model.lm_head.weight) * 10
    optimizer.step()
    with bf16_autocast():
        after = token_lists(engine.generate(BATCH, 2, 6, temperature=0))
    assert engine.weights.refreshes == 2
    copy = engine.weights.copy
    assert torch.equal(copy.lm_head.weight, model.lm_head.weight.detach().to(torch.bfloat16))
    fresh = RolloutEngine(model, processor, dtype=torch.bfloat16).generate(BATCH, 2, 6, temperature=0)
    assert after == token_lists(fresh) and after != before


def test_weights_in_the_compute_dtype_are_used_as_they_are():
    model, _ = tiny_qwen2_5_vl(seed=0, dtype=torch.bfloat16)   # as FSDP2's gathered bf16 parameters
    weights = SamplingWeights(model)
    assert weights.get(torch.bfloat16) is model and weights.get(None) is model
    assert weights.copy is None
    copy = weights.get(torch.float32)
    assert copy is not model and copy.lm_head.weight.dtype == torch.float32
    assert copy.model.language_model.rotary_emb.inv_freq is model.model.language_model.rotary_emb.inv_freq
