"""Subscription filters: which messages a subscription receives (sans-IO, no XPath engine).

A WS-BaseNotification Filter holds TopicExpression and MessageContent elements; a message must
pass every one of them. Both are parsed here into small matchers over `EventMessage`:

- TopicExpression, dialects Concrete (WS-Topics) and ConcreteSet (ONVIF Core, "Topic Filter"):
  `tns1:RuleEngine/LineDetector/Crossed`, alternatives with `|`, and a trailing `//.` for a
  whole subtree (`tns1:RuleEngine//.`). The root's prefix is resolved with the namespaces in
  scope on the TopicExpression element, as the request declared them (any prefix works, an
  undeclared one is an invalid expression). Concrete expressions are parsed with the
  ConcreteSet grammar too: clients send `//.` under either dialect.
- MessageContent, dialect ItemFilter (ONVIF Core, "Message Content Filter"): the small grammar
  `boolean(//tt:SimpleItem[@Name="Rule" and @Value="x"])` combined with and/or/not and
  parentheses. It is parsed by a bounded recursive-descent parser into a closure tree; client
  text never reaches an XPath engine.

Errors are `FilterError`s whose `kind` names the WS-BaseNotification fault to send.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from vcam.events.message import EventMessage

TNS1 = "http://www.onvif.org/ver10/topics"
TT = "http://www.onvif.org/ver10/schema"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
CONCRETE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
ITEM_FILTER = "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
TOPIC_DIALECTS = (CONCRETE, CONCRETE_SET)

MAX_EXPRESSION = 2048  # characters of one expression
MAX_ALTERNATIVES = 64  # `|` alternatives of one topic expression
MAX_TOKENS = 512  # tokens of one item filter
MAX_DEPTH = 16  # parenthesis / not() nesting of one item filter

_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


class FilterErrorKind(enum.Enum):
    INVALID_FILTER = "InvalidFilterFault"
    TOPIC_DIALECT_UNKNOWN = "TopicExpressionDialectUnknownFault"
    INVALID_TOPIC_EXPRESSION = "InvalidTopicExpressionFault"
    INVALID_MESSAGE_CONTENT = "InvalidMessageContentExpressionFault"


class FilterError(ValueError):
    def __init__(self, kind: FilterErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# -- topic expressions ------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicPath:
    """One alternative: a topic (namespace + levels), or with `subtree` it and its descendants."""

    namespace: str
    levels: tuple[str, ...]
    subtree: bool = False

    def matches(self, namespace: str, levels: tuple[str, ...]) -> bool:
        if namespace != self.namespace:
            return False
        if self.subtree:
            return levels[: len(self.levels)] == self.levels
        return levels == self.levels


@dataclass(frozen=True)
class TopicFilter:
    alternatives: tuple[TopicPath, ...]

    def matches(self, topic: str) -> bool:
        """`topic` is a device topic as messages carry it: "tns1:A/B/C"."""
        namespace, levels = split_topic(topic)
        return any(a.matches(namespace, levels) for a in self.alternatives)


def split_topic(topic: str) -> tuple[str, tuple[str, ...]]:
    """A device topic ("tns1:A/B") as (namespace, levels); device topics are all tns1."""
    prefix, _, path = topic.partition(":")
    if prefix != "tns1" or not path:
        raise ValueError(f"device topics are tns1:..., not {topic!r}")
    return TNS1, tuple(path.split("/"))


def parse_topic_expression(text: str, dialect: str, nsmap: Mapping[str | None, str]) -> TopicFilter:
    if dialect.strip() not in TOPIC_DIALECTS:
        raise FilterError(FilterErrorKind.TOPIC_DIALECT_UNKNOWN, f"topic dialect {dialect[:100]!r}")
    text = text.strip()
    if not text or len(text) > MAX_EXPRESSION:
        raise FilterError(FilterErrorKind.INVALID_TOPIC_EXPRESSION, "empty or too long")
    parts = text.split("|")
    if len(parts) > MAX_ALTERNATIVES:
        raise FilterError(FilterErrorKind.INVALID_TOPIC_EXPRESSION, "too many alternatives")
    return TopicFilter(tuple(_topic_path(p.strip(), nsmap) for p in parts))


def _topic_path(text: str, nsmap: Mapping[str | None, str]) -> TopicPath:
    def invalid(why: str) -> FilterError:
        return FilterError(FilterErrorKind.INVALID_TOPIC_EXPRESSION, f"{text[:100]!r}: {why}")

    subtree = text.endswith("//.")
    if subtree:
        text = text[:-3]
    steps = text.split("/")
    if not text or any(not s for s in steps):
        raise invalid("empty topic level")
    prefix, _, root = steps[0].rpartition(":")
    namespace = nsmap.get(prefix or None)
    if namespace is None:
        if prefix:
            raise invalid(f"prefix {prefix!r} is not declared")
        namespace = ""  # an unqualified root: no namespace, so none of our topics
    levels = [root]
    for step in steps[1:]:  # ChildTopicName ::= QName | NCName; our children have none
        child_prefix, _, local = step.rpartition(":")
        if child_prefix and child_prefix not in nsmap:
            raise invalid(f"prefix {child_prefix!r} is not declared")
        levels.append(local)
    for name in (prefix, *levels):
        if name and not _NCNAME.match(name):
            raise invalid(f"{name[:40]!r} is not a topic name")
    return TopicPath(namespace, tuple(levels), subtree)


# -- message content (ItemFilter) -------------------------------------------------------------

Predicate = Callable[[EventMessage], bool]
ItemTest = Callable[[str, str], bool]  # (Name, Value) of one SimpleItem

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<punct>//|\(|\)|\[|\]|=|@|:)
      | "(?P<dq>[^"]*)" | '(?P<sq>[^']*)'
      | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "punct" | "str" | "name" | "end"
    text: str


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _invalid(f"unexpected {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group("punct") is not None:
            out.append(_Tok("punct", m.group("punct")))
        elif m.group("name") is not None:
            out.append(_Tok("name", m.group("name")))
        else:
            value = m.group("dq") if m.group("dq") is not None else m.group("sq")
            out.append(_Tok("str", value))
        if len(out) > MAX_TOKENS:
            raise _invalid("expression too long")
    out.append(_Tok("end", ""))
    return out


def _invalid(why: str) -> FilterError:
    return FilterError(FilterErrorKind.INVALID_MESSAGE_CONTENT, why)


class _ItemFilterParser:
    """Recursive descent over the Core spec grammar:

    Expression ::= Term ('or' Term)*          Term ::= Factor ('and' Factor)*
    Factor     ::= 'boolean' '(' Path ')' | 'not' '(' Expression ')' | '(' Expression ')'
    Path       ::= '//' (Prefix ':')? ('SimpleItem' | 'ElementItem') '[' AttrExpr ']'
    AttrExpr   ::= AttrTerm ('or' AttrTerm)*   AttrTerm ::= AttrFactor ('and' AttrFactor)*
    AttrFactor ::= '@' ('Name' | 'Value') '=' String | 'not' '(' AttrExpr ')' | '(' AttrExpr ')'
    """

    def __init__(self, text: str, nsmap: Mapping[str | None, str]) -> None:
        self.toks = _tokens(text)
        self.pos = 0
        self.depth = 0
        self.nsmap = nsmap

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.toks[self.pos]
        if tok.kind != kind or (text is not None and tok.text != text):
            raise _invalid(f"expected {text or kind}, found {tok.text[:20]!r}")
        self.pos += 1
        return tok

    def at(self, kind: str, text: str) -> bool:
        tok = self.peek()
        return tok.kind == kind and tok.text == text

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _invalid("nested too deeply")

    def parse(self) -> Predicate:
        pred = self.expression()
        self.take("end")
        return pred

    def expression(self) -> Predicate:
        terms = [self.term()]
        while self.at("name", "or"):
            self.pos += 1
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else _any_of(terms)

    def term(self) -> Predicate:
        factors = [self.factor()]
        while self.at("name", "and"):
            self.pos += 1
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else _all_of(factors)

    def factor(self) -> Predicate:
        self.nested()
        try:
            if self.at("name", "boolean"):
                self.pos += 1
                self.take("punct", "(")
                pred = self.path()
                self.take("punct", ")")
                return pred
            if self.at("name", "not"):
                self.pos += 1
                self.take("punct", "(")
                inner = self.expression()
                self.take("punct", ")")
                return lambda m: not inner(m)
            self.take("punct", "(")
            inner = self.expression()
            self.take("punct", ")")
            return inner
        finally:
            self.depth -= 1

    def path(self) -> Predicate:
        self.take("punct", "//")
        name = self.take("name").text
        if self.at("punct", ":"):
            self.pos += 1
            if self.nsmap.get(name) != TT:
                raise _invalid(f"prefix {name!r} is not the ONVIF schema namespace")
            name = self.take("name").text
        if name not in ("SimpleItem", "ElementItem"):
            raise _invalid(f"{name[:40]!r}: only SimpleItem and ElementItem can be tested")
        self.take("punct", "[")
        test = self.attr_expression()
        self.take("punct", "]")
        if name == "ElementItem":  # our messages carry SimpleItems only
            return lambda m: False

        def has_item(msg: EventMessage) -> bool:
            return any(test(n, v) for n, v in (*msg.source, *msg.key, *msg.data))

        return has_item

    def attr_expression(self) -> ItemTest:
        terms = [self.attr_term()]
        while self.at("name", "or"):
            self.pos += 1
            terms.append(self.attr_term())
        if len(terms) == 1:
            return terms[0]
        return lambda n, v: any(t(n, v) for t in terms)

    def attr_term(self) -> ItemTest:
        factors = [self.attr_factor()]
        while self.at("name", "and"):
            self.pos += 1
            factors.append(self.attr_factor())
        if len(factors) == 1:
            return factors[0]
        return lambda n, v: all(f(n, v) for f in factors)

    def attr_factor(self) -> ItemTest:
        self.nested()
        try:
            if self.at("name", "not"):
                self.pos += 1
                self.take("punct", "(")
                inner = self.attr_expression()
                self.take("punct", ")")
                return lambda n, v: not inner(n, v)
            if self.at("punct", "("):
                self.pos += 1
                inner = self.attr_expression()
                self.take("punct", ")")
                return inner
            self.take("punct", "@")
            attr = self.take("name").text
            self.take("punct", "=")
            wanted = self.take("str").text
            if attr == "Name":
                return lambda n, v: n == wanted
            if attr == "Value":
                return lambda n, v: v == wanted
            raise _invalid(f"@{attr[:20]}: only @Name and @Value can be tested")
        finally:
            self.depth -= 1


def _any_of(preds: list[Predicate]) -> Predicate:
    return lambda m: any(p(m) for p in preds)


def _all_of(preds: list[Predicate]) -> Predicate:
    return lambda m: all(p(m) for p in preds)


def parse_item_filter(text: str, dialect: str, nsmap: Mapping[str | None, str]) -> Predicate:
    if dialect.strip() != ITEM_FILTER:
        raise _invalid(f"message content dialect {dialect[:100]!r}")
    if len(text) > MAX_EXPRESSION:
        raise _invalid("expression too long")
    return _ItemFilterParser(text, nsmap).parse()


# -- the whole filter -------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Every component must pass (WS-BaseNotification: filters are conjunctive)."""

    topics: tuple[TopicFilter, ...] = ()
    content: tuple[Predicate, ...] = ()

    def matches(self, msg: EventMessage) -> bool:
        return all(t.matches(msg.topic) for t in self.topics) and all(c(msg) for c in self.content)


ALL_EVENTS = EventFilter()


@dataclass(frozen=True)
class FilterPart:
    """One child of a wsnt Filter element, as the HTTP layer read it."""

    namespace: str | None
    local: str
    dialect: str | None
    text: str
    nsmap: Mapping[str | None, str]
    has_children: bool = False


def build_filter(parts: Iterable[FilterPart]) -> EventFilter:
    topics: list[TopicFilter] = []
    content: list[Predicate] = []
    for part in parts:
        if part.namespace == WSNT and part.local in ("TopicExpression", "MessageContent"):
            if part.dialect is None:
                raise FilterError(FilterErrorKind.INVALID_FILTER, f"{part.local} has no Dialect")
            if part.has_children:  # both dialects are text; XML content is another dialect
                raise FilterError(
                    FilterErrorKind.INVALID_FILTER, f"{part.local} must be text, not XML"
                )
            if part.local == "TopicExpression":
                topics.append(parse_topic_expression(part.text, part.dialect, part.nsmap))
            else:
                content.append(parse_item_filter(part.text, part.dialect, part.nsmap))
        else:  # e.g. wsnt:ProducerProperties: not supported
            raise FilterError(
                FilterErrorKind.INVALID_FILTER,
                f"unsupported filter {{{part.namespace}}}{part.local}",
            )
    return EventFilter(tuple(topics), tuple(content))
