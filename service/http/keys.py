"""The application's typed keys, shared by the routes, the resource contexts and the tests."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.http.app_sessions.reader import AppSessions
from service.http.auth import RotatingCookieStorage
from service.http.group_commit import OutboxWriter
from service.http.nextauth import NextAuthReader
from service.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
WRITER = web.AppKey("writer", OutboxWriter)
# Set whenever events were committed: the in-process relay waits on it.
NEW_WORK = web.AppKey("new_work", asyncio.Event)
METRICS = web.AppKey("metrics", Metrics)
SESSIONS = web.AppKey("sessions", RotatingCookieStorage)
NEXTAUTH = web.AppKey("nextauth", NextAuthReader)
# The Next.js app's session of either strategy, opened at start-up on NEXTAUTH's reader.
APP_SESSIONS = web.AppKey("app_sessions", AppSessions)
