"""API Gateway's HTTP API JWT authorizer, as the local stack runs it, and the stack's own token issuer.

What a route requires comes from the template (its `security`, after SAM's transform). A request to a route with a
JWT authorizer is checked as API Gateway documents it ("Control access to HTTP APIs with JWT authorizers"): the
token from the identity source, alone or after `Bearer`; its algorithm and signature against the issuer's keys (RSA
only), its `kid` naming one of them; `iss`; `aud`, or `client_id` when there is no `aud`; `exp` after now; `nbf` and
`iat` before now; and, when the route has scopes, one of them in `scope` or `scp`. A refusal is API Gateway's:
401 `{"message":"Unauthorized"}`, with `www-authenticate: Bearer scope="" error="invalid_token"
error_description="..."` for a token it could read. The claims of a valid token reach the function in
`requestContext.authorizer.jwt`, each value as text, as HTTP APIs pass them.

The issuer: a key pair made at each start of the stack; `python -m devstack token` signs with the private key,
kept under .devstack/ in the checkout (mode 0600) for as long as that stack runs.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

ISSUER = "https://devstack.localhost"
AUDIENCE = "devstack"
ISSUER_FILE = "jwt-issuer.json"
STATE_DIR = Path(__file__).resolve().parent.parent / ".devstack"
# API Gateway's JWT authorizers accept RSA-based algorithms only.
ALGORITHMS = ["RS256", "RS384", "RS512"]
UNAUTHORIZED = json.dumps({"message": "Unauthorized"}, separators=(",", ":"))
FORBIDDEN = json.dumps({"message": "Forbidden"}, separators=(",", ":"))


@dataclass(frozen=True)
class LocalIssuer:
    issuer: str
    audience: str
    key: RSAKey

    @classmethod
    def generate(cls, issuer: str = ISSUER, audience: str = AUDIENCE) -> LocalIssuer:
        key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"})
        return cls(issuer, audience, key)

    def save(self, directory: Path = STATE_DIR) -> Path:
        """Write the issuer, audience and private key where `python -m devstack token` reads them, readable by its
        owner only."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / ISSUER_FILE
        text = json.dumps({"issuer": self.issuer, "audience": self.audience, "key": self.key.as_dict(private=True)})
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            os.fchmod(descriptor, 0o600)  # also when it existed with wider permissions
            file.write(text)
        return path

    @classmethod
    def load(cls, directory: Path = STATE_DIR) -> LocalIssuer:
        path = directory / ISSUER_FILE
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no local issuer at {path}: start the stack with AUTH_TYPE=JWT make run") from None
        return cls(saved["issuer"], saved["audience"], RSAKey.import_key(saved["key"]))

    def token(self, subject: str, *, expires_in: float = 3600, claims: dict[str, Any] | None = None) -> str:
        """A token for `subject`, valid for `expires_in` seconds (negative: already expired)."""
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.audience, "sub": subject, "iat": now, "exp": int(now + expires_in)}
        header = {"alg": "RS256", "typ": "JWT", "kid": self.key.kid}
        return jwt.encode(header, payload | (claims or {}), self.key)

    def public_keys(self) -> KeySet:
        return KeySet([RSAKey.import_key(self.key.as_dict(private=False))])


@dataclass(frozen=True)
class JwtConfiguration:
    """One JWT authorizer of the template (its jwtConfiguration and identitySource)."""

    issuer: str
    audience: tuple[str, ...]
    identity_header: str = "Authorization"


@dataclass(frozen=True)
class Refusal:
    status: int
    body: str
    headers: dict[str, str]


def _refused(description: str | None) -> Refusal:
    headers = {"Content-Type": "application/json"}
    if description is not None:
        headers["www-authenticate"] = f'Bearer scope="" error="invalid_token" error_description="{description}"'
    return Refusal(401, UNAUTHORIZED, headers)


def claim_text(value: Any) -> str:
    """A claim's value as HTTP APIs pass it to the function: text, a list as `[a b]`."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(claim_text(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":"))


class JwtAuthorizer:
    def __init__(self, configuration: JwtConfiguration, keys: KeySet) -> None:
        self._configuration = configuration
        self._keys = keys

    def authorize(self, headers: Any, scopes: list[str]) -> dict[str, Any] | Refusal:
        """The event's `requestContext.authorizer` for a request with these headers, or API Gateway's refusal."""
        value = headers.get(self._configuration.identity_header)
        if not value:
            return _refused(None)
        token = value.split(" ", 1)[1] if value.startswith("Bearer ") else value
        try:
            claims = jwt.decode(token.strip(), self._keys, algorithms=ALGORITHMS).claims
        except JoseError:
            return _refused("the token could not be verified with the issuer's keys")
        description = self._invalid_claims(claims)
        if description is not None:
            return _refused(description)
        granted = _scopes(claims)
        if scopes and not set(scopes) & set(granted):
            return Refusal(
                403,
                FORBIDDEN,
                {
                    "Content-Type": "application/json",
                    "www-authenticate": f'Bearer scope="{" ".join(scopes)}" error="insufficient_scope" '
                    'error_description="the token does not have the required scopes"',
                },
            )
        text = {name: claim_text(value) for name, value in claims.items()}
        return {"jwt": {"claims": text, "scopes": granted if scopes else None}}

    def _invalid_claims(self, claims: dict[str, Any]) -> str | None:
        now = time.time()
        if claims.get("iss") != self._configuration.issuer:
            return "the token does not have a valid issuer"
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        audiences = audience if isinstance(audience, list) else [audience]
        if not set(self._configuration.audience) & {str(item) for item in audiences if item is not None}:
            return "the token does not have a valid audience"
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now:
            return "the token has expired"
        if isinstance(claims.get("nbf"), int | float) and claims["nbf"] > now:
            return "the token is not valid yet"
        if isinstance(claims.get("iat"), int | float) and claims["iat"] > now:
            return "the token was issued in the future"
        return None


def _scopes(claims: dict[str, Any]) -> list[str]:
    granted = claims.get("scope", claims.get("scp", []))
    return granted.split() if isinstance(granted, str) else [str(item) for item in granted]
