"""Segmenters: answer objects (boxes and points) -> one boolean mask per image.

The policy answers with boxes and points; segmentation benchmarks score masks. A
:class:`Segmenter` turns the objects of one answer, in the image's own pixels, into a
``np.bool_`` mask of the image's size (the OR of one mask per object).

- :class:`Sam2Segmenter`: SAM2 through transformers (``Sam2Model`` + ``Sam2Processor``)
  from a local checkpoint folder, prompted per object with its box and point (one
  positive click), single-mask output, masks OR-ed. This is the paper's protocol.
- :class:`BoxSegmenter`: each box filled. A lower bound useful without a SAM2 checkpoint;
  the report labels its numbers ``segmenter: box`` so they are never mistaken for SAM2's.

This module does not parse answers or compute IoU (see ``scoring.py``).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np


def _image_size(image) -> tuple[int, int]:
    """(width, height) of a PIL image or an [H, W(, C)] array."""
    if hasattr(image, "size") and not isinstance(image, np.ndarray):
        return tuple(image.size)
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise TypeError(f"image must be a PIL image or an [H, W(, C)] array, got shape {arr.shape}")
    return arr.shape[1], arr.shape[0]


def _check_objects(objects) -> list[dict]:
    if not isinstance(objects, (list, tuple)):
        raise TypeError(f"objects must be a list of dicts, got {type(objects).__name__}")
    for i, obj in enumerate(objects):
        box = obj.get("bbox_2d") if isinstance(obj, dict) else None
        if box is None or len(box) != 4:
            raise ValueError(f"objects[{i}] needs a 'bbox_2d' of 4 numbers, got {obj!r}")
        point = obj.get("point_2d")
        if point is not None and len(point) != 2:
            raise ValueError(f"objects[{i}]['point_2d'] must be 2 numbers, got {point!r}")
    return list(objects)


class Segmenter(ABC):
    """Answer objects in image pixels -> ``np.bool_`` mask [H, W] of the image."""

    name: str = "segmenter"
    needs_pixels: bool = True
    """False when only the image's size matters (the evaluation loop then skips re-reading it)."""

    def describe(self) -> dict:
        """What the report records about this segmenter."""
        return {"name": self.name}

    def segment(self, image, objects) -> np.ndarray:
        """The OR of the objects' masks; all False when ``objects`` is empty."""
        width, height = _image_size(image)
        objects = _check_objects(objects)
        if not objects:
            return np.zeros((height, width), dtype=np.bool_)
        mask = self._segment(image, objects, width, height)
        if mask.shape != (height, width) or mask.dtype != np.bool_:
            raise RuntimeError(f"{type(self).__name__} returned {mask.dtype} {mask.shape}, "
                               f"expected bool {(height, width)}")
        return mask

    @abstractmethod
    def _segment(self, image, objects: list[dict], width: int, height: int) -> np.ndarray:
        """Non-empty, checked ``objects`` -> bool [height, width]."""


class BoxSegmenter(Segmenter):
    """Each predicted box filled (pixel-centre rule), OR-ed. Labelled ``box`` in reports.

    Pixel (row r, column c) is inside box (x1, y1, x2, y2) when its centre (c + 0.5,
    r + 0.5) lies in [x1, x2] x [y1, y2]; boxes are clipped to the image.
    """

    name = "box"
    needs_pixels = False

    def _segment(self, image, objects, width, height):
        boxes = np.asarray([obj["bbox_2d"] for obj in objects], dtype=np.float64)  # [N, 4]
        cols = np.arange(width, dtype=np.float64) + 0.5
        rows = np.arange(height, dtype=np.float64) + 0.5
        inside_x = (cols[None, :] >= boxes[:, 0:1]) & (cols[None, :] <= boxes[:, 2:3])  # [N, W]
        inside_y = (rows[None, :] >= boxes[:, 1:2]) & (rows[None, :] <= boxes[:, 3:4])  # [N, H]
        # OR over boxes of the outer products, as one boolean matrix product.
        hits = inside_y.T.astype(np.uint16) @ inside_x.astype(np.uint16)
        return hits > 0


class Sam2Segmenter(Segmenter):
    """SAM2 (transformers ``Sam2Model``) prompted per object with its box and point.

    ``checkpoint_path``: a local folder saved by ``Sam2Model.save_pretrained`` (config.json
    and weights) with, ideally, the processor's ``preprocessor_config.json``. Nothing is
    downloaded. transformers' ``Sam2ImageProcessor`` needs torchvision; without it the
    image side of ``Sam2Processor`` is ``sam2_processing.Sam2PilImageProcessor`` (same resize,
    rescale and normalisation, done with PIL), while prompts and mask post-processing
    still go through ``Sam2Processor``. Objects without a point are prompted by the box
    alone (a padding point, or no points when no object has one). Each object yields SAM2's single best mask
    (``multimask_output=False``), upsampled to the image size and thresholded at
    ``mask_threshold`` (logit 0); the object masks are OR-ed.
    """

    name = "sam2"

    def __init__(self, checkpoint_path: str | None = None, *, model=None, processor=None,
                 device=None, dtype=None, mask_threshold: float = 0.0):
        import torch
        if model is None:
            if not checkpoint_path or not os.path.isdir(checkpoint_path):
                raise ValueError(f"sam2 checkpoint_path must be a local folder, got {checkpoint_path!r}")
            from transformers import Sam2Model
            model = Sam2Model.from_pretrained(checkpoint_path, local_files_only=True)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(device=self.device, dtype=dtype or next(model.parameters()).dtype).eval()
        self.processor = processor if processor is not None else load_sam2_processor(checkpoint_path, model)
        self.checkpoint_path = checkpoint_path
        self.mask_threshold = float(mask_threshold)

    def describe(self) -> dict:
        return {"name": self.name, "checkpoint": self.checkpoint_path,
                "image_processor": type(self.processor.image_processor).__name__,
                "mask_threshold": self.mask_threshold, "multimask_output": False}

    def _prompts(self, objects):
        """Processor prompts: ``{"input_boxes": [[box, ...]], "input_points": [[[point], ...]],
        "input_labels": [[[1], ...]]}``; no points at all when no object has one."""
        prompts = {"input_boxes": [[[float(v) for v in obj["bbox_2d"]] for obj in objects]]}
        if all(obj.get("point_2d") is None for obj in objects):
            return prompts
        points, labels = [], []
        for obj in objects:
            point = obj.get("point_2d")
            if point is None:  # a padding point: SAM2 ignores label -10
                pad = float(self.processor.point_pad_value)
                points.append([[pad, pad]])
                labels.append([int(self.processor.point_pad_value)])
            else:
                points.append([[float(point[0]), float(point[1])]])
                labels.append([1])
        return {**prompts, "input_points": [points], "input_labels": [labels]}

    def _segment(self, image, objects, width, height):
        import torch
        inputs = self.processor(images=image, **self._prompts(objects), return_tensors="pt")
        dtype = next(self.model.parameters()).dtype
        model_inputs = {k: inputs[k].to(self.device, dtype if inputs[k].is_floating_point() else None)
                        for k in ("pixel_values", "input_boxes", "input_points", "input_labels")
                        if k in inputs}
        with torch.inference_mode():
            out = self.model(**model_inputs, multimask_output=False)
        masks = self.processor.post_process_masks(out.pred_masks.float().cpu(), inputs["original_sizes"],
                                                  mask_threshold=self.mask_threshold)[0]
        return masks.reshape(-1, height, width).any(dim=0).numpy()  # [N, 1, H, W] -> OR


def load_sam2_processor(checkpoint_path: str | None, model=None):
    """``Sam2Processor`` for a checkpoint: transformers' own when it can be built (it
    needs torchvision), otherwise one over :class:`Sam2PilImageProcessor`."""
    from transformers import Sam2Processor
    from transformers.utils import is_torchvision_available
    has_config = checkpoint_path and os.path.exists(os.path.join(checkpoint_path, "preprocessor_config.json"))
    if has_config and is_torchvision_available():  # Sam2ImageProcessor needs torchvision
        return Sam2Processor.from_pretrained(checkpoint_path, local_files_only=True)
    from .sam2_processing import Sam2PilImageProcessor
    image_processor = Sam2PilImageProcessor.from_checkpoint(checkpoint_path, model)
    return Sam2Processor(image_processor=image_processor)
