"""parse_response: the think/answer format, answer extraction, object reading, and the
promise never to raise; coordinate conversions."""
import json
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gro_fast.rewards import (MAX_OBJECTS, from_normalized, parse_objects, parse_response,
                              think_answer_format_ok, to_model_pixels, to_normalized,
                              to_original_pixels)
from gro_fast.rewards import accuracy_reward, object_format_reward, vision_reasoner_reward

FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
GT = [{"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}]


def _answer(objs, think="looking"):
    return f"<think>{think}</think><answer>{json.dumps(objs)}</answer>"


@pytest.mark.parametrize("text, ok", [
    ("<think>a</think><answer>[]</answer>", True),
    ("<think></think>\n \t<answer></answer>", True),
    ("<think>x</think></think><answer>y</answer>", True),
    ("<think>a</think>b<answer>[]</answer>", False),
    (" <think>a</think><answer>[]</answer>", False),
    ("<think>a</think><answer>[]</answer>\n", False),
    ("<think>a</think><answer>[]", False),
    ("<think>a<answer>[]</answer>", False),
    ("<think><answer></think></answer>", False),
    ("<think>\nline\n</think>\n<answer>\n[1]\n</answer>", True),
    ("", False),
])
def test_format_hand_examples(text, ok):
    assert think_answer_format_ok(text) is ok
    assert parse_response(text).format_ok is ok
    assert bool(FORMAT.fullmatch(text)) is ok


TAGS = st.lists(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", " ", "\n",
                                 "a", "[]", "\u2003", "<", ">"]), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(TAGS)
def test_format_and_answer_match_the_regex(text):
    assert think_answer_format_ok(text) == bool(FORMAT.fullmatch(text))
    m = ANSWER.search(text)
    assert parse_response(text).answer == (m.group(1) if m else None)


def test_objects_read_in_model_pixels():
    r = parse_response(_answer([{"bbox_2d": [1, 2.5, 30, 40], "point_2d": [10, 20]},
                                {"point_2d": [3, 4]}]))
    assert r.format_ok and r.parsed and r.num_items == 2
    assert r.objects[0].bbox == (1.0, 2.5, 30.0, 40.0) and r.objects[0].point == (10.0, 20.0)
    assert r.objects[1].bbox is None and r.objects[1].point == (3.0, 4.0)
    assert "bbox_2d" in r.error
    assert not r.complete and r.object_format == pytest.approx(1.5)


NASTY = [
    "", "<answer>", "<answer>[</answer>", "<think>", "<answer>[{\"bbox_2d\": [1,2,3,4]",
    "<answer>[{'bbox_2d': [1, 2, 3, 4], 'point_2d': [1, 2]}]</answer>",
    "<answer>[{\"bbox_2d\": [1, 2, 3, 4], \"point_2d\": [1, 2]},]</answer>",
    "<answer>[{\"bbox_2d\": [\"1\", \"2\", \"3\", \"4\"], \"point_2d\": [\"1\", \"2\"]}]</answer>",
    "<answer>[{\"bbox_2d\": [NaN, 2, 3, 4], \"point_2d\": [Infinity, 2]}]</answer>",
    "<answer>[{\"bbox_2d\": [1e300, 2, 3, 4], \"point_2d\": [-1e300, 2]}]</answer>",
    "<answer>[{\"bbox_2d\": [" + "9" * 400 + ", 2, 3, 4], \"point_2d\": [1, 2]}]</answer>",
    "<answer>[{\"bbox_2d\": [true, false, 3, 4], \"point_2d\": [null, 2]}]</answer>",
    "<answer>{\"bbox_2d\": [1, 2, 3, 4], \"point_2d\": [1, 2]}</answer>",
    "<answer>[[1, 2, 3, 4]]</answer>", "<answer>[1, \"a\", null, {}]</answer>",
    "<answer>[{\"bbox_2d\": {\"x\": 1}, \"point_2d\": \"12\"}]</answer>",
    "<answer>[{\"bbox_2d\": [[1, 2], [3, 4]], \"point_2d\": [1, 2, 3]}]</answer>",
    "<answer>" + "[" * 100000 + "</answer>", "<answer>" + "{\"a\":" * 50000 + "</answer>",
    "<answer>[\"\\ud800\"]</answer>", "\ud800<think>\udfff</think><answer>[]</answer>",
    "<think>" * 5000 + "</think>" * 5000 + "<answer>" * 5000,
    "<answer>null</answer>", "<answer>\"string\"</answer>", "<answer>1e999</answer>",
    "\x00\x01<answer>\x00</answer>",
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_strings_never_raise_and_score_zero_accuracy(text):
    r = parse_response(text)
    assert r.error is not None
    assert accuracy_reward(r, GT) == 0.0
    assert 0.0 <= vision_reasoner_reward(r, GT) <= 7.0


def test_negative_and_swapped_coordinates_are_kept_as_written():
    r = parse_response(_answer([{"bbox_2d": [50, 60, -10, 5], "point_2d": [-3, 4]}]))
    assert r.error is None and r.objects[0].bbox == (50.0, 60.0, -10.0, 5.0)
    assert accuracy_reward(r, GT) < 3.0


def test_answer_is_read_without_the_think_format():
    r = parse_response('junk <answer> [{"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}] '
                       '</answer></answer>')
    assert not r.format_ok and r.error is None and r.complete
    assert accuracy_reward(r, GT) == 3.0


def test_many_objects_are_capped_at_120():
    one = '{"bbox_2d": [1, 2, 7, 8], "point_2d": [3, 4]}'
    r = parse_response("<think>t</think><answer>[" + ",".join([one] * 100_000) + "]</answer>")
    assert r.num_items == 100_000 and r.num_objects == MAX_OBJECTS == 120
    assert r.objects[-1].bbox == (1.0, 2.0, 7.0, 8.0)
    assert object_format_reward(r) == 2.0


def test_bytes_none_and_wrong_types():
    assert parse_response(b"<think>a</think><answer>[]</answer>").format_ok
    assert parse_response(b"\xff\xfe<answer>[]</answer>").answer == "[]"
    assert parse_response(None).error == "no text"
    with pytest.raises(TypeError, match="text"):
        parse_response(12)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    r = parse_response(text)
    assert isinstance(r.format_ok, bool)
    assert 0.0 <= object_format_reward(r) <= 2.0


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["bbox_2d", "point_2d", "x"]), c, max_size=3),
                    max_leaves=20))
def test_arbitrary_json_answers_never_raise(data):
    r = parse_response(f"<think>t</think><answer>{json.dumps(data)}</answer>")
    assert 0.0 <= vision_reasoner_reward(r, GT) <= 7.0


def test_ground_truth_is_strict_and_fills_missing_points():
    gt = parse_objects(json.dumps([{"bbox_2d": [0, 0, 10, 20]}]))
    assert gt.objects[0].point == (5.0, 10.0)
    assert parse_objects({"bbox_2d": [0, 0, 1, 1], "point_2d": [0, 0]}).num_objects == 1
    for bad, match in [("[{", "not valid JSON"), ([{"point_2d": [1, 2]}], "no bbox_2d"),
                       ([{"bbox_2d": [1, 2, 3]}], "4 finite"), (5, "must be a list"),
                       ([{"bbox_2d": [1, 2, 3, float("nan")]}], "4 finite")]:
        with pytest.raises(ValueError, match=match):
            parse_objects(bad, name="solution")


def test_coordinate_conversions_round_trip_and_keep_types():
    box = [84.0, 42.0, 168.0, 84.0]
    orig = to_original_pixels(box, model_size=(840, 420), original_size=(1680, 1260))
    assert orig == [168.0, 126.0, 336.0, 252.0]
    assert to_model_pixels(orig, (1680, 1260), (840, 420)) == box
    arr = np.array([[420.0, 210.0]])
    assert np.allclose(to_normalized(arr, (840, 420)), [[500.0, 500.0]])
    t = torch.tensor([500, 250, 1000, 1000])
    out = from_normalized(t, (840, 420))
    assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.tensor([420.0, 105.0, 840.0, 420.0]))
    with pytest.raises(ValueError, match="model_size"):
        to_original_pixels(box, (0, 10), (10, 10))
    with pytest.raises(ValueError, match="last dimension"):
        to_normalized([1.0, 2.0, 3.0], (10, 10))
