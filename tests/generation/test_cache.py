"""The engine's caches: prefix stored once, suffix slots, prefix extension."""
import math

import pytest
import torch

from gro_fast.generation import PrefixExtensionCache, SharedPrefixCache
from gro_fast.generation.cache import ATTENTION_NAME, _attention, shared_prefix_attention_enabled

P, G, HQ, HKV, D, LAYERS = 2, 3, 4, 2, 8, 2


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _prefix(lp=7, lens=(7, 4)):
    keys = [_rand(P, HKV, lp, D, seed=i) for i in range(LAYERS)]
    values = [_rand(P, HKV, lp, D, seed=10 + i) for i in range(LAYERS)]
    return keys, values, torch.tensor(lens)


def _expanded_attention(q, keys, values, scale):
    """q [Hq, D] over keys/values [Hkv, L, D] (one sample), plain softmax attention."""
    k = keys.repeat_interleave(HQ // HKV, 0)
    v = values.repeat_interleave(HQ // HKV, 0)
    w = torch.softmax(torch.einsum("hd,hld->hl", q, k) * scale, -1)
    return torch.einsum("hl,hld->hd", w, v)


def test_decode_cache_attends_prefix_once_plus_own_suffix(reference_kernels):
    keys, values, lens = _prefix()
    cache = SharedPrefixCache(keys, values, lens, num_samples=G, max_new_tokens=4)
    assert all(k.shape == (P, HKV, 7, D) for k in cache.prefix_k)          # no G axis: stored once
    assert cache.suffix_k[0].shape == (P, G, HKV, 4, D)
    new = [(_rand(P * G, HKV, 1, D, seed=20 + s), _rand(P * G, HKV, 1, D, seed=30 + s)) for s in range(2)]
    for step, (k, v) in enumerate(new):
        cache.update(k, v, 0)
        if step == 0:
            cache.advance()
    q = _rand(P * G, HQ, 1, D, seed=40)
    out = cache.attend(0, q, scaling=1 / math.sqrt(D))
    assert out.shape == (P * G, 1, HQ, D)
    for b in range(P * G):
        p = b // G
        k = torch.cat([keys[0][p, :, :lens[p]], new[0][0][b], new[1][0][b]], dim=1)
        v = torch.cat([values[0][p, :, :lens[p]], new[0][1][b], new[1][1][b]], dim=1)
        torch.testing.assert_close(out[b, 0], _expanded_attention(q[b, :, 0], k, v, 1 / math.sqrt(D)))


def test_extension_builds_each_groups_longer_prefix():
    keys, values, lens = _prefix()
    new_lens = torch.tensor([2, 5])
    cache = PrefixExtensionCache(keys, values, lens, new_lens)
    new_k = [_rand(P, HKV, 5, D, seed=50 + i) for i in range(LAYERS)]
    new_v = [_rand(P, HKV, 5, D, seed=60 + i) for i in range(LAYERS)]
    for layer in range(LAYERS):
        cache.update(new_k[layer], new_v[layer], layer)
    out_k, out_v, out_lens = cache.extended_prefix()
    assert out_lens.tolist() == [9, 9] and out_k[0].shape == (P, HKV, 9, D)
    for layer in range(LAYERS):
        for p in range(P):
            n, m = int(lens[p]), int(new_lens[p])
            expected_k = torch.cat([keys[layer][p, :, :n], new_k[layer][p, :, :m]], 1)
            expected_v = torch.cat([values[layer][p, :, :n], new_v[layer][p, :, :m]], 1)
            torch.testing.assert_close(out_k[layer][p, :, :n + m], expected_k)
            torch.testing.assert_close(out_v[layer][p, :, :n + m], expected_v)


def test_extension_attention_is_causal_over_prefix_and_new_tokens():
    keys, values, lens = _prefix()
    new_lens = torch.tensor([3, 3])
    cache = PrefixExtensionCache(keys, values, lens, new_lens)
    k, v = _rand(P, HKV, 3, D, seed=70), _rand(P, HKV, 3, D, seed=71)
    cache.update(k, v, 1)
    q = _rand(P, HQ, 3, D, seed=72)
    out = cache.attend(1, q, scaling=0.3)
    for p in range(P):
        for i in range(3):
            kk = torch.cat([keys[1][p, :, :lens[p]], k[p, :, :i + 1]], 1)
            vv = torch.cat([values[1][p, :, :lens[p]], v[p, :, :i + 1]], 1)
            torch.testing.assert_close(out[p, i], _expanded_attention(q[p, :, i], kk, vv, 0.3), atol=1e-5, rtol=1e-5)


def test_attention_function_requires_an_engine_cache():
    with pytest.raises(RuntimeError, match=ATTENTION_NAME):
        _attention(torch.nn.Module(), None, None, None, None)


def test_attention_switch_is_restored(tiny):
    model, _ = tiny
    config = model.model.language_model.layers[0].self_attn.config
    with shared_prefix_attention_enabled(model):
        assert config._attn_implementation == ATTENTION_NAME
        assert model.model.visual.config._attn_implementation == "sdpa"
    assert config._attn_implementation == "sdpa"


def test_one_compute_dtype_for_fp32_keys_and_bf16_values(reference_kernels):
    """Under autocast over fp32 weights keys leave RoPE in fp32, values v_proj in bf16."""
    keys, values, lens = _prefix()
    cache = SharedPrefixCache(keys, [v.bfloat16() for v in values], lens, num_samples=G, max_new_tokens=2,
                              dtype=torch.bfloat16)
    assert {t.dtype for t in (*cache.prefix_k, *cache.prefix_v, *cache.suffix_k, *cache.suffix_v)} == {torch.bfloat16}
    cache.update(_rand(P * G, HKV, 1, D, seed=1), _rand(P * G, HKV, 1, D, seed=2).bfloat16(), 0)
    out = cache.attend(0, _rand(P * G, HQ, 1, D, seed=3), scaling=None)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    extension = PrefixExtensionCache(keys, values, lens, torch.tensor([2, 1]), dtype=torch.bfloat16)
    extension.update(_rand(P, HKV, 2, D, seed=4), _rand(P, HKV, 2, D, seed=5).bfloat16(), 0)
    assert extension.attend(0, _rand(P, HQ, 2, D, seed=6), scaling=None).dtype == torch.bfloat16
