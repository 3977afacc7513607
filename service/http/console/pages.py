"""Rendering the console's pages: Jinja templates of the package, escaped by default, with the
filters they format times and numbers with."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from service.timefmt import human_age, iso

__all__ = ["path_part", "render"]


def _when(ms: int | None) -> str:
    """An epoch-ms time as the pages show it: ISO 8601 UTC to the second."""
    text = iso(ms)
    return "" if text is None else text[:19].replace("T", " ") + " UTC"


def _data_part(payload: str) -> str:
    """An event's JSON from its ``data`` on: the list shows the id and name in columns already."""
    start = payload.find('"data":')
    return payload if start < 0 else payload[start + len('"data":') :]


def path_part(text: str) -> str:
    """``text`` as one segment of a URL's path: an id with ``/``, ``?`` or ``#`` included."""
    return quote(text, safe="")


def _number(value: int) -> str:
    return f"{value:,}"


@functools.cache
def environment() -> jinja2.Environment:
    """Autoescaping on for every template: an event's name, data and error are shown inert."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("service.http.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when, age=human_age, number=_number, data_part=_data_part, path_part=path_part
    )
    return env


def render(
    template: str, context: dict[str, Any], *, status: int = 200, section: str = ""
) -> web.Response:
    """The page ``template`` with ``context`` (``session``: the operator, or None)."""
    context.setdefault("session", None)
    body = environment().get_template(template).render(section=section, **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
