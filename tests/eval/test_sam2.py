"""Sam2Segmenter with a tiny random ``Sam2Model`` built from a config (nothing downloaded)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gro_fast.eval.sam2_processing import Sam2PilImageProcessor
from gro_fast.eval.segmenters import Sam2Segmenter

SIDE = 64  # the tiny model's input side


def tiny_sam2_config():
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig
    backbone = Sam2HieraDetConfig(
        hidden_size=8, num_attention_heads=1, image_size=[SIDE, SIDE], blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8],
                              backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=16)
    return Sam2Config(vision_config=vision,
                      prompt_encoder_config=dict(hidden_size=16, image_size=SIDE, patch_size=16,
                                                 mask_input_channels=4),
                      mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_attention_heads=2,
                                               iou_head_hidden_dim=16))


@pytest.fixture(scope="module")
def sam2_dir(tmp_path_factory):
    from transformers import Sam2Model
    torch.manual_seed(0)
    model = Sam2Model(tiny_sam2_config()).eval()
    # Random weights give near-constant logits; spread them so masks depend on the prompt.
    with torch.no_grad():
        for p in model.mask_decoder.parameters():
            p.mul_(8.0)
    folder = tmp_path_factory.mktemp("sam2")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def segmenter(sam2_dir):
    return Sam2Segmenter(str(sam2_dir), device="cpu")


def _image(w=48, h=40):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


OBJ_A = {"bbox_2d": [2, 3, 20, 25], "point_2d": [10, 12]}
OBJ_B = {"bbox_2d": [25, 10, 46, 38], "point_2d": [35, 20]}


def test_masks_at_image_size_and_ored_per_object(segmenter):
    seg = segmenter
    image = _image()
    a, b = seg.segment(image, [OBJ_A]), seg.segment(image, [OBJ_B])
    both = seg.segment(image, [OBJ_A, OBJ_B])
    assert both.dtype == np.bool_ and both.shape == (40, 48)
    np.testing.assert_array_equal(both, a | b)
    assert not np.array_equal(a, b), "masks should depend on the prompt"
    assert not seg.segment(image, []).any()
    assert seg.describe()["name"] == "sam2"


def _direct(seg, image, box, point=None):
    """SAM2 called by hand: the box (and point) scaled to the model's 64 x 64 input."""
    sx, sy = SIDE / image.width, SIDE / image.height
    pixel_values = Sam2PilImageProcessor(size={"height": SIDE, "width": SIDE})(image)["pixel_values"]
    x1, y1, x2, y2 = box
    prompts = {"input_boxes": torch.tensor([[[x1 * sx, y1 * sy, x2 * sx, y2 * sy]]])}
    if point is not None:
        prompts.update(input_points=torch.tensor([[[[point[0] * sx, point[1] * sy]]]]),
                       input_labels=torch.tensor([[[1]]]))
    with torch.no_grad():
        out = seg.model(pixel_values=pixel_values, multimask_output=False, **prompts)
    logits = torch.nn.functional.interpolate(out.pred_masks[0].float(), (image.height, image.width),
                                             mode="bilinear", align_corners=False)
    return (logits > 0).any(0).any(0).numpy()


def test_prompt_matches_the_model_called_directly(segmenter):
    """The segmenter's prompts are the object's box and point scaled to the model's input."""
    image = _image()
    expected = _direct(segmenter, image, OBJ_A["bbox_2d"], OBJ_A["point_2d"])
    np.testing.assert_array_equal(segmenter.segment(image, [OBJ_A]), expected)


def test_box_only_prompt_and_preprocessor_config(segmenter, sam2_dir):
    image = _image()
    box_only = {"bbox_2d": OBJ_A["bbox_2d"]}
    np.testing.assert_array_equal(segmenter.segment(image, [box_only]),
                                  _direct(segmenter, image, OBJ_A["bbox_2d"]))
    # mixed: the object without a point gets a padding point that SAM2 ignores
    assert segmenter.segment(image, [box_only, OBJ_B]).shape == (40, 48)
    # A checkpoint with preprocessor_config.json: its settings are used (here: the mean).
    (sam2_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Sam2ImageProcessor", "size": {"height": SIDE, "width": SIDE},
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    try:
        seg2 = Sam2Segmenter(str(sam2_dir), device="cpu")
        assert seg2.processor.target_size == SIDE
        if isinstance(seg2.processor.image_processor, Sam2PilImageProcessor):
            assert seg2.processor.image_processor.image_mean == [0.5, 0.5, 0.5]
    finally:
        (sam2_dir / "preprocessor_config.json").unlink()


def test_bad_checkpoint_and_objects(segmenter, tmp_path):
    with pytest.raises(ValueError, match="local folder"):
        Sam2Segmenter(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="point_2d"):
        segmenter.segment(_image(), [{"bbox_2d": [0, 0, 4, 4], "point_2d": [1]}])
