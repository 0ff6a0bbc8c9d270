"""Prompt messages, the resumable sampler and collate."""
import pytest

from gro_fast.data import (DEFAULT_TEMPLATE, GroundingSampler, SyntheticGroundingTask,
                           build_messages, collate, format_prompt)


@pytest.fixture(scope="module")
def sample():
    return SyntheticGroundingTask(length=1)[0]


def test_default_messages_hold_the_image_and_query(sample):
    messages = build_messages(sample)
    assert len(messages) == 1 and messages[0]["role"] == "user"
    image, text = messages[0]["content"]
    assert image == {"type": "image", "image": sample.image}
    assert text["type"] == "text" and f'"{sample.query}"' in text["text"]
    for needle in ("<think></think>", "<answer></answer>", '"bbox_2d"', '"point_2d"'):
        assert needle in text["text"]
    assert len(DEFAULT_TEMPLATE) < 250


def test_custom_template_placeholders(sample):
    text = format_prompt(sample, 'Find {query} in the {width}x{height} image; JSON {"a": 1}.')
    assert text == f'Find {sample.query} in the 112x112 image; JSON {{"a": 1}}.'


@pytest.mark.parametrize("template,error", [("no placeholder", ValueError), (42, TypeError)])
def test_bad_templates(sample, template, error):
    with pytest.raises(error, match="template"):
        build_messages(sample, template)


def test_sampler_covers_each_epoch_and_is_seeded():
    s = GroundingSampler(10, seed=4)
    first, second = s.next_batch(10), s.next_batch(10)
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert GroundingSampler(10, seed=4).next_batch(20) == first + second
    assert GroundingSampler(10, seed=5).next_batch(10) != first
    assert GroundingSampler(5, shuffle=False).next_batch(7) == [0, 1, 2, 3, 4, 0, 1]


def test_sampler_resume_gives_the_same_stream():
    full = GroundingSampler(7, seed=1)
    expected = full.next_batch(3) + full.next_batch(3) + full.next_batch(3) + full.next_batch(3)
    a = GroundingSampler(7, seed=1)
    got = a.next_batch(3) + a.next_batch(3)
    state = dict(a.state_dict())
    b = GroundingSampler(7, seed=1)
    b.load_state_dict(state)
    got += b.next_batch(3) + b.next_batch(3)
    assert got == expected


@pytest.mark.parametrize("state,match", [
    ({"n": 8, "seed": 1, "shuffle": True, "epoch": 0, "offset": 0}, "n=8"),
    ({"n": 7, "seed": 1, "shuffle": True, "epoch": 0, "offset": 9}, "epoch/offset"),
])
def test_sampler_rejects_foreign_state(state, match):
    with pytest.raises(ValueError, match=match):
        GroundingSampler(7, seed=1).load_state_dict(state)


def test_sampler_and_collate_bad_arguments():
    with pytest.raises(ValueError, match="n must"):
        GroundingSampler(0)
    with pytest.raises(ValueError, match="batch_size"):
        GroundingSampler(3).next_batch(0)
    with pytest.raises(ValueError, match="at least one"):
        collate([])


def test_collate_lists_fields():
    samples = SyntheticGroundingTask(length=3)[0:3]
    batch = collate(samples)
    assert batch["queries"] == [s.query for s in samples]
    assert batch["counts"] == [s.count for s in samples] and batch["samples"] == samples


def test_template_recorded_beside_a_model_round_trips(tmp_path):
    from gro_fast.data import load_template, save_template
    assert load_template(str(tmp_path)) is None
    save_template(str(tmp_path), "Find {query}.")
    assert load_template(str(tmp_path)) == "Find {query}."
    (tmp_path / "gro_fast_prompt.json").write_text('{"template": "no placeholder"}')
    with pytest.raises(ValueError, match="gro_fast_prompt.json"):
        load_template(str(tmp_path))
