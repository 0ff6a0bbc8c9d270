"""Data for GRO: grounding samples, readers for users' formats, the synthetic task, prompts.

* ``GroundingSample`` / ``DataError``: the sample every source yields, and the error a bad
  record raises (naming file, line or index, and field);
* ``load_grounding_dataset`` (Seg-Zero / VisionReasoner rows, VLM-R1 REC JSONL and JSON,
  InternVL grounding rows, counting) and
  ``load_eval_rows`` (evaluation rows with masks / counts / boxes);
* ``model_frame`` / ``check_frame`` / ``fed_size``: the model-input frame a processor feeds
  (the one owner of that size), and the guard that a sample is in it;
* ``ResizeConfig`` / ``smart_resize``: the model-input size rule;
* ``SyntheticGroundingTask`` / ``synthetic_answer``: the built-in task and its ideal answer;
* ``build_messages``: the prompt of a sample as chat messages;
* ``GroundingSampler`` / ``collate``: resumable, seeded batching.

Rewards, rollouts and metrics are not here.
"""
from .dataset import ConcatGroundingDataset, GroundingDataset, concat_datasets
from .eval_rows import load_eval_rows
from .frame import FrameMismatch, check_frame, fed_size, model_frame
from .prompts import (DEFAULT_TEMPLATE, build_messages, format_prompt, load_template,
                      normalize_query, save_template)
from .readers import FORMATS, load_grounding_dataset
from .resize import ResizeConfig, smart_resize
from .sample import DataError, GroundingSample
from .sampler import GroundingSampler, collate
from .synthetic import SyntheticGroundingTask, synthetic_answer

__all__ = [
    "GroundingSample", "DataError", "GroundingDataset", "ConcatGroundingDataset",
    "concat_datasets", "load_grounding_dataset", "model_frame", "check_frame", "fed_size",
    "FrameMismatch",
    "load_eval_rows", "FORMATS", "ResizeConfig", "smart_resize", "SyntheticGroundingTask",
    "synthetic_answer", "build_messages", "format_prompt", "DEFAULT_TEMPLATE", "load_template",
    "normalize_query",
    "save_template",
    "GroundingSampler", "collate",
]
