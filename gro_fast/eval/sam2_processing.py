"""SAM2 image preprocessing without torchvision (``Sam2PilImageProcessor``).

transformers' ``Sam2ImageProcessor`` is built on its torchvision backend; where torchvision
is not installed, ``segmenters.load_sam2_processor`` hands ``Sam2Processor`` this image
processor instead, so prompts and mask post-processing still go through ``Sam2Processor``.
It does not run the model (see ``segmenters.Sam2Segmenter``).
"""
from __future__ import annotations

import json
import os

import numpy as np
from transformers.image_processing_utils import BaseImageProcessor


class Sam2PilImageProcessor(BaseImageProcessor):
    """The image side of SAM2 preprocessing without torchvision.

    Like transformers' ``Sam2ImageProcessor``: RGB, resize to ``size`` (height x width,
    no aspect-ratio padding) with bilinear filtering, rescale by ``rescale_factor``,
    normalise with ``image_mean`` / ``image_std``; returns ``pixel_values`` and
    ``original_sizes`` ((H, W) per image). ``post_process_masks`` upsamples low-resolution
    mask logits to each original size (bilinear) and thresholds them.
    """

    model_input_names = ["pixel_values"]

    def __init__(self, size=None, image_mean=(0.485, 0.456, 0.406),
                 image_std=(0.229, 0.224, 0.225), rescale_factor=1 / 255, **kwargs):
        super().__init__(**kwargs)
        self.size = dict(size or {"height": 1024, "width": 1024})
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.rescale_factor = float(rescale_factor)

    @classmethod
    def from_checkpoint(cls, checkpoint_path: str | None, model=None) -> "Sam2PilImageProcessor":
        """Settings from ``preprocessor_config.json`` when present, else the model's input size."""
        path = os.path.join(checkpoint_path, "preprocessor_config.json") if checkpoint_path else ""
        if path and os.path.exists(path):
            with open(path) as f:
                cfg = json.load(f)
            keep = ("size", "image_mean", "image_std", "rescale_factor")
            return cls(**{k: cfg[k] for k in keep if k in cfg})
        if model is None:
            return cls()
        side = int(model.config.prompt_encoder_config.image_size)
        return cls(size={"height": side, "width": side})

    def preprocess(self, images, **kwargs):
        import torch
        from PIL import Image
        from transformers.image_processing_utils import BatchFeature
        images = images if isinstance(images, (list, tuple)) else [images]
        out, sizes = [], []
        for image in images:
            image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
            image = image.convert("RGB")
            sizes.append([image.height, image.width])
            resized = image.resize((self.size["width"], self.size["height"]), Image.BILINEAR)
            arr = np.asarray(resized, dtype=np.float32) * self.rescale_factor
            arr = (arr - np.float32(self.image_mean)) / np.float32(self.image_std)
            out.append(torch.from_numpy(arr.transpose(2, 0, 1).copy()))
        return BatchFeature({"pixel_values": torch.stack(out), "original_sizes": torch.tensor(sizes)},
                            tensor_type=kwargs.get("return_tensors"))

    def post_process_masks(self, masks, original_sizes, mask_threshold=0.0, binarize=True,
                           *args, **kwargs):
        import torch
        import torch.nn.functional as F
        sizes = original_sizes.tolist() if hasattr(original_sizes, "tolist") else original_sizes
        result = []
        for i, (h, w) in enumerate(sizes):
            logits = torch.as_tensor(masks[i]).float()
            up = F.interpolate(logits, (int(h), int(w)), mode="bilinear", align_corners=False)
            result.append(up > mask_threshold if binarize else up)
        return result
