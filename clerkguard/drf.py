"""Django REST framework integration: authentication, permissions, error answers.



    # settings.py
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["clerkguard.drf.ClerkAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["clerkguard.drf.IsClerkAuthenticated"],
        "EXCEPTION_HANDLER": "clerkguard.drf.exception_handler",
    }

    # views.py
    class Reports(APIView):
        permission_classes = [HasPermission("org:reports:read") | HasRole("admin")]

        def get(self, request):
            return Response({"user_id": request.auth.user_id})

DRF keeps "who is this" apart from "may they", and so does this module:

* [`ClerkAuthentication`][clerkguard.drf.ClerkAuthentication] verifies the token (Bearer header, then Clerk's
  session cookie) and returns ``(ClerkUser, Session)``: ``request.user`` is a
  [`ClerkUser`][clerkguard.drf.ClerkUser] (not a database model) and ``request.auth`` the
  [`Session`][clerkguard.Session]. No token: anonymous (``None``), so public views
  still work; a bad token: 401 at once. Its ``authenticate_header`` makes DRF
  answer 401, not 403, when a permission needs a session that isn't there.
* Permission classes [`IsClerkAuthenticated`][clerkguard.drf.IsClerkAuthenticated],
  [`HasRole`][clerkguard.drf.HasRole], [`HasPermission`][clerkguard.drf.HasPermission],
  [`HasFeature`][clerkguard.drf.HasFeature], [`HasPlan`][clerkguard.drf.HasPlan],
  [`HasScope`][clerkguard.drf.HasScope] and
  [`Authorized`][clerkguard.drf.Authorized] (``authorize=``) compose with DRF's ``&``, ``|``, ``~``.
* Machine tokens: a subclass of ``ClerkAuthentication`` with ``accepts_token``
  (``authentication_classes = [ServiceAuthentication]``); ``request.auth`` is
  then a [`MachineCredential`][clerkguard.MachineCredential] for a machine caller.
* [`exception_handler`][clerkguard.drf.exception_handler] gives every clerkguard refusal the body and headers
  of every other clerkguard adapter (``{"error": ..., "reason": ..., "detail": ...}`` plus
  ``WWW-Authenticate`` / ``Retry-After``) instead of DRF's ``{"detail": ...}``.

``OPTIONS`` (CORS preflight) is let through unauthenticated by the
authentication class and every permission here, as ``require_auth`` does.
"""

from __future__ import annotations

try:
    import rest_framework  # noqa: F401 - imported first only to name the missing extra
except ImportError as exc:  # tested by hiding rest_framework from sys.modules
    from .errors import MissingDependencyError

    raise MissingDependencyError("djangorestframework", "drf") from exc

import inspect
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar

from asgiref.sync import async_to_sync
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission, OperationHolderMixin
from rest_framework.request import Request
from rest_framework.response import Response
from typing_extensions import Self

from .adapters import Guard, Preflight, TokenSource
from .auth import Authorize, ClerkAuth
from .django import require_auth
from .errors import AuthError, Forbidden
from .machine import AcceptsToken, Credential, MachineCredential
from .rules import Rule, has_feature, has_permission, has_plan, has_role, has_scope
from .session import Session

__all__ = [
    "Authorized",
    "ClerkAPIException",
    "ClerkAuthentication",
    "ClerkPermission",
    "ClerkUser",
    "HasFeature",
    "HasPermission",
    "HasPlan",
    "HasRole",
    "HasScope",
    "IsClerkAuthenticated",
    "exception_handler",
]

logger = logging.getLogger("clerkguard.drf")

#: Attribute of the Django ``HttpRequest`` holding why a clerkguard permission denied.
DENIAL_ATTRIBUTE = "_clerkguard_denial"


class ClerkUser:
    """``request.user`` for a Clerk session: enough of Django's user interface, no database.

    Attributes:
        id: The Clerk user id (``user_...``); for a machine credential its
            subject (``mch_...``, ``user_...`` or ``org_...``). ``pk`` and
            ``username`` are the same.
        session: The verified [`Session`][clerkguard.Session] (typed for
            session-only views, like ``request.auth``).
        credential: The same object typed [`Credential`][clerkguard.Credential]:
            on views whose authentication accepts machine tokens it may be a
            [`MachineCredential`][clerkguard.MachineCredential].
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, session: Credential) -> None:
        self.credential: Credential = session
        # A machine credential only on views that accept one (their code reads `credential`).
        self.session: Session = session  # type: ignore[assignment]
        self.id: str = session.user_id if isinstance(session, Session) else session.subject
        self.pk: str = self.id
        self.username: str = self.id

    def get_username(self) -> str:
        """The Clerk user id (Django's ``AbstractBaseUser.get_username``)."""
        return self.id

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"ClerkUser({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClerkUser) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("ClerkUser", self.id))


class ClerkAPIException(exceptions.APIException):  # type: ignore[misc]
    """A DRF ``APIException`` carrying an [`AuthError`][clerkguard.AuthError].

    Its ``detail`` is the guard's body (``{"error": ..., "reason": ..., "detail": ...}``),
    which DRF's default handler sends as is; ``auth_header`` and ``wait`` give
    DRF's handler the ``WWW-Authenticate`` and ``Retry-After`` headers. So a
    bad token is answered exactly as in every other adapter even without
    [`exception_handler`][clerkguard.drf.exception_handler].

    Attributes:
        error: The [`AuthError`][clerkguard.AuthError].
    """

    def __init__(self, error: AuthError) -> None:
        super().__init__(detail=error.to_dict(), code=error.reason)
        self.error = error
        self.status_code = error.status
        headers = error.headers()
        self.auth_header = headers["WWW-Authenticate"]
        self.wait: int | None = int(headers["Retry-After"]) if "Retry-After" in headers else None


def _response(error: AuthError) -> Response:
    return Response(error.to_dict(), status=error.status, headers=error.headers())


class ClerkAuthentication(BaseAuthentication):  # type: ignore[misc]
    """DRF authentication by Clerk session token.

    Returns ``(ClerkUser, Session)``, ``None`` without a token (anonymous),
    and raises [`ClerkAPIException`][clerkguard.drf.ClerkAPIException] (401, or 503 while no signing keys
    can be fetched) for a token that fails verification.

    Subclass it to change the class attributes below.
    """

    #: A specific [`ClerkAuth`][clerkguard.ClerkAuth] (default: the project's, from
    #: ``settings.CLERK_AUTH`` / ``settings.CLERK_*`` / the environment).
    auth: ClassVar[ClerkAuth | None] = None
    #: Where to look for the token, in order.
    token_sources: ClassVar[tuple[TokenSource, ...]] = ("header", "cookie")
    #: Let ``OPTIONS`` through without looking at the token (CORS preflight).
    allow_options: ClassVar[bool] = True
    #: Origins (besides ``authorized_parties``) allowed to send cookie-authenticated
    #: unsafe requests (the guard's origin check, see the security docs).
    trusted_origins: ClassVar[tuple[str, ...]] = ()
    #: Credential kinds accepted (``"session_token"``; a subclass may take
    #: ``"m2m_token"``, ``"oauth_token"``, ``"api_key"``, a list, or ``"any"``).
    #: Machine credentials are read from the Bearer header only.
    accepts_token: ClassVar[AcceptsToken] = "session_token"

    _guards: ClassVar[dict[type[ClerkAuthentication], Guard[Any]]] = {}

    @classmethod
    def guard(cls) -> Guard[Any]:
        """The [`Guard`][clerkguard.adapters.Guard] this class verifies with (built once)."""
        guard = cls._guards.get(cls)
        if guard is None:
            guard = require_auth.guard(
                optional=True,
                auth=cls.auth,
                token_sources=cls.token_sources,
                allow_options=cls.allow_options,
                trusted_origins=cls.trusted_origins,
                accepts_token=cls.accepts_token,
            )
            cls._guards[cls] = guard
        return guard

    def authenticate(self, request: Request) -> tuple[ClerkUser, Session] | None:
        """``(user, session)`` for a valid token, ``None`` without one.

        With ``accepts_token`` machine kinds, the second item may be a
        [`MachineCredential`][clerkguard.MachineCredential].
        """
        try:
            session = self.guard().check(request)
        except AuthError as error:
            raise ClerkAPIException(error) from None
        except Preflight:  # OPTIONS: anonymous; the permissions here let it through too
            return None
        if session is None:
            return None
        return ClerkUser(session), session

    def authenticate_header(self, request: Request) -> str:
        """The bare ``Bearer`` challenge: DRF then answers 401 (not 403) without a token."""
        return "Bearer"


def _session(request: Request) -> Session | None:
    session = getattr(request, "auth", None)
    # A machine credential reaches permissions on views that accept one; rules
    # ask it has() as they ask a Session.
    return session if isinstance(session, (Session, MachineCredential)) else None  # type: ignore[return-value]


def _deny(request: Request, error: Forbidden) -> bool:
    # On the HttpRequest (DRF's Request forwards reads): exception_handler reports it.
    setattr(getattr(request, "_request", request), DENIAL_ATTRIBUTE, error)
    return False


class ClerkPermission(OperationHolderMixin, BasePermission):  # type: ignore[misc]
    """Base of clerkguard's permission classes: a Clerk session is required.

    Instances go straight into ``permission_classes`` (DRF calls each entry to
    get a permission; calling an instance returns it) and compose with ``&``,
    ``|`` and ``~`` like classes. ``has_permission`` is ``False`` without a
    session (DRF answers 401) and when [`allowed`][clerkguard.drf.ClerkPermission.allowed] is not exactly
    ``True`` (403); ``OPTIONS`` passes.
    """

    #: Let ``OPTIONS`` (CORS preflight) through, as ``require_auth`` does.
    allow_options: bool = True

    def __call__(self) -> Self:
        return self

    def has_permission(self, request: Request, view: Any) -> bool:
        """Whether ``request`` may reach ``view``."""
        if self.allow_options and request.method == "OPTIONS":
            return True
        session = _session(request)
        return session is not None and self.allowed(session, request)

    def allowed(self, session: Session, request: Request) -> bool:
        """The check on a verified session (here: any session)."""
        return True


class IsClerkAuthenticated(ClerkPermission):
    """Any verified Clerk session (DRF's ``IsAuthenticated``, but ``OPTIONS`` passes)."""


class Authorized(ClerkPermission):
    """``authorize(session, request)`` must return exactly ``True``.

    The callback gets DRF's ``Request``; it may be async (awaited through
    asgiref, as Django's ``user_passes_test`` does). A callback that raises
    denies with 403 ``authorization-error`` whatever the composition (``~``
    does not turn a crash into an allow); anything but ``True`` is 403
    ``authorization-denied``.
    """

    #: The reason's wording when the callback denies (rules say "role or permission").
    denied_detail = "the authorization rule denied this session"

    def __init__(self, authorize: Authorize | Rule) -> None:
        if not callable(authorize):
            raise TypeError("authorize must be callable as authorize(session, request)")
        self.authorize = authorize

    def allowed(self, session: Session, request: Request) -> bool:
        """Run the callback, failing closed."""
        result: object = None
        try:
            result = self.authorize(session, request)
            if result is not True and inspect.isawaitable(result):
                result = async_to_sync(_await)(result)
        except AuthError as error:
            raise ClerkAPIException(error) from None
        except Exception as exc:
            if inspect.iscoroutine(result):
                result.close()
            logger.warning("authorize callback raised %s; denying", type(exc).__name__, exc_info=exc)
            raise ClerkAPIException(
                Forbidden("authorization-error", "the authorization rule failed")
            ) from None
        if result is True:
            return True
        return _deny(request, Forbidden("authorization-denied", self.denied_detail))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.authorize!r})"


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _Shorthand(Authorized):
    denied_detail = "the session lacks a required role or permission"


class HasRole(_Shorthand):
    """The active organization role is ``role`` (``"admin"`` == ``"org:admin"``)."""

    def __init__(self, role: str) -> None:
        super().__init__(has_role(role))


class HasPermission(_Shorthand):
    """The active organization grants ``permission`` (``"org:reports:read"``)."""

    def __init__(self, permission: str) -> None:
        super().__init__(has_permission(permission))


class HasFeature(_Shorthand):
    """The user or organization has ``feature`` (Clerk Billing)."""

    def __init__(self, feature: str) -> None:
        super().__init__(has_feature(feature))


class HasPlan(_Shorthand):
    """The user or organization is on ``plan`` (Clerk Billing)."""

    def __init__(self, plan: str) -> None:
        super().__init__(has_plan(plan))


class HasScope(_Shorthand):
    """A machine credential was granted ``scope`` (sessions have no scopes)."""

    def __init__(self, scope: str) -> None:
        super().__init__(has_scope(scope))


def _clerk_authentication(request: Any) -> ClerkAuthentication | None:
    authenticators = getattr(request, "authenticators", None) or ()
    return next((a for a in authenticators if isinstance(a, ClerkAuthentication)), None)


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """DRF's exception handler, answering clerkguard's refusals as every adapter does.

    Set ``REST_FRAMEWORK["EXCEPTION_HANDLER"] = "clerkguard.drf.exception_handler"``.
    It shapes, on views authenticated by [`ClerkAuthentication`][clerkguard.drf.ClerkAuthentication]:

    * DRF's "no credentials" 401 -> the guard's ``token-missing`` answer
      (``{"error": "unauthorized", "reason": "token-missing", "detail": ...}``);
    * a permission's 403 on a Clerk session -> ``authorization-denied`` (or the
      permission's own reason) with its ``WWW-Authenticate`` challenge;
    * [`ClerkAPIException`][clerkguard.drf.ClerkAPIException] -> its own body and headers.

    Everything else goes to DRF's own ``exception_handler``.
    """
    if isinstance(exc, ClerkAPIException):
        return _response(exc.error)
    request = context.get("request")
    authentication = _clerk_authentication(request)
    if request is not None and authentication is not None:
        if isinstance(exc, exceptions.NotAuthenticated):
            # The guard's own "no token" answer (its detail says why, e.g. a Basic header).
            return _response(authentication.guard()._missing(request))
        if isinstance(exc, exceptions.PermissionDenied) and _session(request) is not None:
            denial = getattr(getattr(request, "_request", request), DENIAL_ATTRIBUTE, None)
            if not isinstance(denial, Forbidden):
                denial = Forbidden("authorization-denied", "a permission denied this session")
            return _response(denial)
    # Imported here: rest_framework.views reads the REST_FRAMEWORK settings at
    # import, which name this module (a circular import at module level).
    from rest_framework.views import exception_handler as drf_exception_handler

    response: Response | None = drf_exception_handler(exc, context)
    return response
