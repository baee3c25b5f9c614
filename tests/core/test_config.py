"""Configuration: every option explicitly and from ``CLERK_*``, key parsing, URL and number rules."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import RSAKey

from clerkguard import AuthError, ClerkAuth, ConfigurationError
from clerkguard.adapters import cookie_names_for
from clerkguard.config import ENV_VARS, parse_publishable_key
from clerkguard.testing import LocalIssuer

from .support import FrozenClock

MakeAuth = Callable[..., ClerkAuth]


def pk(host: str, kind: str = "test", *, pad: bool = False) -> str:
    """A publishable key for ``host`` (Clerk's own keys carry no base64 padding)."""
    encoded = base64.b64encode(f"{host}$".encode()).decode()
    return f"pk_{kind}_" + (encoded if pad else encoded.rstrip("="))


def config_error(**options: Any) -> ConfigurationError:
    options.setdefault("env", {})
    with pytest.raises(ConfigurationError) as info:
        ClerkAuth(**options)
    return info.value


# -- publishable keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "host"),
    [
        (pk("clerk.example.com"), "test", "clerk.example.com"),
        (pk("clerk.example.com", "live"), "live", "clerk.example.com"),
        (pk("clerk.example.co", pad=True), "test", "clerk.example.co"),
        (pk("clerk.example.co"), "test", "clerk.example.co"),
        # Test vectors from clerk/javascript's keys tests.
        ("pk_live_Y2xlcmsuY2xlcmsuZGV2JA", "live", "clerk.clerk.dev"),
        ("pk_test_ZW5vdWdoLWFscGFjYS04Mi5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k", "test", None),
        (f"  {pk('clerk.example.com')}\n", "test", "clerk.example.com"),
        (pk("Clerk.Example.COM"), "test", "clerk.example.com"),
    ],
)
def test_publishable_key_derives_issuer_and_jwks(key: str, kind: str, host: str | None) -> None:
    parsed = parse_publishable_key(key)
    assert parsed.instance_type == kind
    if host is not None:
        assert parsed.frontend_api == host
        assert parsed.issuer == f"https://{host}"
        assert parsed.jwks_uri == f"https://{host}/.well-known/jwks.json"
    auth = ClerkAuth(publishable_key=key, env={})
    assert (auth.issuer, auth.jwks_uri) == (parsed.issuer, parsed.jwks_uri)


@pytest.mark.parametrize(
    ("key", "suffix"),
    [
        # clerk/javascript's getCookieSuffix vectors: SHA-1 of the key exactly as written.
        ("pk_live_Y2xlcmsuY2xlcmsuZGV2JA", "1Z8AzTQD"),
        ("pk_test_Y2xlcmsuY2xlcmsuZGV2JA", "QvfNY2dr"),
        ("pk_test_ZW5vdWdoLWFscGFjYS04Mi5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k", "jtYvyt_H"),
        ("pk_test_eHh4eHh4LXhhYWFhYS1hYS5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k", "tZJdb-5s"),
    ],
)
def test_publishable_key_keeps_the_exact_text_clerk_hashes(key: str, suffix: str) -> None:
    parsed = ClerkAuth(publishable_key=f" {key}\n", env={}).publishable_key
    assert parsed is not None
    assert parsed.key == key
    digest = base64.urlsafe_b64encode(hashlib.sha1(parsed.key.encode()).digest()).decode()
    assert digest[:8] == suffix
    # The guard reads the suffixed cookie first, then the plain one.
    auth = ClerkAuth(publishable_key=key, env={})
    assert cookie_names_for(auth) == (f"__session_{suffix}", "__session")


@pytest.mark.parametrize(
    ("host", "issuer"),
    [
        ("localhost:3000", "http://localhost:3000"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("127.0.0.1", "http://127.0.0.1"),
        ("localhost", "http://localhost"),
        ("clerk.localhost.example.com", "https://clerk.localhost.example.com"),
        ("127.0.0.1.nip.io", "https://127.0.0.1.nip.io"),
    ],
)
def test_only_a_loopback_frontend_api_is_plain_http(host: str, issuer: str) -> None:
    assert parse_publishable_key(pk(host)).issuer == issuer


@pytest.mark.parametrize(
    "key",
    [
        "",
        "pk_prod_" + pk("clerk.example.com")[8:],
        "sk_test_" + pk("clerk.example.com")[8:],
        "PK_TEST_" + pk("clerk.example.com")[8:],
        "pk_test",
        "pk_test_",
        "pk_test_!!!!",
        "pk_test_Y2xlcmsu*Y29t",
        "pk_test_" + base64.b64encode(b"clerk.example.com").decode(),
        pk("clerk.example.com/path"),
        pk("clerk example.com"),
        pk("clerk.exa$mple.com"),
        pk("https://clerk.example.com"),
        "pk_test_" + base64.b64encode(b"\xff\xfe$").decode(),
    ],
)
def test_malformed_publishable_keys_are_configuration_errors(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_publishable_key(key)
    assert "`publishable_key` (env CLERK_PUBLISHABLE_KEY)" in str(info.value)
    assert "`publishable_key` (env CLERK_PUBLISHABLE_KEY)" in str(config_error(publishable_key=key))


# -- every option, explicitly and from the environment ------------------------------------


def test_publishable_key_from_env_and_explicit_wins() -> None:
    from_env = ClerkAuth(env={"CLERK_PUBLISHABLE_KEY": pk("clerk.env.example")})
    assert from_env.issuer == "https://clerk.env.example"
    both = ClerkAuth(
        publishable_key=pk("clerk.arg.example"), env={"CLERK_PUBLISHABLE_KEY": pk("clerk.env.example")}
    )
    assert both.issuer == "https://clerk.arg.example"


def test_blank_env_values_count_as_unset() -> None:
    env = {name: "  " for name in ENV_VARS.values()}
    env["CLERK_PUBLISHABLE_KEY"] = pk("clerk.example.com")
    auth = ClerkAuth(env=env)
    assert auth.jwks_uri == "https://clerk.example.com/.well-known/jwks.json"
    assert auth.authorized_parties is None


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", pk("clerk.process.example"))
    for name in ENV_VARS.values():
        if name != "CLERK_PUBLISHABLE_KEY":
            monkeypatch.delenv(name, raising=False)
    assert ClerkAuth().issuer == "https://clerk.process.example"


@pytest.mark.parametrize("source", ["argument", "env"])
def test_jwks_uri_wins_over_the_derived_one(source: str) -> None:
    uri = "https://keys.example.com/jwks.json"
    env = {"CLERK_PUBLISHABLE_KEY": pk("clerk.example.com")}
    if source == "env":
        env["CLERK_JWKS_URI"] = uri
        auth = ClerkAuth(env=env)
    else:
        auth = ClerkAuth(jwks_uri=uri, env=env)
    assert auth.jwks_uri == uri
    assert auth.issuer == "https://clerk.example.com"


@pytest.mark.parametrize("source", ["argument", "env"])
def test_issuer_option(source: str) -> None:
    iss = "https://clerk.custom.example"
    env = {"CLERK_PUBLISHABLE_KEY": pk("clerk.example.com")}
    if source == "env":
        env["CLERK_ISSUER"] = iss
        auth = ClerkAuth(env=env)
    else:
        auth = ClerkAuth(issuer=iss, env=env)
    assert auth.issuer == iss


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        (None, "https://a.example, https://b.example ,", {"https://a.example", "https://b.example"}),
        (["https://a.example"], "https://b.example", {"https://a.example"}),
        ("https://a.example,https://c.example", "", {"https://a.example", "https://c.example"}),
        (("https://a.example",), "", {"https://a.example"}),
        (None, "", None),
    ],
)
def test_authorized_parties_option(value: Any, env: str, expected: set[str] | None) -> None:
    auth = ClerkAuth(
        publishable_key=pk("clerk.example.com"),
        authorized_parties=value,
        env={"CLERK_AUTHORIZED_PARTIES": env},
    )
    assert auth.authorized_parties == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize("value", [[], [""], [1], ["https://a.example", None], ",", " , "])
def test_malformed_authorized_parties(value: Any) -> None:
    error = config_error(publishable_key=pk("clerk.example.com"), authorized_parties=value)
    assert "`authorized_parties` (env CLERK_AUTHORIZED_PARTIES)" in str(error)


@pytest.mark.parametrize("source", ["argument", "env"])
def test_secret_key_fetches_from_the_backend_api(
    source: str, clerk_issuer: LocalIssuer, clock: FrozenClock, mint: Callable[..., str]
) -> None:
    env = {"CLERK_API_URL": clerk_issuer.api_url}
    options: dict[str, Any] = {"issuer": clerk_issuer.issuer, "clock": clock}
    if source == "env":
        env["CLERK_SECRET_KEY"] = clerk_issuer.secret_key
    else:
        options["secret_key"] = clerk_issuer.secret_key
    auth = ClerkAuth(env=env, **options)
    try:
        assert auth.jwks_uri == f"{clerk_issuer.api_url}/v1/jwks"
        # The loopback Backend API answers only with the right Bearer secret.
        assert auth.verify(mint()).user_id
        assert clerk_issuer.request_count == 1
    finally:
        auth.close()


def test_secret_key_alone_needs_an_issuer() -> None:
    error = config_error(secret_key="sk_test_abcdefgh1234")
    assert "`issuer`" in str(error)
    assert "publishable_key" in str(error)


def test_api_url_defaults_to_clerk() -> None:
    auth = ClerkAuth(secret_key="sk_test_abcdefgh1234", issuer="https://clerk.example.com", env={})
    assert auth.jwks_uri == "https://api.clerk.com/v1/jwks"
    env_auth = ClerkAuth(
        secret_key="sk_test_abcdefgh1234",
        issuer="https://clerk.example.com",
        env={"CLERK_API_URL": "https://api.eu.example/"},
    )
    assert env_auth.jwks_uri == "https://api.eu.example/v1/jwks"


@pytest.mark.parametrize(
    "secret",
    ["pk_test_abcdefgh", "sk_zzzz", "sk_test", "sk_test_with space\x00", "token-abc", "sk_live_\n12345"],
)
def test_malformed_secret_keys(secret: str) -> None:
    error = config_error(secret_key=secret, issuer="https://clerk.example.com")
    assert "`secret_key` (env CLERK_SECRET_KEY)" in str(error)
    assert secret not in str(error)


def test_no_key_source_names_every_option() -> None:
    message = str(config_error())
    for option in ("publishable_key", "secret_key", "jwks_uri", "jwt_key"):
        assert option in message
        assert ENV_VARS[option] in message


# -- jwt_key: the networkless PEM ----------------------------------------------------------


@pytest.mark.parametrize("source", ["argument", "env", "env-escaped-newlines"])
def test_jwt_key_verifies_with_zero_requests(
    source: str, clerk_issuer: LocalIssuer, clock: FrozenClock, mint: Callable[..., str], other_key: RSAKey
) -> None:
    pem = clerk_issuer.public_pem()
    # A publishable key is configured too: the PEM still wins, nothing is fetched.
    env = {"CLERK_PUBLISHABLE_KEY": clerk_issuer.publishable_key}
    options: dict[str, Any] = {"clock": clock}
    if source == "argument":
        options["jwt_key"] = pem
    else:
        env["CLERK_JWT_KEY"] = pem.replace("\n", "\\n") if source == "env-escaped-newlines" else pem
    auth = ClerkAuth(env=env, **options)
    assert auth.jwks_uri is None
    assert auth.verify(mint()).user_id
    assert clerk_issuer.request_count == 0
    # A token from another key (same kid) is refused, without any request either.
    with pytest.raises(AuthError) as info:
        auth.verify(mint(key=other_key))
    assert info.value.reason == "token-invalid-signature"
    assert clerk_issuer.request_count == 0


@pytest.fixture(scope="module")
def other_key() -> RSAKey:
    """An RSA key that is not the issuer's."""
    return RSAKey.generate_key(2048, private=True)


def _pem(key: Any, private: bool) -> str:
    if private:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def small_rsa() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # the 1024-bit key, on import
@pytest.mark.parametrize(
    "which", ["private-pkcs8", "private-rsa", "ec-public", "rsa-1024", "garbage", "empty-pem"]
)
def test_unusable_jwt_keys(which: str, clerk_issuer: LocalIssuer, small_rsa: Any) -> None:
    if which == "private-pkcs8":
        pem = clerk_issuer.key.as_pem(private=True).decode()
    elif which == "private-rsa":
        pem = small_rsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
    elif which == "ec-public":
        pem = _pem(ec.generate_private_key(ec.SECP256R1()), private=False)
    elif which == "rsa-1024":
        pem = _pem(small_rsa, private=False)
    elif which == "garbage":
        pem = "not a key at all"
    else:
        pem = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----"
    error = config_error(jwt_key=pem, issuer="https://clerk.example.com")
    message = str(error)
    assert "`jwt_key` (env CLERK_JWT_KEY)" in message
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    assert not any(line in message for line in body if len(line) > 8)


# -- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://clerk.example.com/.well-known/jwks.json",
        "HTTPS://clerk.example.com/jwks",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9000/jwks",
        "http://127.5.6.7/jwks",
    ],
)
def test_accepted_jwks_uris(uri: str) -> None:
    assert ClerkAuth(jwks_uri=uri, issuer="https://clerk.example.com", env={}).jwks_uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://clerk.example.com/jwks",
        "http://127.0.0.1.evil.example/jwks",
        "http://localhost.evil.example/jwks",
        "http://0.0.0.0/jwks",
        "http://10.0.0.1/jwks",
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        "data:application/json,{}",
        "ftp://clerk.example.com/jwks",
        "//clerk.example.com/jwks",
        "clerk.example.com/jwks",
        "https://",
        "https:///jwks",
        "https://clerk.example.com:99999/jwks",
    ],
)
@pytest.mark.parametrize("option", ["jwks_uri", "api_url"])
def test_rejected_urls(uri: str, option: str) -> None:
    options: dict[str, Any] = {"issuer": "https://clerk.example.com", option: uri}
    if option == "api_url":
        options["secret_key"] = "sk_test_abcdefgh1234"
    error = config_error(**options)
    assert f"`{option}` (env {ENV_VARS[option]})" in str(error)


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_urls(blank: str) -> None:
    error = config_error(jwks_uri=blank, issuer="https://clerk.example.com")
    assert "`jwks_uri` (env CLERK_JWKS_URI)" in str(error)
    # An explicit blank Backend API URL is an error too, never a silent fallback.
    error = config_error(secret_key="sk_test_abcdefgh1234", api_url=blank, issuer="https://c.example")
    assert "`api_url` (env CLERK_API_URL)" in str(error)
    # In the environment, blank means unset: the default Backend API.
    env = {"CLERK_API_URL": blank, "CLERK_SECRET_KEY": "sk_test_abcdefgh1234"}
    assert ClerkAuth(issuer="https://c.example", env=env).jwks_uri == "https://api.clerk.com/v1/jwks"


@pytest.mark.parametrize("uri", ["http://clerk.example.com/jwks", "file:///etc/passwd"])
def test_rejected_url_from_env_names_the_variable(uri: str) -> None:
    error = config_error(env={"CLERK_JWKS_URI": uri, "CLERK_ISSUER": "https://clerk.example.com"})
    assert "CLERK_JWKS_URI" in str(error)


# -- numbers ------------------------------------------------------------------------------

BAD_NUMBERS = [-1, -0.001, math.nan, math.inf, -math.inf, 1e12, True, False, "5", None, [5]]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize(
    "option", ["clock_skew", "jwks_ttl", "jwks_cooldown", "jwks_max_stale", "http_timeout"]
)
def test_bad_durations_are_configuration_errors(option: str, value: Any) -> None:
    error = config_error(publishable_key=pk("clerk.example.com"), **{option: value})
    assert f"`{option}`" in str(error)


@pytest.mark.parametrize(
    ("option", "value"),
    [("clock_skew", 301), ("jwks_ttl", 0), ("jwks_ttl", 0.5), ("http_timeout", 0), ("http_timeout", 121)],
)
def test_out_of_range_durations(option: str, value: float) -> None:
    assert f"`{option}`" in str(config_error(publishable_key=pk("clerk.example.com"), **{option: value}))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("clock_skew", 0),
        ("clock_skew", 300),
        ("clock_skew", 2.5),
        ("jwks_cooldown", 0),
        ("jwks_max_stale", 0),
    ],
)
def test_edge_durations_are_accepted(option: str, value: float) -> None:
    auth = ClerkAuth(publishable_key=pk("clerk.example.com"), env={}, **{option: value})
    if option == "clock_skew":
        assert auth.clock_skew == value


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("name", ""),
        ("name", 5),
        ("authorize", "admin"),
        ("clock", 1700000000),
        ("token_cache_size", -1),
        ("token_cache_size", True),
        ("token_cache_size", 1.5),
        ("token_cache_bytes", -1),
        ("token_cache_bytes", False),
        ("token_cache_bytes", 1e6),
        ("machine_cache_size", -1),
        ("machine_cache_ttl", -1),
        ("machine_negative_cache_ttl", float("nan")),
        ("backend_api_rate", 0),
        ("user_cache_ttl", -1),
        ("user_cache_ttl", float("inf")),
        ("user_cache_size", -1),
        ("user_cache_size", True),
        ("issuer", ""),
        ("issuer", "   "),
    ],
)
def test_other_malformed_options(option: str, value: Any) -> None:
    assert f"`{option}`" in str(config_error(publishable_key=pk("clerk.example.com"), **{option: value}))


def test_every_env_backed_option_error_names_its_variable() -> None:
    cases = {
        "publishable_key": {"CLERK_PUBLISHABLE_KEY": "pk_nope"},
        "secret_key": {"CLERK_SECRET_KEY": "nope", "CLERK_ISSUER": "https://c.example"},
        "jwks_uri": {"CLERK_JWKS_URI": "http://c.example", "CLERK_ISSUER": "https://c.example"},
        "jwt_key": {"CLERK_JWT_KEY": "nope", "CLERK_ISSUER": "https://c.example"},
        "api_url": {"CLERK_API_URL": "http://c.example", "CLERK_SECRET_KEY": "sk_test_abcdefgh"}
        | {"CLERK_ISSUER": "https://c.example"},
        "authorized_parties": {"CLERK_AUTHORIZED_PARTIES": ",", "CLERK_PUBLISHABLE_KEY": pk("c.example")},
        "machine_secret_key": {"CLERK_MACHINE_SECRET_KEY": "ak_ x", "CLERK_PUBLISHABLE_KEY": pk("c.example")},
        "organization_id": {"CLERK_ORGANIZATION_ID": "acme", "CLERK_PUBLISHABLE_KEY": pk("c.example")}
        | {"CLERK_SECRET_KEY": "sk_test_abcdefgh"},
        "organization_slug": {"CLERK_ORGANIZATION_SLUG": "a/b", "CLERK_PUBLISHABLE_KEY": pk("c.example")}
        | {"CLERK_SECRET_KEY": "sk_test_abcdefgh"},
    }
    assert set(cases) | {"issuer"} == set(ENV_VARS)
    for option, env in cases.items():
        message = str(config_error(env=env))
        assert f"`{option}` (env {ENV_VARS[option]})" in message, option
