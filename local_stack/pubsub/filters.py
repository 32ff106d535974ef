"""Subscription filters: the attribute subset of Pub/Sub's filter language.

Source: https://cloud.google.com/pubsub/docs/subscription-message-filter —
`attributes.KEY = "v"`, `attributes.KEY != "v"`, `attributes:KEY` (the key exists),
`hasPrefix(attributes.KEY, "p")`, `NOT` (or `-`), `AND`, `OR` and parentheses. The operators
are upper case; AND and OR may be combined only with parentheses; a filter is at most 256
bytes. `!=` matches a message without the attribute, as `NOT attributes.KEY = "v"` does.
A message that a subscription's filter rejects is acknowledged for it at once: it is never
delivered there. A filter that does not parse is INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from local_stack.pubsub.errors import invalid

MAX_FILTER_BYTES = 256
Predicate = Callable[[Mapping[str, str]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>!=|=|:|\(|\)|,|-)
      | (?P<word>[A-Za-z_][\w.-]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            raise invalid(f"Invalid filter: unexpected {text[position:].strip()[:20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.position = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("", "")

    def take(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self.peek()
        if got_kind != kind or (value is not None and got != value):
            expected = value or kind
            raise invalid(f"Invalid filter: expected {expected}, found {got or 'the end'!r}")
        self.position += 1
        return got

    def expression(self) -> Predicate:
        """terms joined by one kind of operator: `a AND b AND c` or `a OR b`."""
        terms = [self.unary()]
        joiner = ""
        while self.peek() in (("word", "AND"), ("word", "OR")):
            word = self.take("word")
            if joiner and word != joiner:
                raise invalid("Invalid filter: combine AND and OR only with parentheses")
            joiner = word
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        if joiner == "AND":
            return lambda attributes: all(term(attributes) for term in terms)
        return lambda attributes: any(term(attributes) for term in terms)

    def unary(self) -> Predicate:
        if self.peek() in (("word", "NOT"), ("op", "-")):
            self.position += 1
            inner = self.unary()
            return lambda attributes: not inner(attributes)
        if self.peek() == ("op", "("):
            self.take("op", "(")
            inner = self.expression()
            self.take("op", ")")
            return inner
        if self.peek() == ("word", "hasPrefix"):
            self.take("word")
            self.take("op", "(")
            key = self.attribute()
            self.take("op", ",")
            prefix = _unquote(self.take("string"))
            self.take("op", ")")
            return lambda attributes: (
                attributes.get(key, None) is not None and attributes[key].startswith(prefix)
            )
        return self.comparison()

    def attribute(self) -> str:
        word = self.take("word")
        if not word.startswith("attributes.") or word == "attributes.":
            raise invalid(f"Invalid filter: {word!r} is not attributes.KEY")
        return word.removeprefix("attributes.")

    def comparison(self) -> Predicate:
        kind, word = self.peek()
        if (
            kind == "word"
            and word == "attributes"
            and self.tokens[self.position + 1 :][:1] == [("op", ":")]
        ):
            self.position += 2
            key = self.take("word")
            return lambda attributes: key in attributes
        key = self.attribute()
        _, op = self.peek()
        if op not in ("=", "!="):
            raise invalid(f"Invalid filter: expected = or != after attributes.{key}")
        self.position += 1
        value = _unquote(self.take("string"))
        if op == "=":
            return lambda attributes: attributes.get(key) == value
        return lambda attributes: attributes.get(key) != value


def compile_filter(text: str) -> Predicate | None:
    """The filter as a predicate over a message's attributes; None for no filter."""
    if not text.strip():
        return None
    if len(text.encode()) > MAX_FILTER_BYTES:
        raise invalid(f"Invalid filter: longer than {MAX_FILTER_BYTES} bytes")
    parser = _Parser(text)
    predicate = parser.expression()
    if parser.position != len(parser.tokens):
        raise invalid(f"Invalid filter: unexpected {parser.peek()[1]!r}")
    return predicate
