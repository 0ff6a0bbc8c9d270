"""Ground truth from dataset columns, and the TRL-signature rewards on each format (no TRL
needed): each reward equals the gro_fast reward it wraps."""
import json

import numpy as np
import pytest
from PIL import Image

from gro_fast import rewards as R
from gro_fast.integrations import columns
from gro_fast.integrations.trl import rewards as T

from .helpers import GT, answer

IMAGE = Image.new("RGB", (112, 96))


@pytest.mark.parametrize("row,objects", [
    ({"solution": json.dumps(GT), "image": IMAGE}, GT),
    ({"solution": GT[:1], "img_width": 112, "img_height": 96}, GT[:1]),
    ({"solution": [{"bbox_2d": [10, 12, 50, 60]}], "image": [IMAGE]},
     [{"bbox_2d": [10, 12, 50, 60], "point_2d": [30, 36]}]),
    ({"conversations": [{"from": "human", "value": "<image>the cat"},
                        {"from": "gpt", "value": "[10, 12, 50, 60]"}], "image": IMAGE},
     [{"bbox_2d": [10, 12, 50, 60], "point_2d": [30, 36]}]),
    ({"bbox": [[10, 12, 50, 60], [70, 20, 100, 52]], "image": IMAGE},
     [{"bbox_2d": o["bbox_2d"], "point_2d": [(o["bbox_2d"][0] + o["bbox_2d"][2]) / 2,
                                             (o["bbox_2d"][1] + o["bbox_2d"][3]) / 2]}
      for o in GT]),
    ({"solution": "<answer>[10, 12, 50, 60]</answer>", "image": IMAGE},
     [{"bbox_2d": [10, 12, 50, 60], "point_2d": [30, 36]}]),
], ids=["visionreasoner-json", "visionreasoner-list", "no-point", "vlmr1", "eval-bbox",
        "vlmr1-answer-text"])
def test_row_objects_reads_each_format(row, objects):
    got = columns.row_objects(row)
    assert [{k: [float(v) for v in o[k]] for k in o} for o in got] == \
        [{k: [float(v) for v in o[k]] for k in o} for o in objects]


def test_counts_and_frames():
    assert columns.row_count({"count": 3}) == 3
    assert columns.row_count({"points": [[1, 2], [3, 4]], "image": IMAGE}) == 2
    assert columns.image_size({"image": IMAGE, "img_width": 640, "img_height": 480}) == (112, 96)
    assert columns.image_size({"img_width": 640, "img_height": 480}) == (640, 480)
    with pytest.raises(ValueError, match="column 'solution'.*outside the 112x96 image"):
        columns.row_objects({"solution": [{"bbox_2d": [0, 0, 300, 40]}], "image": IMAGE})
    with pytest.raises(ValueError, match="no ground-truth column"):
        columns.row_objects({"problem": "x", "image": IMAGE})
    with pytest.raises(ValueError, match="cannot tell the image size"):
        columns.image_size({"solution": "[]"})
    with pytest.raises(ValueError, match="column 'count'"):
        columns.row_count({"count": -1})
    assert columns.ground_truth_objects("[0, 0, 5000, 10]")[0]["bbox_2d"] == [0, 0, 5000, 10]


def test_trl_rewards_equal_gro_fast_rewards():
    texts = [answer(GT, 0), answer(GT, 8), answer(GT[:1], 0), "<think>x</think>nothing",
             "a. a. a. " + answer(GT, 0)]
    n = len(texts)
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    cols = {"solution": [json.dumps(GT)] * n, "image": [IMAGE] * n, "count": [2] * n}
    checks = {
        T.think_format_reward: [R.format_reward(t) for t in texts],
        T.object_format_reward: [R.object_format_reward(t) for t in texts],
        T.accuracy_reward: [R.accuracy_reward(t, GT) for t in texts],
        T.non_repeat_reward: [R.non_repeat_reward(t) for t in texts],
        T.vision_reasoner_reward: [R.vision_reasoner_reward(t, GT) for t in texts],
        T.rec_iou_reward: [R.rec_iou_reward(t, GT) for t in texts],
        T.rec_accuracy_reward: [R.rec_accuracy_reward(t, GT) for t in texts],
        T.count_reward: [R.count_reward(t, 2) for t in texts],
    }
    for fn, want in checks.items():
        assert fn(prompts=[None] * n, completions=completions, completion_ids=None,
                  **cols) == pytest.approx(want), fn.__name__
        assert fn(completions=texts, **cols) == pytest.approx(want), fn.__name__
    assert len({v for fn in checks for v in checks[fn]}) > 3


def test_mask_iou_reward_maps_boxes_to_the_original_size():
    from pycocotools import mask as coco
    gt = np.zeros((192, 224), dtype=np.uint8)  # original size: twice the 112 x 96 input
    gt[24:120, 20:100] = 1
    rle = coco.encode(np.asfortranarray(gt))
    rle["counts"] = rle["counts"].decode()
    row = {"image": [IMAGE], "img_width": 224, "img_height": 192, "mask": [rle]}
    exact = "<think>.</think><answer>[{\"bbox_2d\": [10, 12, 50, 60]}]</answer>"
    half = "<think>.</think><answer>[{\"bbox_2d\": [10, 12, 30, 60]}]</answer>"
    cols = {k: [v, v, v] for k, v in row.items()}
    assert T.mask_iou_reward([exact, half, "none"], **cols) == pytest.approx([1.0, 0.5, 0.0])
