"""Who is calling, and whether their roles allow the call: the one place /api checks it.

A caller is an API token's identity, or, on a connection from a trusted SSO proxy's
address, the person that proxy names in its headers. Each route declares the permission
it needs by the type of its `identity` parameter (`Reader`, `Operator`, ...); the
identity found is kept on the request for the audit log, refused or not.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from ipaddress import ip_address
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config.settings import Settings
from app.errors import Forbidden, IdentityMismatch, Unauthorized
from app.identity import IDENTITY_NAME, Identity, Permission, Role, roles_granting

log = logging.getLogger("remediator.auth")

bearer = HTTPBearer(auto_error=False, description="A token from `api_tokens`.")

_NAME = re.compile(IDENTITY_NAME)


class Authenticator:
    """The identities the configuration defines, and how a request proves one of them."""

    def __init__(self, settings: Settings) -> None:
        self._tokens = [
            (token.digest(), Identity(token.name, frozenset(token.roles), "token"))
            for token in settings.api_tokens
        ]
        self._proxy = settings.auth.trusted_proxy

    @property
    def closed(self) -> bool:
        return not self._tokens and self._proxy is None

    def named(self, name: str) -> Identity | None:
        """The API token identity called `name` (for an identity another credential,
        a Slack user id, stands for)."""
        return next((i for _, i in self._tokens if i.name == name), None)

    def from_token(self, token: str) -> Identity | None:
        # Digests of equal length compared in constant time, every entry every time: how
        # long this takes says nothing about which token, or how much of one, matched.
        digest = hashlib.sha256(token.encode()).digest()
        found: Identity | None = None
        for known, identity in self._tokens:
            if hmac.compare_digest(digest, known):
                found = identity
        return found

    def _identity_headers(self) -> list[str]:
        proxy = self._proxy
        if proxy is None:
            return ["authorization"]
        return ["authorization", proxy.user_header, *filter(None, [proxy.groups_header])]

    def refuse_repeated_headers(self, request: Request) -> None:
        """An identity header given twice is refused, from any address: a proxy that
        appends rather than replaces would otherwise let a client's own copy be read."""
        for name in self._identity_headers():
            if len(request.headers.getlist(name)) > 1:
                # Not a mistake a client makes: someone is trying the proxy.
                peer = request.client.host if request.client else "?"
                log.warning("refused: the %s header more than once, from %s", name, peer)
                raise Unauthorized(f"the {name} header is given more than once")

    def client_address(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """Who made the call, as the audit records it. Through a trusted proxy, the
        address that proxy saw: the rightmost `X-Forwarded-For` entry not itself a
        trusted proxy (the leftmost is whatever the client wrote), `<it> via <proxy>`."""
        proxy = self._proxy
        if proxy is None or peer is None or not forwarded_for:
            return peer
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        seen = next((hop for hop in reversed(hops) if hop and not self._trusted(hop)), None)
        return f"{seen} via {peer}" if seen else peer

    def _trusted(self, address: str) -> bool:
        assert self._proxy is not None
        try:
            parsed = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._proxy.cidrs)

    def from_proxy(self, request: Request) -> Identity | None:
        """The proxy's signed-in person, on a connection from a trusted proxy address
        only: from anywhere else the same headers are anyone's to write, and ignored."""
        proxy = self._proxy
        if proxy is None or request.client is None:
            return None
        try:
            address = ip_address(request.client.host)
        except ValueError:
            return None
        if not self._trusted(str(address)):
            return None
        user = request.headers.get(proxy.user_header, "").strip()
        if not user:
            return None
        if not _NAME.fullmatch(user):
            raise Unauthorized(f"the proxy's {proxy.user_header} is not a name this service takes")
        groups = request.headers.get(proxy.groups_header, "") if proxy.groups_header else ""
        roles: set[Role] = {
            proxy.roles[g.strip()] for g in groups.split(",") if g.strip() in proxy.roles
        }
        return Identity(user, frozenset(roles), "sso")

    def identify(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> Identity:
        if self.closed:
            raise Unauthorized("no api_tokens (or trusted proxy) are configured, so /api is closed")
        self.refuse_repeated_headers(request)
        identity = self.from_proxy(request)
        if identity is not None:
            return identity
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("missing `Authorization: Bearer <token>`")
        identity = self.from_token(credentials.credentials)
        if identity is None:
            raise Unauthorized("the API token is not valid")
        return identity


def authenticator(request: Request) -> Authenticator:
    found: Authenticator = request.app.state.authenticator
    return found


def _requiring(permission: Permission | None) -> Callable[..., Identity]:
    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Identity:
        identity = authenticator(request).identify(request, credentials)
        request.state.identity = identity
        if permission is not None and not identity.may(permission):
            needed = " or ".join(roles_granting(permission))
            raise Forbidden(
                f"{request.method} {request.url.path} needs role {needed}; "
                f"{identity.name} has {identity.role_names}"
            )
        return identity

    return check


# Any identity, whatever its roles (who am I).
Caller = Annotated[Identity, Depends(_requiring(None))]
Reader = Annotated[Identity, Depends(_requiring("read"))]
Operator = Annotated[Identity, Depends(_requiring("operate"))]
VersionRecorder = Annotated[Identity, Depends(_requiring("record_version"))]
Admin = Annotated[Identity, Depends(_requiring("administer"))]
# For a route whose need for a token is a setting (/metrics).
require_read = _requiring("read")


def acting_as(identity: Identity, claimed: str | None) -> None:
    """A `by` in a body (an old client's) must be the caller: the name on an action is
    the credential's, never what the caller types."""
    if claimed is not None and claimed not in (identity.name, identity.label):
        raise IdentityMismatch(
            f"`by` is {claimed!r} but this call is authenticated as {identity.name!r}: the "
            "name recorded is the credential's; leave `by` out"
        )
