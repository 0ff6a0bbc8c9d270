"""The model-input frame has one owner (gro_fast.data.frame) and agrees with the processor.

For processors configured every way a user meets them (the tiny one, limits in ``size``
as transformers 5.x keeps them, limits set as attributes, a fixed pre-resize, and one
loaded like a real Qwen2.5-VL checkpoint with min_pixels=3136, max_pixels=12845056),
samples read from the peers' fixtures have exactly the size the processor itself feeds,
and their boxes map back to original pixels within 0.5 px. A sample in another frame
(the old default limits: issue 12's 840 x 840 against 112 x 112) is refused loudly."""
import json

import numpy as np
import pytest
from PIL import Image

from gro_fast.data import (FrameMismatch, ResizeConfig, check_frame, fed_size,
                           load_eval_rows, load_grounding_dataset, model_frame)
from gro_fast.data.frame import check_fed_sizes, parse_resize, processor_rule
from gro_fast.models.qwen_vl import (QWEN_CHAT_TEMPLATE, assemble_processor, pil_image_processor,
                                     tiny_processor)
from gro_fast.models.tokenizer import tiny_tokenizer

from .datafiles import PEERS, peer_truth

# A real Qwen2.5-VL checkpoint's preprocessor_config.json (the published 3B / 7B ones).
QWEN25VL_PREPROCESSOR = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
    "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"}


def _checkpoint_processor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen25vl")
    (folder / "preprocessor_config.json").write_text(json.dumps(QWEN25VL_PREPROCESSOR))
    image_processor = type(pil_image_processor()).from_pretrained(str(folder))
    return assemble_processor("Qwen2_5_VLProcessor", image_processor, tiny_tokenizer(),
                              QWEN_CHAT_TEMPLATE)


def _attribute_limits():
    image_processor = pil_image_processor()
    image_processor.min_pixels, image_processor.max_pixels = 20 * 20, 140 * 140
    return image_processor


@pytest.fixture(scope="module")
def processors(tmp_path_factory):
    """name -> (processor, data.resize)."""
    checkpoint = _checkpoint_processor(tmp_path_factory)
    return {
        "tiny": (tiny_processor(), "processor"),
        "size-limits": (pil_image_processor(size={"shortest_edge": 28 * 28 * 4,
                                                  "longest_edge": 28 * 28 * 64}), "processor"),
        "attribute-limits": (_attribute_limits(), "processor"),
        "tiny-fixed-840": (tiny_processor(), "840x840"),
        "qwen2.5-vl-checkpoint": (checkpoint, "processor"),
        "qwen2.5-vl-checkpoint-fixed-840": (checkpoint, "840x840"),
    }


PROCESSORS = ["tiny", "size-limits", "attribute-limits", "tiny-fixed-840",
              "qwen2.5-vl-checkpoint", "qwen2.5-vl-checkpoint-fixed-840"]
FIXTURES = [("segzero_train.jsonl", load_grounding_dataset, {}),
            ("vlmr1_rec.jsonl", load_grounding_dataset, {}),
            ("internvl_grounding.jsonl", load_grounding_dataset, {}),
            ("refcoco_val_rle.jsonl", load_eval_rows, {}),
            ("reasonseg_val.jsonl", load_eval_rows, {})]


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f[0] for f in FIXTURES])
@pytest.mark.parametrize("name", PROCESSORS)
def test_samples_are_in_the_frame_the_processor_feeds(processors, name, fixture):
    processor, resize = processors[name]
    file, load, kwargs = fixture
    frame = model_frame(processor, resize)
    for sample, truth in zip(load(PEERS / file, resize=frame, **kwargs), peer_truth(file)):
        assert fed_size(processor, sample.image) == sample.input_size
        check_frame(sample, processor)
        if sample.objects:   # round trip to original pixels (InternVL's 0-1000 and Seg-Zero's
            # int 840 frame quantise by less than 0.2 px here)
            boxes = [o["bbox_2d"] for o in sample.to_original()]
            assert np.abs(np.asarray(boxes) - np.asarray(truth["boxes"])).max() <= 0.5


def test_the_rule_is_read_where_each_configuration_keeps_it(processors):
    assert processor_rule(processors["tiny"][0]) == ResizeConfig.processor(3136, 12544, 28)
    assert processor_rule(processors["size-limits"][0]) == \
        ResizeConfig.processor(28 * 28 * 4, 28 * 28 * 64, 28)
    assert processor_rule(processors["attribute-limits"][0]) == \
        ResizeConfig.processor(400, 19600, 28)
    assert processor_rule(processors["qwen2.5-vl-checkpoint"][0]) == \
        ResizeConfig.processor(3136, 12845056, 28)
    assert model_frame(processors["tiny"][0], "840x840").pre_size == (840, 840)


def test_a_checkpoints_own_limits_set_the_frame_not_a_default(processors):
    """1400 x 1000 px exceeds the 1,003,520 px default but not the checkpoint's 12,845,056:
    the checkpoint feeds it at 1400 x 1008, and so must the data."""
    processor = processors["qwen2.5-vl-checkpoint"][0]
    image = Image.new("RGB", (1400, 1000))
    assert fed_size(processor, image) == (1400, 1008)
    assert model_frame(processor).target_size(1400, 1000) == (1400, 1008)
    assert ResizeConfig().target_size(1400, 1000) != (1400, 1008)


def test_segzero_rows_in_the_old_default_frame_are_refused(processors):
    """Issue 12: with the tiny model, Seg-Zero rows claimed 840 x 840 while the processor
    fed 112 x 112. Built with the frame's owner they are 112 x 112; built any other way the
    first sample's check names both sizes."""
    tiny = processors["tiny"][0]
    right = load_grounding_dataset(PEERS / "segzero_train.jsonl", resize=model_frame(tiny))
    assert right[0].input_size == (112, 112)
    wrong = load_grounding_dataset(PEERS / "segzero_train.jsonl", resize=ResizeConfig())
    assert wrong[0].input_size == (840, 840)
    with pytest.raises(FrameMismatch, match=r"input_size 840x840, but the processor feeds 112x112"):
        check_frame(wrong[0], tiny, where="data.source")
    with pytest.raises(FrameMismatch, match="840x840.*112x112"):
        check_fed_sizes([wrong[0]], [[(112, 112)]])
    check_fed_sizes([right[0]], [[(112, 112)], []])


class _MisreadProcessor:
    """Says min/max pixels 3136 / 12544 but feeds images at their size (rounded to 28)."""

    patch_size, merge_size, min_pixels, max_pixels = 14, 2, 3136, 12544

    def __call__(self, images, return_tensors=None):
        import torch
        w, h = images[0].size
        return {"image_grid_thw": torch.tensor([[1, round(h / 28) * 2, round(w / 28) * 2]])}


def test_a_processor_whose_configuration_is_misread_is_refused():
    with pytest.raises(FrameMismatch, match="cannot tell this processor's frame"):
        model_frame(_MisreadProcessor())


def test_resize_values():
    assert parse_resize("processor") is None and parse_resize("none") is None
    assert parse_resize("840x840") == (840, 840) and parse_resize(" 640X480 ") == (640, 480)
    for bad in ("840", "0x10", "big"):
        with pytest.raises(ValueError, match="resize: expected processor"):
            parse_resize(bad)
    with pytest.raises(ValueError, match="Qwen-VL family"):
        model_frame(object())


def test_the_engine_reports_the_size_it_fed(reference_kernels):
    from gro_fast.data import build_messages
    from gro_fast.generation import RolloutEngine
    from gro_fast.models import tiny_qwen2_5_vl
    model, processor = tiny_qwen2_5_vl(seed=0)
    sample = load_grounding_dataset(PEERS / "vlmr1_rec.jsonl", resize=model_frame(processor))[1]
    engine = RolloutEngine(model, processor)
    group = engine.generate([build_messages(sample)], num_samples=2, max_new_tokens=1, seed=0)[0]
    assert group.image_sizes == [sample.input_size] == [(84, 112)]
    rounds = engine.gro_round([build_messages(sample)], num_revisions=2, max_new_tokens=1, seed=0)
    assert rounds[0].image_sizes == [(84, 112)]
