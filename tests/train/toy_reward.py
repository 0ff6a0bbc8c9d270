"""A reward any random policy's samples differ on (used as ``algorithm.reward`` by tests):
the share of characters of the response that are digits, spaces or brackets."""


def shape_reward(response, ground_truth=None, **_):
    text = response if isinstance(response, str) else str(response)
    if not text:
        return 0.0
    return sum(c.isdigit() or c in " []{}," for c in text) / len(text)
