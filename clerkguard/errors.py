"""The clerkguard exception tree.

```
ClerkGuardError                      base of everything clerkguard raises
├── ConfigurationError               bad or missing option, raised at construction
├── MissingDependencyError           an optional framework is not installed (also an ImportError)
└── AuthError(status, reason, detail)
    ├── NotAuthenticated             401: no token, or a token that failed a check
    ├── Forbidden                    403: a valid session that the authorize rule denied
    ├── KeysUnavailable              503: no signing keys could be obtained (JWKS outage)
    ├── WebhookError                 400: a webhook delivery was refused (clerkguard.webhooks)
    └── BackendUnavailable           503: no Backend API answer for an opaque machine token
                                     (defined in clerkguard._backend, exported by clerkguard)
```

``reason`` is a stable kebab-case code (``token-expired``,
``token-invalid-signature``, ...) that is safe to show to clients and to log;
``detail`` is a short human sentence that never contains the token, a secret
or any value taken from the token. Adapters turn an [`AuthError`][clerkguard.errors.AuthError] into an
HTTP answer with [`AuthError.headers`][clerkguard.errors.AuthError.headers] and
[`AuthError.to_dict`][clerkguard.errors.AuthError.to_dict].
"""

from __future__ import annotations

import math

__all__ = [
    "AuthError",
    "ClerkGuardError",
    "ConfigurationError",
    "Forbidden",
    "KeysUnavailable",
    "MissingDependencyError",
    "NotAuthenticated",
    "WebhookError",
]


class ClerkGuardError(Exception):
    """Base class of every exception raised by clerkguard."""


class ConfigurationError(ClerkGuardError, ValueError):
    """An option is malformed, missing, or contradicts another option.

    The message names the option and its environment variable; it never
    contains the value of a secret.
    """


class MissingDependencyError(ClerkGuardError, ImportError):
    """An optional framework integration was imported without its extra."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f'{package!r} is not installed; install it with: pip install "clerkguard[{extra}]"')
        self.package = package
        self.extra = extra


class AuthError(ClerkGuardError):
    """A request is not allowed through.

    Attributes:
        status: HTTP status to answer with: 401, 403 or 503.
        reason: Stable kebab-case code, e.g. ``token-expired``.
        detail: Short, safe, human-readable explanation.
        token_present: Whether the request carried a token at all (RFC 6750
            says a challenge without a token carries no ``error=``).
        retry_after: Seconds after which a retry may succeed (503 only).
    """

    status: int = 401

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str = "",
        *,
        token_present: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason
        self.token_present = token_present
        self.retry_after = retry_after

    @property
    def error(self) -> str:
        """Short error category used as the ``error`` member of JSON bodies."""
        if self.status == 403:
            return "insufficient_scope"
        if self.status == 503:
            return "temporarily_unavailable"
        return "invalid_token" if self.token_present else "unauthorized"

    @property
    def www_authenticate(self) -> str:
        """The RFC 6750 ``WWW-Authenticate`` challenge for this error.

        ``error_description`` carries the human ``detail`` (RFC 6750 section 3:
        "human-readable ASCII text"), made safe for a quoted string; the
        machine code is ``reason``, in the JSON body.
        """
        if self.status == 403:
            return f'Bearer error="insufficient_scope", error_description="{_quoted_safe(self.detail)}"'
        if self.status == 401 and self.token_present:
            return f'Bearer error="invalid_token", error_description="{_quoted_safe(self.detail)}"'
        return "Bearer"

    def headers(self) -> dict[str, str]:
        """HTTP headers to send with the error response."""
        headers = {"WWW-Authenticate": self.www_authenticate}
        if self.status == 503:
            retry = self.retry_after if self.retry_after is not None else 1.0
            headers["Retry-After"] = str(max(1, math.ceil(retry)))
        return headers

    def to_dict(self) -> dict[str, str]:
        """The JSON body every adapter sends: ``{"error": ..., "reason": ..., "detail": ...}``.

        ``reason`` is the stable code to branch on; ``detail`` is the sentence to show.
        """
        return {"error": self.error, "reason": self.reason, "detail": self.detail}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, reason={self.reason!r})"


def _quoted_safe(text: str) -> str:
    """``text`` reduced to what RFC 6750 allows in ``error_description``.

    The grammar (section 3) is ``%x20-21 / %x23-5B / %x5D-7E``: printable
    ASCII without ``"`` and ``\\``. Anything else becomes ``'`` (quotes) or
    ``?``, so a detail can never break out of the quoted string or split the
    header, whatever a custom rule put in it.
    """
    out = []
    for char in text:
        if char in '"\\':
            out.append("'")
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


class NotAuthenticated(AuthError):
    """401: the request carried no token, or its token failed verification."""

    def __init__(self, reason: str, detail: str = "", *, token_present: bool = True) -> None:
        super().__init__(401, reason, detail, token_present=token_present)


class Forbidden(AuthError):
    """403: the session is valid but the authorization rule denied it."""

    def __init__(self, reason: str = "forbidden", detail: str = "") -> None:
        super().__init__(403, reason, detail or "the session is not allowed to do this")


class KeysUnavailable(AuthError):
    """503: no signing keys could be obtained; the token could not be judged."""

    def __init__(self, detail: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(
            503,
            "jwks-unavailable",
            detail or "signing keys are temporarily unavailable",
            retry_after=retry_after,
        )


class WebhookError(AuthError):
    """A webhook delivery was refused (`clerkguard.webhooks`): 400 by default.

    ``reason`` is one of the stable codes listed in ``docs/webhooks.md``
    (``signature-invalid``, ``signature-missing``, ``timestamp-out-of-window``,
    ``body-too-large``, ``payload-invalid``, ...). Neither ``detail`` nor the
    message ever contains the body, a signature or the signing secret.
    A webhook is not a bearer-token request: no ``WWW-Authenticate`` header.
    """

    def __init__(self, reason: str, detail: str = "", *, status: int = 400) -> None:
        super().__init__(status, reason, detail)

    @property
    def error(self) -> str:
        """``invalid_webhook`` (400) or ``temporarily_unavailable`` (503)."""
        return "temporarily_unavailable" if self.status == 503 else "invalid_webhook"

    def headers(self) -> dict[str, str]:
        """No challenge header; ``Retry-After`` on a 503."""
        if self.status == 503:
            return {"Retry-After": str(max(1, math.ceil(self.retry_after or 1.0)))}
        return {}
