"""The synthetic grounding task: determinism, split disjointness, and that the pixels, masks,
boxes, points, counts and query meaning agree."""
import json
import re

import numpy as np
import pytest

from gro_fast.data import SyntheticGroundingTask, synthetic_answer
from gro_fast.data.synthetic import split_of
from gro_fast.data.synthetic_scene import COLOURS, RELATIONS, is_clear, resolve

N = 60


def test_same_seed_same_samples_any_order():
    a = SyntheticGroundingTask(seed=3, length=N)
    b = SyntheticGroundingTask(seed=3, length=N)
    for i in [17, 0, 59, 17]:
        x, y = a[i], b[i]
        assert x.query == y.query and x.objects == y.objects
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))
        assert np.array_equal(x.mask, y.mask)
    assert a[-1].id == a[N - 1].id == "synthetic-train-3-59"


def test_different_seeds_differ():
    a, b = SyntheticGroundingTask(seed=0, length=20), SyntheticGroundingTask(seed=1, length=20)
    assert sum(a.scene(i).signature != b.scene(i).signature for i in range(20)) >= 19


def test_train_and_heldout_are_disjoint():
    train = {SyntheticGroundingTask(split="train", difficulty=d, length=150).scene(i).signature
             for d in ("easy", "hard") for i in range(150)}
    heldout = {SyntheticGroundingTask(split="heldout", difficulty=d, length=150).scene(i).signature
               for d in ("easy", "hard") for i in range(150)}
    assert not train & heldout
    assert {split_of(s) for s in train} == {"train"}
    assert {split_of(s) for s in heldout} == {"heldout"}
    assert len(train) > 280 and len(heldout) > 280  # barely any repeats within a split


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_pixels_masks_boxes_points_agree(difficulty, split):
    task = SyntheticGroundingTask(seed=5, split=split, difficulty=difficulty, length=N)
    for i in range(N):
        scene, sample = task.scene(i), task[i]
        pixels = np.asarray(sample.image)
        assert sample.image.size == sample.input_size == sample.original_size == (112, 112)
        assert resolve(scene.query, scene.shapes, 112) == scene.targets
        assert is_clear(scene.query, scene.shapes, 112) and sample.query == scene.query.text
        assert sample.count == len(sample.objects) == len(scene.targets) >= 1
        union = np.zeros((112, 112), bool)
        for obj, t in zip(sample.objects, scene.targets):
            visible = scene.visible_masks[t]
            ys, xs = np.nonzero(visible)
            assert obj["bbox_2d"] == [xs.min(), ys.min(), xs.max(), ys.max()]
            px, py = obj["point_2d"]
            assert visible[py, px]
            assert (pixels[visible] == COLOURS[scene.shapes[t].colour]).all()
            union |= visible
        np.testing.assert_array_equal(sample.mask, union)
        assert not scene.visible_masks.any(axis=0)[pixels.sum(axis=2) == sum(scene.background)
                                                   ].any()


def test_easy_and_hard_look_different():
    easy = SyntheticGroundingTask(difficulty="easy", length=N)
    hard = SyntheticGroundingTask(difficulty="hard", length=N)
    easy_scenes = [easy.scene(i) for i in range(N)]
    hard_scenes = [hard.scene(i) for i in range(N)]
    for s in easy_scenes:
        looks = [(x.colour, x.kind) for x in s.shapes]
        assert len(looks) == len(set(looks)) <= 3 and len(s.targets) == 1
        assert re.fullmatch(r"the (\w+) (\w+)", s.query.text)
    queries = [s.query for s in hard_scenes]
    assert any(q.relation in RELATIONS for q in queries)
    assert any(q.select_all for q in queries)
    assert any(q.target.size == "small" for q in queries)
    # hard scenes have a distractor sharing colour or kind with a target
    for s in hard_scenes:
        targets = [s.shapes[k] for k in s.targets]
        others = [x for k, x in enumerate(s.shapes) if k not in s.targets]
        assert any(x.colour == t.colour or x.kind == t.kind
                   for t in targets for x in others), s.query.text
    small = [min(x.r for x in s.shapes) for s in hard_scenes]
    assert min(small) < 0.09 * 112


def test_single_is_one_large_shape_named_by_its_look():
    task = SyntheticGroundingTask(difficulty="single", length=30)
    easy = SyntheticGroundingTask(difficulty="easy", length=30)
    for i in range(30):
        scene, sample = task.scene(i), task[i]
        (shape,) = scene.shapes
        assert shape.r >= 0.13 * 112 * 0.99
        assert sample.query == f"the {shape.colour} {shape.kind}" and sample.count == 1
    assert any(len(easy.scene(i).shapes) > 1 for i in range(30))
    assert len({task.scene(i).shapes[0].cx for i in range(30)}) > 10
    heldout = SyntheticGroundingTask(difficulty="single", split="heldout", length=30)
    assert not ({task.scene(i).signature for i in range(30)}
                & {heldout.scene(i).signature for i in range(30)})
    assert {split_of(heldout.scene(i).signature) for i in range(30)} == {"heldout"}


def test_mixed_has_both_and_bad_arguments_fail():
    mixed = SyntheticGroundingTask(difficulty="mixed", length=40)
    assert {len(mixed.scene(i).shapes) > 3 or mixed.scene(i).query.relation is not None
            for i in range(40)} == {True, False}
    # each sample says which kind of scene it is, as the scene it was built from
    kinds = [mixed[i].difficulty for i in range(40)]
    assert set(kinds) == {"easy", "hard"}
    assert kinds == [mixed.scene(i).difficulty for i in range(40)]
    for kind in ("easy", "hard", "single"):
        assert SyntheticGroundingTask(difficulty=kind, length=2)[1].difficulty == kind
    for kwargs, match in [({"split": "test"}, "split"), ({"difficulty": "medium"}, "difficulty"),
                          ({"image_size": 8}, "image_size"), ({"length": -1}, "length")]:
        with pytest.raises(ValueError, match=match):
            SyntheticGroundingTask(**kwargs)
    with pytest.raises(IndexError):
        mixed[40]
    assert len(list(SyntheticGroundingTask(length=3))) == 3


def test_synthetic_answer_is_well_formed_and_exact():
    sample = SyntheticGroundingTask(difficulty="hard", length=10)[1]
    text = synthetic_answer(sample)
    m = re.fullmatch(r"<think>(.*?)</think><answer>(.*?)</answer>", text, re.DOTALL)
    assert m and sample.query in m.group(1)
    assert json.loads(m.group(2)) == sample.objects
    assert len(text) < 80 + 60 * len(sample.objects)


def test_config_and_eval_cli_offer_the_tasks_difficulties():
    from typing import get_args

    from gro_fast.data.synthetic import DIFFICULTIES
    from gro_fast.eval.cli import build_parser
    from gro_fast.train.config import Difficulty, WarmStartConfig
    assert get_args(Difficulty) == DIFFICULTIES
    assert WarmStartConfig().difficulty == ""  # "" = the data's; any difficulty otherwise
    action = next(a for a in build_parser()._actions if a.dest == "synthetic_difficulty")
    assert tuple(action.choices) == DIFFICULTIES
