"""An offline byte-level BPE tokenizer with Qwen's special tokens and chat template.

It exists so that tests, CI and the default run need no download. The vocabulary is built
in code, deterministically:

- the 256 byte-level symbols, so ANY text round-trips (byte fallback);
- merges that make common words of referring expressions single tokens (colours, shapes,
  sizes, spatial relations, function words), with and without a leading space;
- a few merges for JSON punctuation runs (``":``, ``],``, ``}]`` ...);
- added (non-special) tokens for the GRO answer format: ``<think>``, ``</think>``,
  ``<answer>``, ``</answer>``, ``"bbox_2d"``, ``"point_2d"``;
- Qwen's special tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``,
  ``<|vision_start|>``, ``<|image_pad|>`` ...), last, in Qwen's order.

Pre-tokenization is Qwen2's (regex split + byte-level), so digits are single tokens as in
the real model. It does not try to match Qwen's real token ids or merges.
"""
from __future__ import annotations

from functools import lru_cache

from tokenizers import pre_tokenizers

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
GRO_FORMAT_TOKENS = ("<think>", "</think>", "<answer>", "</answer>", '"bbox_2d"', '"point_2d"')

_WORDS = """
the a an of in on at to and or with without is are it its this that which who what where
there one two three four five six seven eight nine ten many some all each every any no not
left right top bottom above below under over behind front near far next beside between
middle center centre corner side first second third last other upper lower inside outside
red green blue yellow orange purple pink brown black white grey gray dark light
big small large little tall short long wide narrow round square
circle square triangle rectangle ellipse star shape shapes object objects box boxes point
man woman person people boy girl child kid player dog cat horse car bus truck bike bicycle
chair table bed sofa couch cup bottle plate bowl tree sign window door building shirt hat
holding wearing sitting standing looking walking closest farthest largest smallest
find locate output answer think image picture query revision previous check keep discard
match matches same format reasoning please
""".split()
_PUNCTUATION_RUNS = (
    '":', '",', "],", "}]", "]}", "},", "[{", '{"', "[[", "]]", " [", " [{", ' "', " {", "</", ".\n", ":\n", "\n\n",
)


def _byte_level(text: str) -> str:
    """``text`` in the byte-level alphabet (space -> 'Ġ', newline -> 'Ċ', ...)."""
    pieces = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(text)
    return "".join(piece for piece, _ in pieces)


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte alphabet plus, per listed target, merges joining its current pieces left to right.

    Merges are appended with the lowest priority, so a new merge never changes how an
    earlier target is tokenized (each earlier target is already one token before any
    lower-priority merge can apply).
    """
    from tokenizers import Tokenizer, models

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    words = list(dict.fromkeys(_WORDS))
    targets = [w for word in words for w in (word, " " + word, word.capitalize())]
    for target in dict.fromkeys(targets + list(_PUNCTUATION_RUNS)):
        symbols = _byte_level(target)
        bpe = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges)))
        pieces = bpe.encode(symbols).tokens if len(symbols) > 1 else [symbols]
        prefix = pieces[0]
        for piece in pieces[1:]:
            merged = prefix + piece
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append((prefix, piece))
            prefix = merged
    return vocab, merges


def tiny_tokenizer():
    """A ``Qwen2Tokenizer`` built offline (see the module docstring)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merges = _vocab_and_merges()
    vocab, merges = dict(vocab), list(merges)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None,
        eos_token="<|im_end|>", pad_token="<|endoftext|>",
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in GRO_FORMAT_TOKENS])
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [t for t in QWEN_SPECIAL_TOKENS if t not in tokenizer.get_vocab()]}
    )
    return tokenizer


# Qwen2-VL / Qwen2.5-VL conversation format: a default system turn, images and videos as
# <|vision_start|><|image_pad|><|vision_end|> (the processor expands <|image_pad|> to one
# token per merged patch), each turn closed by <|im_end|> and a newline.
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)
