"""Response parsing and verifiable grounding rewards.

``parse_response`` reads ``<think>...</think><answer>[{"bbox_2d", "point_2d"}, ...]</answer>``
without ever raising; ``vision_reasoner`` holds VisionReasoner's rewards (GRO's R_format and
R_acc), ``task`` the REC / counting / mask rewards, ``registry`` the lookup by name,
``coords`` the coordinate conventions, ``matching`` the batched pair geometry and Hungarian
matching. GRO's consolidation and advantages live in ``gro_fast.algo``.
"""
from .coords import from_normalized, to_model_pixels, to_normalized, to_original_pixels
from .parsing import (MAX_OBJECTS, ParsedObject, ParsedResponse, parse_objects, parse_response,
                      think_answer_format_ok)
from .registry import (RewardError, available_rewards, get_reward, register_reward,
                       reward_matrix, reward_value)
from .task import (count_reward, graded_count_reward, mask_iou_reward, rec_accuracy_reward,
                   rec_iou_reward)
from .vision_reasoner import (accuracy_reward, accuracy_rewards, format_reward,
                              non_repeat_reward, object_format_reward, vision_reasoner_reward)

__all__ = [
    "MAX_OBJECTS", "ParsedObject", "ParsedResponse", "accuracy_reward", "accuracy_rewards",
    "available_rewards", "count_reward", "format_reward", "from_normalized", "get_reward",
    "graded_count_reward", "mask_iou_reward", "non_repeat_reward", "object_format_reward",
    "parse_objects", "parse_response", "rec_accuracy_reward", "rec_iou_reward",
    "RewardError", "register_reward", "reward_matrix", "reward_value", "think_answer_format_ok", "to_model_pixels", "to_normalized",
    "to_original_pixels", "vision_reasoner_reward",
]
