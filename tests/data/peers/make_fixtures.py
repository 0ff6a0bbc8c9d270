"""Writes the fixtures of this folder: rows in the peers' own formats, small generated images.

    python tests/data/peers/make_fixtures.py      (needs pycocotools and datasets)

Every file is written the way the peer's public data-preparation or evaluation script
reads or writes it (named per file below and in README.md; no code of theirs is copied).
The scenes are coloured rectangles on grey, so the ground truth is known exactly:
``truth.json`` gives, per file and row, the target boxes in ORIGINAL-image pixels
``[x1, y1, x2, y2]`` and, for masks, the target's pixel count. Output is deterministic.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SEGZERO_SIDE = 840  # Seg-Zero / VisionReasoner store training images pre-resized to 840 x 840

# Scenes in original pixels: (width, height), then objects (name, colour, [x1, y1, x2, y2]).
SCENES = {
    "scene_a": ((320, 240), [("red box", (220, 40, 40), [40, 30, 120, 110]),
                             ("blue box", (40, 60, 220), [180, 120, 290, 220])]),
    "scene_b": ((240, 320), [("green box", (40, 200, 60), [30, 40, 150, 140]),
                             ("red box", (220, 40, 40), [100, 200, 210, 300])]),
    "scene_c": ((64, 48), [("yellow box", (230, 210, 40), [8, 6, 40, 30])]),
    "scene_d": ((64, 48), [("red box", (220, 40, 40), [30, 20, 60, 44]),
                           ("red box", (220, 40, 40), [4, 4, 20, 18])]),
}


def scene_image(name: str) -> Image.Image:
    (w, h), objects = SCENES[name]
    array = np.full((h, w, 3), 128, np.uint8)
    for _, colour, (x1, y1, x2, y2) in objects:
        array[y1:y2, x1:x2] = colour
    return Image.fromarray(array)


def scene_mask(name: str, k: int) -> np.ndarray:
    (w, h), objects = SCENES[name]
    x1, y1, x2, y2 = objects[k][2]
    mask = np.zeros((h, w), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def images(out: Path) -> None:
    folder = out / "images"
    folder.mkdir()
    for name in SCENES:
        # COCO-style originals (VLM-R1, InternVL and the evaluation rows point at these).
        scene_image(name).save(folder / f"{name}.png")
    for name in ("scene_a", "scene_b"):
        # Seg-Zero's stored copies: the whole image resized to 840 x 840.
        scene_image(name).resize((SEGZERO_SIDE, SEGZERO_SIDE), Image.Resampling.BILINEAR) \
            .save(folder / f"{name}_840.png")


def _to_840(box, size):
    # Seg-Zero scales original boxes into the 840 frame and rounds to int pixels.
    sx, sy = SEGZERO_SIDE / size[0], SEGZERO_SIDE / size[1]
    return [int(box[0] * sx + 0.5), int(box[1] * sy + 0.5), int(box[2] * sx + 0.5),
            int(box[3] * sy + 0.5)]


def segzero_rows(truth: dict) -> list[dict]:
    """Seg-Zero / VisionReasoner training rows ``{id, problem, solution, image, img_height,
    img_width}``: the columns of Seg-Zero's RefCOCOg-9K / VisionReasoner-7K data
    (fetched by Seg-Zero's training_scripts/download_dataset.py, read by its veRL data
    loader); ``solution`` a JSON string of bbox_2d / point_2d in the 840 x 840 frame."""
    rows = []
    for k, (name, target) in enumerate([("scene_a", 0), ("scene_b", 1), ("scene_a", 1)]):
        size, objects = SCENES[name]
        box = objects[target][2]
        b840 = _to_840(box, size)
        solution = [{"bbox_2d": b840, "point_2d": [(b840[0] + b840[2]) // 2,
                                                    (b840[1] + b840[3]) // 2]}]
        rows.append({"id": f"segzero_{k}", "problem": f"the {objects[target][0]}",
                     "solution": json.dumps(solution), "image": f"images/{name}_840.png",
                     "img_height": size[1], "img_width": size[0]})
        truth.setdefault("segzero_train.jsonl", []).append({"boxes": [box]})
    return rows


def _loaded(path: Path) -> Image.Image:
    """A decoded copy, so the folder embeds the image bytes (as the Hub datasets do)."""
    with Image.open(path) as image:
        return image.copy()


def datasets_folders(out: Path, segzero: list[dict]) -> None:
    """The same rows as Seg-Zero ships them (save_to_disk, image column a datasets Image),
    with a train and a test split; and VisionReasoner's ReasonSeg evaluation rows as a
    folder with val / test splits (its evaluation_segmentation.py loads split="test")."""
    import datasets
    seg_features = datasets.Features({
        "id": datasets.Value("string"), "problem": datasets.Value("string"),
        "solution": datasets.Value("string"), "image": datasets.Image(),
        "img_height": datasets.Value("int64"), "img_width": datasets.Value("int64")})
    rows = [dict(r, image=_loaded(out / r["image"])) for r in segzero]
    train = datasets.Dataset.from_list(rows[:2], features=seg_features)
    test = datasets.Dataset.from_list(rows[2:], features=seg_features)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(out / "segzero_hf"))
    eval_features = datasets.Features({
        "image": datasets.Image(), "text": datasets.Value("string"),
        "mask": datasets.Sequence(datasets.Sequence(datasets.Value("bool"))),
        "image_id": datasets.Value("string"), "ann_id": datasets.Value("string"),
        "img_height": datasets.Value("int64"), "img_width": datasets.Value("int64")})
    dense = [dict(r, image=_loaded(out / r["image"])) for r in reasonseg_rows({})]
    split = {"val": dense[:1], "test": dense[1:]}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v, features=eval_features)
                          for k, v in split.items()}).save_to_disk(str(out / "reasonseg_hf"))
    for folder in ("segzero_hf", "reasonseg_hf"):
        for cache in (out / folder).rglob("cache-*.arrow"):
            cache.unlink()


def vlmr1_rows(truth: dict, answer_tags: bool) -> list[dict]:
    """VLM-R1 REC JSONL as its grpo_jsonl.py reads it: ``conversations`` whose human turn
    holds ``<image>`` and the question, the gpt turn the box in original pixels, with or
    without ``<answer>`` tags (grpo_jsonl.py strips them); ``image`` a path or a list."""
    key = "vlmr1_rec_answer_tags.jsonl" if answer_tags else "vlmr1_rec.jsonl"
    rows = []
    for k, (name, target) in enumerate([("scene_a", 0), ("scene_b", 0)]):
        _, objects = SCENES[name]
        box = objects[target][2]
        answer = json.dumps(box)
        rows.append({"id": k, "image": [f"images/{name}.png"] if k else f"images/{name}.png",
                     "conversations": [
                         {"from": "human", "value": "<image>Please provide the bounding box "
                          f"coordinate of the region this sentence describes: the {objects[target][0]}."},
                         {"from": "gpt", "value": f"<answer>{answer}</answer>" if answer_tags
                          else answer}]})
        truth.setdefault(key, []).append({"boxes": [box]})
    return rows


def rec_json_rows(truth: dict) -> list[dict]:
    """VLM-R1's rec_jsons_processed/*.json (a JSON list), as its src/eval/test_rec_r1.py
    reads it: ``{image, problem, solution: [x1, y1, x2, y2], normal_caption}``, the box in
    original pixels, ``image`` relative to the COCO image folder."""
    rows = []
    for name, target in (("scene_a", 1), ("scene_b", 1)):
        _, objects = SCENES[name]
        box = objects[target][2]
        caption = f"the {objects[target][0]}"
        rows.append({"image": f"{name}.png", "problem": caption, "solution": box,
                     "normal_caption": caption})
        truth.setdefault("rec_jsons_processed/refcocog_val.json", []).append({"boxes": [box]})
    return rows


def internvl_rows(truth: dict) -> list[dict]:
    """InternVL grounding rows (its fine-tuning data format for grounding): width / height,
    the query inside ``<ref>``, the answer ``<ref>...</ref><box>[[x1, y1, x2, y2]]</box>``
    with coordinates normalised to 0-1000 of the image's width and height."""
    rows = []
    for k, (name, target) in enumerate([("scene_a", 0), ("scene_b", 1)]):
        (w, h), objects = SCENES[name]
        box = objects[target][2]
        norm = [round(box[0] / w * 1000), round(box[1] / h * 1000),
                round(box[2] / w * 1000), round(box[3] / h * 1000)]
        ref = f"<ref>the {objects[target][0]}</ref>"
        rows.append({"id": k, "image": f"images/{name}.png", "width": w, "height": h,
                     "conversations": [
                         {"from": "human", "value": "<image>\nPlease provide the bounding box "
                          f"coordinate of the region this sentence describes: {ref}"},
                         {"from": "gpt", "value": f"{ref}<box>[{json.dumps(norm)}]</box>"}]})
        truth.setdefault("internvl_grounding.jsonl", []).append({"boxes": [box]})
    return rows


def reasonseg_rows(truth: dict) -> list[dict]:
    """VisionReasoner / Seg-Zero evaluation rows for ReasonSeg, as their
    evaluation_segmentation.py reads them: image, text, a DENSE mask (``np.array(
    item["mask"])``), image_id, ann_id, img_height, img_width."""
    rows = []
    for k, (name, target) in enumerate([("scene_c", 0), ("scene_d", 0)]):
        (w, h), objects = SCENES[name]
        mask = scene_mask(name, target)
        rows.append({"image": f"images/{name}.png",
                     "text": f"What is the {objects[target][0]} on the right?",
                     "mask": mask.astype(bool).tolist(), "image_id": name, "ann_id": str(k),
                     "img_height": h, "img_width": w})
        truth.setdefault("reasonseg_val.jsonl", []).append(
            {"boxes": [objects[target][2]], "mask_area": int(mask.sum())})
    return rows


def refcoco_rows(truth: dict, form: str) -> list[dict]:
    """RefCOCO segmentation rows with COCO masks (refer's instances.json keeps polygons,
    pycocotools' frPyObjects / encode give uncompressed and compressed RLE) and the box as
    VisionReasoner's evaluation compares it (``bbox`` [x1, y1, x2, y2]); ``coco_xywh``
    rows keep COCO's own [x, y, w, h] box (read with --bbox-format xywh)."""
    from pycocotools import mask as mask_utils
    key = f"refcoco_val_{form}.jsonl"
    rows = []
    for k, (name, target) in enumerate([("scene_a", 0), ("scene_b", 1)]):
        (w, h), objects = SCENES[name]
        x1, y1, x2, y2 = box = objects[target][2]
        mask = scene_mask(name, target)
        if form.startswith("polygon"):
            m = [[x1, y1, x2, y1, x2, y2, x1, y2]]
        elif form == "rle":
            m = mask_utils.encode(np.asfortranarray(mask))
            m = {"size": m["size"], "counts": m["counts"].decode("ascii")}
        else:
            m = {"size": [h, w], "counts": uncompressed_rle(mask)}
        row = {"image": f"images/{name}.png", "text": f"the {objects[target][0]}",
               "mask": m, "image_id": name, "ann_id": str(k), "img_height": h, "img_width": w}
        row["bbox"] = [x1, y1, x2 - x1, y2 - y1] if form == "polygon_xywh" else box
        rows.append(row)
        truth.setdefault(key, []).append({"boxes": [box], "mask_area": int(mask.sum())})
    return rows


def uncompressed_rle(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, zeros first."""
    counts, current, run = [], 0, 0
    for value in mask.flatten(order="F").tolist():
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    return counts + [run]


def count_rows(truth: dict) -> list[dict]:
    """VisionReasoner counting evaluation rows (PixMo-Count / CountBench), as its
    evaluation_count.py reads them: image, text, count, image_id, ann_id, img_height,
    img_width."""
    rows = []
    for k, name in enumerate(("scene_a", "scene_d")):
        (w, h), objects = SCENES[name]
        count = sum(o[0] == "red box" for o in objects)
        rows.append({"image": f"images/{name}.png", "text": "How many red boxes are there?",
                     "count": count, "image_id": name, "ann_id": str(k), "img_height": h,
                     "img_width": w})
        truth.setdefault("count_val.jsonl", []).append({"count": count})
    return rows


def main(out: Path = HERE) -> None:
    for child in ("images", "segzero_hf", "reasonseg_hf", "rec_jsons_processed"):
        shutil.rmtree(out / child, ignore_errors=True)
    images(out)
    truth: dict = {}
    segzero = segzero_rows(truth)
    write_jsonl(out / "segzero_train.jsonl", segzero)
    write_jsonl(out / "vlmr1_rec.jsonl", vlmr1_rows(truth, answer_tags=False))
    write_jsonl(out / "vlmr1_rec_answer_tags.jsonl", vlmr1_rows(truth, answer_tags=True))
    (out / "rec_jsons_processed").mkdir()
    (out / "rec_jsons_processed" / "refcocog_val.json").write_text(
        json.dumps(rec_json_rows(truth), indent=1))
    write_jsonl(out / "internvl_grounding.jsonl", internvl_rows(truth))
    write_jsonl(out / "reasonseg_val.jsonl", reasonseg_rows(truth))
    for form in ("polygon", "polygon_xywh", "rle", "rle_uncompressed"):
        write_jsonl(out / f"refcoco_val_{form}.jsonl", refcoco_rows(truth, form))
    write_jsonl(out / "count_val.jsonl", count_rows(truth))
    datasets_folders(out, segzero)
    lines = [f" {json.dumps(key)}: {json.dumps(truth[key])}" for key in sorted(truth)]
    (out / "truth.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
