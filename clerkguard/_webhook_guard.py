"""``require_webhook`` for any framework, on the public adapter API.

A framework module gets its decorator in one line,
``require_webhook = build_require_webhook(MyAdapter())``, once its adapter
implements the four webhook hooks of [`Adapter`][clerkguard.adapters.Adapter]
(``body``/``abody``, ``json_response``, ``store_webhook``) besides
``header``, ``find_request`` and ``reject``.

What a delivery goes through, in order (every framework the same):

1. ``Content-Length`` over the limit: refused before reading; then the raw
   body is read (``body``/``abody``) before anything parses it, and checked again.
2. `clerkguard.webhooks.WebhookVerifier.verify`: headers, timestamp
   window, signature, strict JSON. Any failure: ``reject`` with a 400
   [`WebhookError`][clerkguard.WebhookError]; the handler never runs.
3. An event type not in ``events``: answered ``200`` ``{"status": "ignored",
   "reason": "event-type-not-handled"}`` (a 4xx would make Svix retry it for a day).
4. ``dedupe(event.id)`` truthy: ``200`` ``{"status": "ignored", "reason":
   "duplicate-delivery"}``. A dedupe hook that raises is a 503
   ``dedupe-failed`` (Svix retries later). If the handler then raises, a
   ``dedupe.release(event.id)`` method is called so the retry runs again.
5. ``store_webhook`` exposes the event; the handler runs.

``standardwebhooks`` (the ``webhooks`` extra) is imported when a decorator
is *applied*, so the framework modules import fine without the extra.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, overload

from typing_extensions import Unpack

from .adapters import Adapter, _remember, is_async_callable
from .errors import ConfigurationError, WebhookError

if TYPE_CHECKING:
    from .webhooks import Dedupe, WebhookEvent, WebhookVerifier

__all__ = ["IGNORED", "Ignored", "RequireWebhook", "WebhookGuard", "WebhookKwargs", "build_require_webhook"]

logger = logging.getLogger("clerkguard.webhooks")

RequestT = TypeVar("RequestT")
F = TypeVar("F", bound=Callable[..., Any])

#: The status of acknowledgements given without calling the handler.
IGNORED = 200
_SECRET_ENV = "CLERK_WEBHOOK_SIGNING_SECRET"


class Ignored:
    """A verified delivery acknowledged without the handler (unlisted type, duplicate)."""

    __slots__ = ("event", "reason")

    def __init__(self, event: WebhookEvent, reason: str) -> None:
        self.event = event
        self.reason = reason

    def body(self) -> dict[str, str]:
        """The JSON acknowledgement: ``{"status": "ignored", "reason": ...}``."""
        return {"status": "ignored", "reason": self.reason}


def _refused(error: WebhookError) -> WebhookError:
    # The reason only: never the body, a signature or the secret (the id may be forged too).
    logger.info("webhook refused: %s %s", error.status, error.reason)
    return error


def _logged(outcome: WebhookEvent | Ignored) -> WebhookEvent | Ignored:
    if isinstance(outcome, Ignored):
        logger.debug("webhook %s acknowledged unhandled: %s", outcome.event.id, outcome.reason)
    return outcome


def _event_filter(events: Iterable[str] | None) -> Callable[[str], bool] | None:
    if events is None:
        return None
    if isinstance(events, str):
        raise ConfigurationError("events must be a sequence of event types, e.g. ('user.created',)")
    names = tuple(events)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigurationError("events must name at least one event type")
    exact = frozenset(n for n in names if not n.endswith(".*"))
    prefixes = tuple(n[:-1] for n in names if n.endswith(".*"))  # "user.*" -> "user."
    return lambda kind: kind in exact or kind.startswith(prefixes)


class WebhookGuard(Generic[RequestT]):
    """One configured ``require_webhook``: verification, type filter, dedupe.

    `check` and `acheck` decide the same way; they return the
    `WebhookEvent` to hand to the handler, or an
    `Ignored` acknowledgement, or raise [`WebhookError`][clerkguard.WebhookError].
    """

    def __init__(
        self,
        adapter: Adapter[RequestT],
        *,
        events: Iterable[str] | None = None,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        dedupe: Dedupe | None = None,
        tolerance: float | None = None,
        max_body: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        from .webhooks import DEFAULT_MAX_BODY, DEFAULT_TOLERANCE, WebhookVerifier

        if dedupe is not None and not callable(dedupe):
            raise ConfigurationError("dedupe must be callable as dedupe(event_id)")
        self.adapter = adapter
        self.wanted = _event_filter(events)
        self.dedupe = dedupe
        self._options: dict[str, Any] = {
            "tolerance": DEFAULT_TOLERANCE if tolerance is None else tolerance,
            "max_body": DEFAULT_MAX_BODY if max_body is None else max_body,
            "clock": clock,
        }
        self._make = WebhookVerifier
        # An explicit secret is checked now; the environment's at each request
        # (parsed once per distinct value), so apps may set it after import.
        self._fixed: WebhookVerifier | None = (
            WebhookVerifier(secret, **self._options) if secret is not None else None
        )
        if self._fixed is None:
            WebhookVerifier(b"x", **self._options)  # the options alone, checked now
        self._by_value: dict[str, WebhookVerifier] = {}

    def verifier(self, request: RequestT | None = None) -> WebhookVerifier:
        """The verifier: ``secret=``'s, else the app setting's (adapter), else the environment's."""
        if self._fixed is not None:
            return self._fixed
        setting = self.adapter.webhook_secret(request) if request is not None else None
        value = setting if setting is not None else os.environ.get(_SECRET_ENV, "")
        verifier = self._by_value.get(value)
        if verifier is None:
            verifier = self._make(None, env={_SECRET_ENV: value}, **self._options)
            if len(self._by_value) >= 8:  # a few apps/rotations at most: no unbounded growth
                self._by_value.clear()
            self._by_value[value] = verifier
        return verifier

    # -- pieces -----------------------------------------------------------------------------
    def _headers(self, request: RequestT) -> list[tuple[str, str]]:
        from .webhooks import HEADER_NAMES

        # Every header line: two different svix-id lines are refused, not resolved.
        values = self.adapter.header_values
        return [
            (name, value)
            for names in HEADER_NAMES.values()
            for name in names
            for value in values(request, name)
        ]

    def _declared_size(self, request: RequestT, verifier: WebhookVerifier) -> None:
        length = self.adapter.header(request, "content-length")
        if length is not None and length.strip().isdigit():
            verifier.check_size(int(length.strip()))

    def _judge(self, event: WebhookEvent) -> WebhookEvent | Ignored:
        if self.wanted is not None and not self.wanted(event.type):
            return Ignored(event, "event-type-not-handled")
        return event

    @staticmethod
    def _dedupe_failed(exc: BaseException) -> WebhookError:
        logger.warning("webhook dedupe hook raised %s; answering 503", type(exc).__name__, exc_info=exc)
        return WebhookError("dedupe-failed", "the de-duplication store failed", status=503)

    # -- decisions ----------------------------------------------------------------------------
    def check(self, request: RequestT) -> WebhookEvent | Ignored:
        """Decide from sync code (an async ``dedupe`` is bridged by the adapter)."""
        try:
            return _logged(self._check(request))
        except WebhookError as error:
            raise _refused(error) from None

    async def acheck(self, request: RequestT) -> WebhookEvent | Ignored:
        """Decide from async code (a sync ``dedupe`` is called inline)."""
        try:
            return _logged(await self._acheck(request))
        except WebhookError as error:
            raise _refused(error) from None

    def _check(self, request: RequestT) -> WebhookEvent | Ignored:
        verifier = self.verifier(request)
        self._declared_size(request, verifier)
        body = self.adapter.body(request, verifier.max_body)
        judged = self._judge(verifier.verify(body, self._headers(request)))
        if isinstance(judged, Ignored) or self.dedupe is None:
            return judged
        result: Any = None
        try:
            result = self.dedupe(judged.id)
            if inspect.isawaitable(result):
                result = self.adapter.await_sync(result)
        except Exception as exc:
            if inspect.iscoroutine(result):
                result.close()
            raise self._dedupe_failed(exc) from None
        return Ignored(judged, "duplicate-delivery") if result else judged

    async def _acheck(self, request: RequestT) -> WebhookEvent | Ignored:
        verifier = self.verifier(request)
        self._declared_size(request, verifier)
        body = await self.adapter.abody(request, verifier.max_body)
        judged = self._judge(verifier.verify(body, self._headers(request)))
        if isinstance(judged, Ignored) or self.dedupe is None:
            return judged
        try:
            result = self.dedupe(judged.id)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            raise self._dedupe_failed(exc) from None
        return Ignored(judged, "duplicate-delivery") if result else judged

    def release(self, event: WebhookEvent) -> None:
        """The handler failed: let ``dedupe`` forget the id (if it has ``release``)."""
        release = getattr(self.dedupe, "release", None)
        if release is None:
            return
        try:
            result = release(event.id)
            if inspect.isawaitable(result):
                self.adapter.await_sync(result)
        except Exception as exc:
            logger.warning("webhook dedupe release raised %s", type(exc).__name__, exc_info=exc)

    async def arelease(self, event: WebhookEvent) -> None:
        """`release` from async code."""
        release = getattr(self.dedupe, "release", None)
        if release is None:
            return
        try:
            result = release(event.id)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            logger.warning("webhook dedupe release raised %s", type(exc).__name__, exc_info=exc)


#: The handler's parameter that receives the verified event where the framework
#: builds the call from the signature (FastAPI, Litestar): hidden from the framework.
WEBHOOK_PARAMETER = "webhook"

#: ``(args, kwargs) -> request`` of one handler call (it may pop a parameter it injected).
FindRequest = Callable[[tuple[Any, ...], dict[str, Any]], Any]
#: ``(handler, args, kwargs) -> awaitable result``: how the async wrapper runs the handler.
CallHandler = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Awaitable[Any]]


def async_webhook_wrapper(
    handler: Callable[..., Any],
    guard: WebhookGuard[Any],
    *,
    find_request: FindRequest | None = None,
    call: CallHandler | None = None,
    event_parameter: str | None = None,
) -> Callable[..., Any]:
    """The coroutine wrapper of every async ``require_webhook`` (no ``_remember``: the caller's).

    Args:
        handler: The endpoint.
        guard: The configured ``WebhookGuard``.
        find_request: The request of a call (default: the adapter's ``find_request``).
        call: Runs the handler once the event is stored (default: the adapter's
            ``call_async``); e.g. a sync handler in a worker thread.
        event_parameter: A keyword that receives the event (the handler declares it).
    """
    adapter = guard.adapter
    request_of = find_request or adapter.find_request
    run = call or adapter.call_async

    @functools.wraps(handler)
    async def webhook_wrapper(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args, kwargs)
        try:
            outcome = await guard.acheck(request)
        except WebhookError as error:
            return adapter.reject(request, error)
        if isinstance(outcome, Ignored):
            return adapter.json_response(request, IGNORED, outcome.body())
        adapter.store_webhook(request, outcome)
        if event_parameter is not None:
            kwargs[event_parameter] = outcome
        try:
            return await run(handler, args, kwargs)
        except BaseException:
            await guard.arelease(outcome)
            raise

    webhook_wrapper.__clerkguard_webhook__ = guard  # type: ignore[attr-defined]
    return webhook_wrapper


def signature_webhook_wrapper(
    handler: Callable[..., Any],
    guard: WebhookGuard[Any],
    request: inspect.Parameter,
    *,
    injected: bool,
    call: CallHandler | None = None,
) -> Callable[..., Any]:
    """`async_webhook_wrapper` for a framework that calls handlers by their signature.

    FastAPI and Litestar fill a handler's parameters from its
    ``__signature__``: the request arrives as the keyword named like the
    ``request`` parameter (the handler's own, or, when ``injected``, one added
    to the signature and popped before the call), and a ``webhook`` parameter
    (``WEBHOOK_PARAMETER``) is filled with the event and hidden from the framework.
    No ``_remember``: the caller registers the handler with its own order check.
    """
    signature = inspect.signature(handler)
    name = request.name

    def find_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return kwargs.pop(name) if injected else kwargs[name]

    takes_event = WEBHOOK_PARAMETER in signature.parameters
    wrapper = async_webhook_wrapper(
        handler,
        guard,
        find_request=find_request,
        call=call,
        event_parameter=WEBHOOK_PARAMETER if takes_event else None,
    )
    parameters = [p for p in signature.parameters.values() if p.name != WEBHOOK_PARAMETER]
    if injected:
        at = len(parameters)
        if parameters and parameters[-1].kind is inspect.Parameter.VAR_KEYWORD:
            at -= 1
        parameters.insert(at, request)
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return wrapper


def wrap_webhook_handler(handler: Callable[..., Any], guard: WebhookGuard[Any]) -> Callable[..., Any]:
    """The default wrapper: same sync/async kind as the handler (adapter flags permitting)."""
    adapter = guard.adapter
    # Like require_auth: the extensions' decorator-order checks (ClerkGuard for
    # Flask/Quart/Sanic) then refuse a route that registered the bare function.
    _remember(handler, "require_webhook")
    if not adapter.sync_only and (adapter.async_only or is_async_callable(handler)):
        return async_webhook_wrapper(handler, guard)

    @functools.wraps(handler)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        request = adapter.find_request(args, kwargs)
        try:
            outcome = guard.check(request)
        except WebhookError as error:
            return adapter.reject(request, error)
        if isinstance(outcome, Ignored):
            return adapter.json_response(request, IGNORED, outcome.body())
        adapter.store_webhook(request, outcome)
        try:
            return adapter.call_sync(handler, args, kwargs)
        except BaseException:
            guard.release(outcome)
            raise

    sync_wrapper.__clerkguard_webhook__ = guard  # type: ignore[attr-defined]
    return sync_wrapper


WrapWebhook = Callable[[Callable[..., Any], WebhookGuard[Any]], Callable[..., Any]]


class WebhookKwargs(TypedDict, total=False):
    """The keyword options of every ``require_webhook(...)`` (``Unpack[WebhookKwargs]``)."""

    events: Iterable[str] | None
    """Event types to handle (``"user.*"`` matches a prefix); others are acknowledged unhandled."""
    secret: str | bytes | Sequence[str | bytes] | None
    """``whsec_...`` secret(s); default ``CLERK_WEBHOOK_SIGNING_SECRET``, read at each request."""
    dedupe: Dedupe | None
    """``dedupe(event_id)``, sync or async: truthy = already handled (acknowledged, handler skipped)."""
    tolerance: float | None
    """Seconds the signed timestamp may differ from now (default 300)."""
    max_body: int | None
    """Largest body in bytes (default 1 MiB)."""
    clock: Callable[[], float] | None
    """``() -> Unix seconds`` (default ``time.time``)."""


class RequireWebhook:
    """The ``require_webhook`` decorator a framework module exports.

    ``@require_webhook`` or ``@require_webhook(events=..., secret=..., dedupe=...,
    tolerance=..., max_body=..., clock=...)``, below the route decorator.
    Options are checked when the decorator is applied.
    """

    def __init__(self, adapter: Adapter[Any], wrap: WrapWebhook | None = None) -> None:
        self.adapter = adapter
        self._wrap = wrap or wrap_webhook_handler

    @overload
    def __call__(self, handler: F, /) -> F: ...

    @overload
    def __call__(self, handler: None = None, /, **options: Unpack[WebhookKwargs]) -> Callable[[F], F]: ...

    def __call__(self, handler: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        if handler is not None and options:
            raise TypeError("use @require_webhook or @require_webhook(**options), not both")
        guard = self.guard(**options)
        if handler is not None:
            if not callable(handler):
                raise TypeError("require_webhook takes a handler, or keyword options only")
            return self._wrap(handler, guard)
        wrap = self._wrap

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise TypeError("require_webhook(...) decorates a handler")
            return wrap(fn, guard)

        return decorator

    def guard(self, **options: Unpack[WebhookKwargs]) -> WebhookGuard[Any]:
        """A `WebhookGuard` with these options (same keywords as the decorator)."""
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise TypeError(f"require_webhook() got unknown option(s): {', '.join(unknown)}")
        return WebhookGuard(self.adapter, **options)


_OPTION_NAMES = frozenset(WebhookKwargs.__annotations__)


def build_require_webhook(adapter: Adapter[Any], wrap: WrapWebhook | None = None) -> RequireWebhook:
    """Build the ``require_webhook`` decorator for a framework.

    Args:
        adapter: The framework's hooks, including the webhook ones.
        wrap: Optional custom wrapper builder ``(handler, guard) -> wrapped``
            (Litestar rewrites signatures); default `wrap_webhook_handler`.
    """
    return RequireWebhook(adapter, wrap)
