"""User-facing texts: one table per message key, zh-CN and en side by side, in ``*.toml``.

Every table declares its ``params``; at load, each language's placeholders must be exactly
those (a missing or unknown placeholder is a start-up error, not a surprise at 08:30 on the
day of a campaign). An optional ``[key.sms]`` sub-table holds shorter SMS wordings.

A param value may itself be localised: ``{"zh-CN": "春节", "en": "Spring Festival"}``.

A count chooses its noun with a plural spec, ``{count:# file|# files}``: the part before
``|`` when the value is 1, the other part otherwise, ``#`` standing for the value ("1 file",
"3 files"). Chinese needs none; English wordings use it wherever a count can be 1.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

LANGUAGES = ("zh-CN", "en")
FALLBACK_LANGUAGE = "zh-CN"


class TemplateError(Exception):
    """A template file is malformed, or a render was asked for something that cannot exist."""


class _PluralFormatter(string.Formatter):
    """``str.format`` plus the ``{n:# item|# items}`` spec (used only by templates that have
    one: ``Formatter`` parses in Python, ``str.format`` in C)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if "|" not in format_spec:
            return str(super().format_field(value, format_spec))
        one, _, other = format_spec.partition("|")
        return (one if str(value) == "1" else other).replace("#", str(value))


_PLURALS = _PluralFormatter()


@dataclass(frozen=True, slots=True)
class Template:
    key: str
    params: frozenset[str]
    text: Mapping[str, str]
    sms: Mapping[str, str]
    plural: bool = False  # some wording has a {n:# item|# items} spec

    def wording(self, language: str, *, sms: bool) -> str:
        lang = language if language in LANGUAGES else FALLBACK_LANGUAGE
        if sms and lang in self.sms:
            return self.sms[lang]
        return self.text[lang]


def _placeholders(source: str, where: str) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(source))
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc}") from None
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise TemplateError(f"{where}: placeholder {{{field}}} must be a plain name")
        if spec and spec.count("|") > 1:
            raise TemplateError(f"{where}: {{{field}:{spec}}} must be 'one|other'")
        names.add(field)
    return names


def _has_plural(wordings: Mapping[str, str]) -> bool:
    return any(spec and "|" in spec for wording in wordings.values()
               for _, _, spec, _ in string.Formatter().parse(wording))


def _check(key: str, params: frozenset[str], wordings: Mapping[str, str], where: str) -> None:
    for lang, wording in wordings.items():
        used = _placeholders(wording, f"{where} [{key}] {lang}")
        if missing := params - used:
            # A param may be left out of a short SMS wording, never out of the full text.
            if not where.endswith("sms"):
                raise TemplateError(f"{where} [{key}] {lang}: missing {sorted(missing)}")
        if unknown := used - params:
            raise TemplateError(f"{where} [{key}] {lang}: unknown placeholder {sorted(unknown)}")


def _parse_table(key: str, table: Any, source: str) -> Template:
    if not isinstance(table, dict):
        raise TemplateError(f"{source} [{key}]: must be a table")
    allowed = {"params", "sms", *LANGUAGES}
    if extra := set(table) - allowed:
        raise TemplateError(f"{source} [{key}]: unknown entries {sorted(extra)}")
    params = table.get("params")
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise TemplateError(f"{source} [{key}]: params must be a list of names")
    text = {lang: table.get(lang) for lang in LANGUAGES}
    for lang, wording in text.items():
        if not isinstance(wording, str) or not wording.strip():
            raise TemplateError(f"{source} [{key}]: missing {lang} text")
    sms = table.get("sms", {})
    if not isinstance(sms, dict) or set(sms) - set(LANGUAGES):
        raise TemplateError(f"{source} [{key}.sms]: only {', '.join(LANGUAGES)} entries")
    declared = frozenset(params)
    _check(key, declared, text, source)  # type: ignore[arg-type]
    _check(key, declared, sms, f"{source} sms")
    plural = _has_plural(text) or _has_plural(sms)  # type: ignore[arg-type]
    return Template(key=key, params=declared, text=text, sms=sms,  # type: ignore[arg-type]
                    plural=plural)


class Texts:
    """All templates, loaded and checked once at start-up."""

    def __init__(self, templates: Mapping[str, Template]) -> None:
        self._templates = dict(templates)

    @classmethod
    def load(cls, *extra_dirs: Path) -> Texts:
        templates: dict[str, Template] = {}
        sources: list[tuple[str, str]] = []
        package = resources.files(__package__ or "bot.texts")
        for entry in sorted(package.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".toml"):
                sources.append((entry.name, entry.read_text(encoding="utf-8")))
        for directory in extra_dirs:
            for path in sorted(directory.glob("*.toml")):
                sources.append((str(path), path.read_text(encoding="utf-8")))
        for name, content in sources:
            try:
                data = tomllib.loads(content)
            except tomllib.TOMLDecodeError as exc:
                raise TemplateError(f"{name}: {exc}") from None
            for key, table in data.items():
                if key in templates:
                    raise TemplateError(f"{name} [{key}]: defined twice")
                templates[key] = _parse_table(key, table, name)
        return cls(templates)

    def __contains__(self, key: object) -> bool:
        return key in self._templates

    def keys(self) -> list[str]:
        return sorted(self._templates)

    def __iter__(self) -> Iterator[str]:
        """Every message key."""
        return iter(self._templates)

    def template(self, key: str) -> Template:
        try:
            return self._templates[key]
        except KeyError:
            raise TemplateError(f"no template {key!r}") from None

    def render(
        self, key: str, language: str, params: Mapping[str, Any], *, sms: bool = False
    ) -> str:
        template = self.template(key)
        if not params.keys() >= template.params:
            missing = template.params - params.keys()
            raise TemplateError(f"template {key!r} needs {sorted(missing)}")
        lang = language if language in LANGUAGES else FALLBACK_LANGUAGE
        values = {name: _localise(params[name], lang) for name in template.params}
        wording = template.wording(lang, sms=sms)
        if template.plural:
            return _PLURALS.vformat(wording, (), values)
        return wording.format(**values)


def _localise(value: Any, language: str) -> Any:
    if isinstance(value, str | int):  # most values: no need for the slower Mapping check
        return value
    if isinstance(value, Mapping) and set(value) <= set(LANGUAGES) and value:
        return value.get(language) or value.get(FALLBACK_LANGUAGE) or next(iter(value.values()))
    return value
