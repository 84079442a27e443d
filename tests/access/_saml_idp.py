"""A SAML 2.0 identity provider (pysaml2's Server) for the tests.

Keys and self-signed certificates are generated at test time with
``cryptography``; nothing secret is committed. The IdP answers AuthnRequests
with a signed assertion for whichever identity the test sets. It keeps a
sign-in session: the AuthnInstant is when the user last authenticated,
renewed only for a request with ``ForceAuthn="true"`` unless
``ignore_force`` makes it an IdP that ignores it; ``requests`` records each
request's ForceAuthn.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.assertion import Policy
from saml2.config import IdPConfig, SPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

from trialpacs.access.saml import sp_config_dict, xmlsec_binary

IDP_ENTITY = "http://idp.test/metadata"
IDP_SSO = "http://idp.test/sso/redirect"
SP_ENTITY = "http://testserver/auth/saml/metadata"
ACS = "http://testserver/auth/saml/acs"


def key_and_cert(directory: Path, name: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@dataclass
class Idp:
    server: Server
    metadata_file: Path
    sp_key: Path
    sp_cert: Path
    lifetime_minutes: int = 5
    session_instant: float | None = None
    ignore_force: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)

    def answer(
        self, redirect_location: str, identity: dict[str, list[str]], *, sign: bool = True
    ) -> str:
        """The base64 SAMLResponse the IdP would POST back for this AuthnRequest."""
        query = parse_qs(urlparse(redirect_location).query)
        request = self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        message = request.message
        force = str(message.force_authn or "").lower() == "true"
        self.requests.append({"id": str(message.id), "force_authn": str(message.force_authn)})
        if self.session_instant is None or (force and not self.ignore_force):
            self.session_instant = time.time()  # the user authenticates here
        policy = Policy(
            {"default": {"lifetime": {"minutes": self.lifetime_minutes}}},
            mds=self.server.metadata,
        )
        response = self.server.create_authn_response(
            identity=identity,
            in_response_to=message.id,
            destination=message.assertion_consumer_service_url,
            sp_entity_id=message.issuer.text,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=identity["uid"][0]),
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
                "authn_instant": self.session_instant,
            },
            sign_assertion=sign,
            sign_response=False,
            release_policy=policy,
        )
        return base64.b64encode(str(response).encode()).decode()


def make_idp(directory: Path) -> Idp:
    directory.mkdir(parents=True, exist_ok=True)
    idp_key, idp_cert = key_and_cert(directory, "idp")
    sp_key, sp_cert = key_and_cert(directory, "sp")
    sp_conf = SPConfig()
    sp_conf.load(sp_config_dict(SP_ENTITY, ACS, None, str(sp_key), str(sp_cert)))
    sp_meta = directory / "sp-metadata.xml"
    sp_meta.write_text(str(entity_descriptor(sp_conf)))
    idp_dict: dict[str, Any] = {
        "entityid": IDP_ENTITY,
        "xmlsec_binary": xmlsec_binary(),
        "key_file": str(idp_key),
        "cert_file": str(idp_cert),
        "metadata": {"local": [str(sp_meta)]},
        "service": {
            "idp": {
                "endpoints": {"single_sign_on_service": [(IDP_SSO, BINDING_HTTP_REDIRECT)]},
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                "policy": {"default": {"lifetime": {"minutes": 5}}},
            }
        },
    }
    idp_conf = IdPConfig()
    idp_conf.load(idp_dict)
    idp_meta = directory / "idp-metadata.xml"
    idp_meta.write_text(str(entity_descriptor(idp_conf)))
    assert BINDING_HTTP_POST  # the SP's ACS binding, declared in its metadata
    return Idp(Server(config=idp_conf), idp_meta, sp_key, sp_cert)
