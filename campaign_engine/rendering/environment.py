"""Message templates: a sandboxed Jinja2 environment, template sets and rendering.

A template set is the folder `templates/<name>/` holding the parts of PARTS. It
is compiled once per campaign and rendered once per recipient; every failure
becomes a TemplateError, which fails that one message and never the run.
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from ..errors import TemplateError
from .filters import FILTERS
from .sms import SmsLength, compose_sms, measure_sms

SMS_PART = "sms.txt.j2"
SUBJECT_PART = "email.subject.j2"
TEXT_PART = "email.txt.j2"
HTML_PART = "email.html.j2"
TASK_PART = "task.txt.j2"  # a manager task's talking points (call 电联, visit 面谈)
PARTS: Mapping[str, tuple[str, ...]] = {
    "sms": (SMS_PART,),
    "email": (SUBJECT_PART, TEXT_PART, HTML_PART),
    "call": (TASK_PART,),
    "visit": (TASK_PART,),
}
ALL_PARTS = tuple(dict.fromkeys(p for parts in PARTS.values() for p in parts))


def build_environment(templates: str | Path | Mapping[str, str]) -> SandboxedEnvironment:
    """Create the sandboxed environment that loads templates from a folder, or from a mapping of
    `<template>/<part>` to text (a published rule version's templates).

    StrictUndefined makes a missing variable an error instead of a blank in a
    sent message; autoescaping applies to `.html.j2` only, as SMS and plain text
    must show `<` and `&` as written.
    """
    loader: jinja2.BaseLoader = (jinja2.DictLoader(dict(templates)) if isinstance(templates, Mapping)
                                 else jinja2.FileSystemLoader(str(templates)))
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False),
        keep_trailing_newline=False,
    )
    env.filters.update(FILTERS)
    return env


@dataclass(frozen=True)
class TemplateSet:
    """The compiled parts of one template folder, keyed by part file name."""

    name: str
    templates: Mapping[str, jinja2.Template]
    source: str = ""  # every part's text, to tell whether the template might use a field
    texts: Mapping[str, str] = field(default_factory=dict)  # "<name>/<part>" -> its text, as compiled

    def may_use(self, word: str) -> bool:
        """Whether any part mentions `word` (textually: a false yes is harmless, a false no is not)."""
        return word in self.source

    @property
    def channels(self) -> tuple[str, ...]:
        """Channels whose parts are present: email needs a subject and a text or HTML body."""
        found = []
        if SMS_PART in self.templates:
            found.append("sms")
        if SUBJECT_PART in self.templates and (
                TEXT_PART in self.templates or HTML_PART in self.templates):
            found.append("email")
        if TASK_PART in self.templates:
            found += ["call", "visit"]
        return tuple(found)


@dataclass(frozen=True)
class RenderedMessage:
    """One recipient's message, ready to send."""

    channel: str
    subject: str | None
    body: str
    html: str | None
    sms: SmsLength | None


def load_template_set(env: jinja2.Environment, name: str) -> TemplateSet:
    """Compile every part present in `templates/<name>/`; raises TemplateError if none is usable."""
    templates: dict[str, jinja2.Template] = {}
    sources: list[str] = []
    texts: dict[str, str] = {}
    for part in ALL_PARTS:
        try:
            templates[part] = env.get_template(f"{name}/{part}")
            if env.loader is not None:
                texts[f"{name}/{part}"] = env.loader.get_source(env, f"{name}/{part}")[0]
                sources.append(texts[f"{name}/{part}"])
        except jinja2.TemplateNotFound:
            continue
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(name, part, exc.message or str(exc), line=exc.lineno) from exc
        except (jinja2.TemplateError, UnicodeDecodeError) as exc:
            raise TemplateError(name, part, str(exc)) from exc
    template_set = TemplateSet(name=name, templates=templates, source="\n".join(sources), texts=texts)
    if not templates:
        raise TemplateError(name, None, "no template folder or no template in it")
    if not template_set.channels:
        raise TemplateError(name, None, (
            f"no usable channel in {sorted(templates)}: sms needs {SMS_PART}, "
            f"email needs {SUBJECT_PART} and {TEXT_PART} or {HTML_PART}, call and visit need {TASK_PART}"))
    return template_set


def render_message(template_set: TemplateSet, channel: str, context: Mapping[str, object], *,
                   signature: str, opt_out: str | None) -> RenderedMessage:
    """Render one channel of a template set for one recipient.

    `signature` and `opt_out` apply to SMS only; the caller passes `opt_out`
    for marketing messages and None for service notices.
    """
    if channel not in template_set.channels:
        raise TemplateError(template_set.name, None,
                            f"no {channel!r} channel (has: {', '.join(template_set.channels)})")
    if channel in ("call", "visit"):  # talking points for the manager: no signature, no opt-out line
        points = _render(template_set, TASK_PART, context).strip()
        if not points:
            raise TemplateError(template_set.name, TASK_PART, "the talking points are empty")
        return RenderedMessage(channel, None, points, None, None)
    if channel == "sms":
        try:
            text = compose_sms(_render(template_set, SMS_PART, context),
                               signature=signature, opt_out=opt_out)
        except ValueError as exc:
            raise TemplateError(template_set.name, SMS_PART, str(exc)) from exc
        return RenderedMessage(channel, None, text, None, measure_sms(text))

    subject = " ".join(_render(template_set, SUBJECT_PART, context).split())
    if not subject:
        raise TemplateError(template_set.name, SUBJECT_PART, "email subject is empty")
    body = _render(template_set, TEXT_PART, context) if TEXT_PART in template_set.templates else ""
    html = _render(template_set, HTML_PART, context) if HTML_PART in template_set.templates else None
    return RenderedMessage(channel, subject, body, html, None)


# A template's globals (its own over the environment's), flattened once: Template.render merges a
# ChainMap of them into every recipient's context, which cost more than rendering the SMS itself.
_FLAT_GLOBALS: weakref.WeakKeyDictionary[jinja2.Template, dict[str, Any]] = weakref.WeakKeyDictionary()


def _flat_globals(template: jinja2.Template) -> dict[str, Any]:
    flat = _FLAT_GLOBALS.get(template)
    if flat is None:
        flat = _FLAT_GLOBALS[template] = dict(template.globals)
    return flat


def _render_template(template: jinja2.Template, context: Mapping[str, object]) -> str:
    """Template.render(context), with the context built from the flattened globals: the same
    Context (parent: globals, then the recipient's variables; the same globals' names) through the
    same sandboxed environment, and a failure re-raised with the template's frames as render does."""
    flat = _flat_globals(template)
    environment = template.environment
    parent = {**flat, **context}
    ctx = environment.context_class(environment, parent, template.name, template.blocks, globals=flat)
    try:
        return environment.concat(template.root_render_func(ctx))
    except Exception:
        environment.handle_exception()


def _render(template_set: TemplateSet, part: str, context: Mapping[str, object]) -> str:
    """Render one part, turning any failure into a TemplateError located at the template line."""
    template = template_set.templates[part]
    try:
        return _render_template(template, context)
    except Exception as exc:  # a recipient's data or a template bug: fail this message only
        reason = (str(exc) if isinstance(exc, (jinja2.TemplateError, ValueError))
                  else f"{type(exc).__name__}: {exc}")
        # Jinja rewrites the traceback so that template frames carry the template
        # file name and line; the innermost one in this part is where it failed.
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename == template.filename]
        line = frames[-1].lineno if frames else None
        # Jinja names the attribute but not the object ('dict object' has no attribute 'x'); the
        # source line shows which variable it was (from the text itself when it is not a file).
        text = frames[-1].line if frames else None
        if not text and line is not None:
            lines = template_set.texts.get(f"{template_set.name}/{part}", "").splitlines()
            text = lines[line - 1].strip() if 0 < line <= len(lines) else None
        if text:
            reason += f" (at: {text})"
        raise TemplateError(template_set.name, part, reason, line) from exc
