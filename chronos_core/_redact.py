"""Masking secrets in captured text before it leaves the process.

Job output and error messages routinely contain connection strings, tokens and headers. Each
rule below is a precompiled pattern plus the lowercase keywords without which it cannot match;
a rule runs only when one of its keywords occurs in the text, so text without secrets costs a
`str.lower()` and a handful of substring checks. Only the secret part of a match (the
`secret` group, else the whole match) is replaced, so `password=hunter2` becomes
`password=[REDACTED]` and the reader still sees what was there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

__all__ = ["DEFAULT_RULES", "REDACTED", "RedactionRule", "Redactor"]

REDACTED = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class RedactionRule:
    """One kind of secret: a pattern, and the keywords that must be present for it to match.

    If the pattern has a group named `secret`, only that group is replaced; otherwise the
    whole match is. The rule runs only if the text contains one of `anchors` (characters,
    found with a memchr-fast check) and one of `keywords` (lowercase); empty means no check.
    """

    name: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...] = ()
    anchors: str = ""

    @classmethod
    def compile(
        cls,
        name: str,
        pattern: str,
        keywords: Iterable[str] = (),
        *,
        anchors: str = "",
        flags: int = 0,
    ) -> RedactionRule:
        """Build a rule from a pattern string; keywords are matched case-insensitively."""
        return cls(name, re.compile(pattern, flags), tuple(k.lower() for k in keywords), anchors)


# Names of settings whose values are secrets, as they appear in env files, query strings,
# JSON and Python reprs. The name must end at the separator: `tokens=5` and
# `secret_name=x` are left alone, `db_password=x` and `page_token=x` are not.
_KEY = r"[\w.-]*?(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"

_KEY_WORDS = ("pass", "secret", "token", "key")

# Rules whose pattern starts with a literal need no keywords: the regex engine's own scan for
# that literal is as fast as a substring check. Case-insensitive rules are gated by keywords
# (checked in lowercased text) and by the separator characters they need.
DEFAULT_RULES: tuple[RedactionRule, ...] = (
    RedactionRule.compile(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?P<secret>[\s\S]*?)"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    ),
    RedactionRule.compile(
        "authorization_header",
        r"(?i)\bauthorization[\"']?\s*[:=]\s*[\"']?"
        # The scheme is never the secret, even when what follows it is already masked.
        r"(?:(?:bearer|basic|token|digest)\s+|(?!(?:bearer|basic|token|digest)\b))"
        r"(?P<secret>[^\s\"',;\[]+)",
        ["authoriz"],
        anchors=":=",
    ),
    RedactionRule.compile(
        "bearer_token", r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]+=*)", ["bearer"]
    ),
    RedactionRule.compile(
        "url_credentials",
        r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]+:(?P<secret>[^@/?#\s]+)@",
        ["://"],
        anchors="@",
    ),
    RedactionRule.compile("aws_access_key_id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", ["akia", "asia"]),
    RedactionRule.compile("github_token", r"gh[pousr]_[A-Za-z0-9]{36,}\b"),
    RedactionRule.compile("github_fine_grained_token", r"github_pat_[A-Za-z0-9_]{22,}"),
    RedactionRule.compile("slack_token", r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    RedactionRule.compile(
        "slack_webhook", r"hooks\.slack\.com/services/(?P<secret>[A-Za-z0-9/_-]+)"
    ),
    RedactionRule.compile("stripe_key", r"\b[sr]k_live_[0-9A-Za-z]{16,}", ["_live_"]),
    RedactionRule.compile("jwt", r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # Quoted values first ("password": "x", 'token': 'x'), then bare ones (password=x).
    RedactionRule.compile(
        "secret_quoted_value",
        rf"(?i)\b{_KEY}[\"']?\s*[:=]\s*(?P<q>[\"'])(?P<secret>(?:\\.|(?!(?P=q))[^\\\n])+)(?P=q)",
        _KEY_WORDS,
        anchors=":=",
    ),
    RedactionRule.compile(
        "secret_value",
        rf"(?i)\b{_KEY}[\"']?\s*[:=]\s*(?P<secret>[^\s\"',;&)}}}}\]\[]+)",
        _KEY_WORDS,
        anchors=":=",
    ),
)


def _replace_secret(match: re.Match[str]) -> str:
    if "secret" not in match.re.groupindex or match.start("secret") < 0:
        return REDACTED
    start, end = match.span()
    secret_start, secret_end = match.span("secret")
    text = match.string
    return text[start:secret_start] + REDACTED + text[secret_end:end]


class Redactor:
    """Replaces secrets in text with `[REDACTED]`.

    `Redactor()` uses the default rules; `extra_patterns` adds rules (a `RedactionRule`, a
    compiled pattern or a pattern string, each run on every text), and `include_defaults=False`
    leaves only the extra ones.
    """

    __slots__ = ("_rules",)

    def __init__(
        self,
        *,
        extra_patterns: Iterable[RedactionRule | re.Pattern[str] | str] = (),
        include_defaults: bool = True,
    ) -> None:
        rules = list(DEFAULT_RULES) if include_defaults else []
        for index, extra in enumerate(extra_patterns):
            if isinstance(extra, RedactionRule):
                rules.append(extra)
            else:
                pattern = re.compile(extra) if isinstance(extra, str) else extra
                rules.append(RedactionRule(f"extra_{index}", pattern))
        self._rules: tuple[RedactionRule, ...] = tuple(rules)

    @classmethod
    def default(cls) -> Redactor:
        """The shared redactor with the default rules."""
        return _default_redactor()

    @property
    def rules(self) -> Sequence[RedactionRule]:
        """The rules, in the order they are applied."""
        return self._rules

    def redact(self, text: str) -> str:
        """`text` with every secret the rules recognise replaced by `[REDACTED]`."""
        if not text:
            return text
        lowered: str | None = None
        seen: dict[str, bool] = {}  # several rules share keywords; scan for each once
        for rule in self._rules:
            if rule.anchors and not any(char in text for char in rule.anchors):
                continue
            if rule.keywords:
                if lowered is None:
                    lowered = text.lower()
                found = False
                for keyword in rule.keywords:
                    hit = seen.get(keyword)
                    if hit is None:
                        hit = seen[keyword] = keyword in lowered
                    if hit:
                        found = True
                        break
                if not found:
                    continue
            text = rule.pattern.sub(_replace_secret, text)
        return text

    __call__ = redact


@cache
def _default_redactor() -> Redactor:
    return Redactor()
