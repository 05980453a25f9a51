"""Words of Chinese and English text for the catalogue's full-text index: the one module that
uses ``rjieba`` (jieba-rs, a maintained Chinese segmenter).

Text is NFKC-normalised and case-folded, segmented by jieba (Chinese into words, other text at
spaces and punctuation), and every segment is reduced to its runs of letters and digits: a token
never holds a quote, an operator, a bracket or a space, so that a full-text query made of tokens
is a literal search in any back end. Indexed text is segmented in search mode (a compound such
as 企业名单 gives 企业, 名单 and 企业名单), queries in the default mode, so that a query word is
found inside a longer indexed word.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import rjieba

MAX_TOKEN_CHARS: Final = 64
MAX_QUERY_TOKENS: Final = 16
_WORD: Final = re.compile(r"[^\W_]+")


def _words(segments: list[str]) -> list[str]:
    return [
        word[:MAX_TOKEN_CHARS]
        for segment in segments
        for word in _WORD.findall(unicodedata.normalize("NFKC", segment).casefold())
    ]


def index_tokens(text: str) -> list[str]:
    """The tokens under which ``text`` is found (repeats kept: they weigh in relevance)."""
    return _words(rjieba.cut_for_search(unicodedata.normalize("NFKC", text)))


def query_tokens(text: str) -> list[str]:
    """The distinct tokens of a query, in order, at most :data:`MAX_QUERY_TOKENS`."""
    words = _words(rjieba.cut(unicodedata.normalize("NFKC", text)))
    return list(dict.fromkeys(words))[:MAX_QUERY_TOKENS]
