"""The subset of Google's filter languages our monitoring definitions use, evaluated locally.

Two grammars share it: Cloud Monitoring filters (`metric.type="…" AND resource.labels.x=
starts_with("…")`, https://cloud.google.com/monitoring/api/v3/filters) and the Logging query
language (`resource.type="cloud_run_revision" AND jsonPayload.event="…"`,
https://cloud.google.com/logging/docs/view/logging-query-language). Supported, as those pages
define them: comparisons `=`, `!=`, `:` (has / substring), `=~`, `!~` (RE2 regex, here
Python's `re`), `<`, `<=`, `>`, `>=`; `AND`, `OR`, `NOT` and `-` (logging: a bare sequence of
terms is AND; OR binds tighter than AND in the logging language but not in monitoring, so
mixing them without parentheses is refused); parentheses; the monitoring functions
`starts_with`, `ends_with`, `has_substring`, `one_of`. Anything else raises FilterError
rather than being silently misread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Lookup = Callable[[str], Any]


class FilterError(ValueError):
    """The filter uses syntax this subset does not implement."""


_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>=~|!~|!=|<=|>=|=|:|<|>|\(|\)|,)'
    r"|(?P<word>[A-Za-z_][\w.\-/]*|-?\d+(?:\.\d+)?)|(?P<minus>-))"
)
FUNCTIONS = {
    "starts_with": lambda value, *args: str(value).startswith(args[0]),
    "ends_with": lambda value, *args: str(value).endswith(args[0]),
    "has_substring": lambda value, *args: args[0] in str(value),
    "one_of": lambda value, *args: str(value) in args,
}


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"cannot read the filter at {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = match.end()
    return tokens


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    at: int = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.at += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise FilterError(f"expected {value!r} in the filter")

    def expression(self) -> Callable[[Lookup], bool]:
        terms = [self.unary()]
        joiners: set[str] = set()
        while self.peek()[0] != "end" and self.peek()[1] != ")":
            if self.peek() in (("word", "AND"), ("word", "OR")):
                joiners.add(self.take()[1])
            else:
                joiners.add("AND")  # logging: juxtaposition is AND
            terms.append(self.unary())
        if len(joiners) > 1:
            raise FilterError("mixing AND and OR needs parentheses")
        if joiners == {"OR"}:
            return lambda lookup: any(term(lookup) for term in terms)
        return lambda lookup: all(term(lookup) for term in terms)

    def unary(self) -> Callable[[Lookup], bool]:
        if self.peek() in (("word", "NOT"), ("minus", "-")):
            self.take()
            inner = self.unary()
            return lambda lookup: not inner(lookup)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.expression()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[Lookup], bool]:
        kind, path = self.take()
        if kind != "word":
            raise FilterError(f"expected a field name, got {path!r}")
        kind, op = self.take()
        if kind != "op" or op in "(),":
            raise FilterError(f"expected a comparison after {path}")
        kind, value = self.take()
        if kind == "word" and self.peek() == ("op", "("):
            if value not in FUNCTIONS:
                raise FilterError(f"unsupported function {value}()")
            function, args = FUNCTIONS[value], self.arguments()
            if op != "=":
                raise FilterError(f"{value}() needs '='")
            return lambda lookup: (v := lookup(path)) is not None and function(v, *args)
        return _compare(path, op, value)

    def arguments(self) -> list[str]:
        self.expect("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.take()[1])
            if self.peek() == ("op", ","):
                self.take()
        self.expect(")")
        return args


def _compare(path: str, op: str, expected: str) -> Callable[[Lookup], bool]:
    def test(lookup: Lookup) -> bool:
        value = lookup(path)
        if value is None:
            return op in ("!=", "!~")  # an absent field differs from every value
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if op == "=":
            return text == expected
        if op == "!=":
            return text != expected
        if op == ":":
            return expected.lower() in text.lower()
        if op in ("=~", "!~"):
            return bool(re.search(expected, text)) == (op == "=~")
        try:
            left, right = float(value), float(expected)
        except (TypeError, ValueError):
            left, right = text, expected  # type: ignore[assignment]
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]

    return test


def compile_filter(text: str) -> Callable[[Lookup], bool]:
    """A predicate over a field lookup (`Entry.field`, or a point's labels)."""
    parser = _Parser(_tokens(text))
    predicate = parser.expression()
    if parser.peek()[0] != "end":
        raise FilterError(f"unexpected {parser.peek()[1]!r} in the filter")
    return predicate


def fields(text: str) -> set[str]:
    """The field paths a filter reads (for the metric contract: each must exist)."""
    tokens = _tokens(text)
    return {
        value
        for index, (kind, value) in enumerate(tokens)
        if kind == "word"
        and index + 1 < len(tokens)
        and tokens[index + 1][0] == "op"
        and tokens[index + 1][1] not in "(),"
    }
