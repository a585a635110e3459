"""Microsoft Entra ID as the tests play it for Azure Monitor's secure webhook: a key pair
made here, its public half in a JWKS file (as `login.microsoftonline.com/<tenant>/
discovery/v2.0/keys` serves it), and access tokens signed RS256 with the claims Entra
puts in an app-only token (iss, aud, exp, nbf, iat, tid, appid)."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = f"https://sts.windows.net/{TENANT}/"
AUDIENCE = "api://remediator-alerts"
# The "Azure Monitor Alerts" first-party application, as the token's appid.
AZURE_MONITOR_APP = "461e8683-5575-4561-ac7f-899cc907d62a"


@dataclass
class EntraIssuer:
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key())
        )
        return {**public, "kid": self.kid, "use": "sig", "kty": "RSA"}

    def jwks(self, *others: EntraIssuer) -> bytes:
        return json.dumps({"keys": [self.jwk(), *(o.jwk() for o in others)]}).encode()

    def token(self, *, issuer: str = ISSUER, audience: str = AUDIENCE,
              expires_in: float = 3600, **claims: Any) -> str:  # fmt: skip
        now = int(time.time())
        body = {"iss": issuer, "aud": audience, "iat": now - 5, "nbf": now - 5,
                "exp": int(now + expires_in), "tid": TENANT, "appid": AZURE_MONITOR_APP,
                "oid": str(uuid.uuid4()), **claims}  # fmt: skip
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


def _written(issuer: EntraIssuer) -> Path:
    path = Path(tempfile.mkdtemp(prefix="entra-")) / "jwks.json"
    path.write_bytes(issuer.jwks())
    return path


ENTRA = EntraIssuer()
# The JWKS every test's `azure_monitor` source reads (made once per test process).
JWKS_FILE = _written(ENTRA)


def entra_config(jwks_file: Path = JWKS_FILE) -> dict[str, Any]:
    return {"entra": {"jwks_file": str(jwks_file), "issuer": ISSUER, "audience": AUDIENCE}}


def sign_azure_monitor(body: bytes, *, token: str | None = None) -> dict[str, str]:  # noqa: ARG001
    """The secure webhook's call: a fresh Entra ID token; Azure signs no body."""
    return {"Authorization": f"Bearer {token or ENTRA.token()}"}
