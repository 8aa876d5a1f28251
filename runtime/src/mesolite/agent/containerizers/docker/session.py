"""Talking to dockerd through outages: a docker API client that reconnects and retries while dockerd is
away, and `in_thread` to run its blocking calls without keeping the process from exiting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from mesolite.retry import RetryPolicy

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
DOCKER_REQUEST_TIMEOUT_SECONDS = 60


class DockerUnavailable(RuntimeError):
    """dockerd did not answer (not running, restarting, socket gone)."""


class PullFailed(RuntimeError):
    """The registry refused or could not be reached while pulling."""


TRANSIENT_ERRORS = (
    DockerUnavailable,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
)


def is_transient(error: BaseException) -> bool:
    """Errors that mean "dockerd is away for now", not "this request is wrong"."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    # A daemon shutting down may answer 5xx before it closes its socket.
    if isinstance(error, docker.errors.APIError) and not isinstance(error, docker.errors.NotFound):
        return error.status_code in (502, 503) or "shutting down" in str(error).lower()
    return False


_Result = TypeVar("_Result")


class DockerSession:
    """A docker API client that reconnects: `call(operation)` retries what fails because dockerd is away."""

    def __init__(self, socket_path: str):
        self.base_url = f"unix://{socket_path}"
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()

    def api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.APIClient(
                        base_url=self.base_url, version="auto", timeout=DOCKER_REQUEST_TIMEOUT_SECONDS
                    )
                except docker.errors.DockerException as error:
                    raise DockerUnavailable(f"dockerd at {self.base_url} does not answer: {error}") from None
            return self._client

    def reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def call(self, operation: Callable[[docker.APIClient], _Result], give_up_after: float | None = None) -> _Result:
        """Run `operation(api)`, retrying with backoff while dockerd is away (forever when `give_up_after`
        is None); any other error is raised at once."""
        backoff = RetryPolicy(initial=0.2, maximum=MAX_BACKOFF_SECONDS, jitter=False, deadline=give_up_after).backoff()
        while True:
            try:
                return operation(self.api())
            except Exception as error:
                if not is_transient(error):
                    raise
                if backoff.exhausted():
                    raise DockerUnavailable(f"dockerd at {self.base_url} is unreachable: {error}") from error
                delay = backoff.next_delay()
                logger.warning("dockerd is unreachable (%s); retrying in %.1fs", error, delay)
                self.reset()
                time.sleep(delay)


async def in_thread(function: Callable[..., _Result], *arguments: Any) -> _Result:
    """Run a blocking call in a daemon thread: unlike asyncio.to_thread, a call stuck on dockerd never
    keeps the process from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = function(*arguments)
        except BaseException as error:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(deliver, future.set_exception, error)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, future.set_result, result)

    threading.Thread(target=target, name=getattr(function, "__name__", "docker"), daemon=True).start()
    return await future


def error_text(error: Exception) -> str:
    """What dockerd said, without the HTTP wrapping of an APIError."""
    if isinstance(error, docker.errors.APIError):
        return str(error.explanation or error)
    return str(error)
