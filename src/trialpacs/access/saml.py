"""SAML 2.0 sign-in as a service provider (pysaml2, signatures checked by Debian's xmlsec1).

The AuthnRequest goes out over HTTP-Redirect; the Response comes back over
HTTP-POST and must carry a signed assertion from the IdP in our metadata,
addressed to us, in response to a request we made, within its validity
window. Anything else is :class:`AuthFailed`.
"""

from __future__ import annotations

import calendar
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig

from trialpacs.access.external import map_grants, sign_in_external
from trialpacs.access.local import AuthFailed
from trialpacs.index.db import Database
from trialpacs.settings import Settings

log = logging.getLogger(__name__)


def xmlsec_binary() -> str:
    found = shutil.which("xmlsec1")
    if found is None:
        raise RuntimeError("SAML needs the xmlsec1 program (Debian package xmlsec1)")
    return found


def sp_config_dict(
    entity_id: str,
    acs_url: str,
    idp_metadata: str | None,
    key_file: str | None = None,
    cert_file: str | None = None,
) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "entityid": entity_id,
        "xmlsec_binary": xmlsec_binary(),
        "allow_unknown_attributes": True,
        "accepted_time_diff": 60,
        "service": {
            "sp": {
                "endpoints": {"assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)]},
                "allow_unsolicited": False,
                "authn_requests_signed": bool(key_file),
                "want_assertions_signed": True,
                "want_response_signed": False,
                "name_id_format_allow_create": True,
            }
        },
    }
    if idp_metadata:
        conf["metadata"] = {"local": [idp_metadata]}
    if key_file and cert_file:
        conf["key_file"] = key_file
        conf["cert_file"] = cert_file
    return conf


@dataclass
class SamlServiceProvider:
    entity_id: str
    acs_url: str
    idp_metadata: str
    key_file: str | None = None
    cert_file: str | None = None
    username_attribute: str = "uid"
    roles_attribute: str = "groups"
    attribute_roles: Mapping[str, list[str]] = field(default_factory=dict)
    _client: Saml2Client | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> SamlServiceProvider:
        if not (s.saml_idp_metadata and s.saml_sp_entity_id and s.saml_acs_url):
            raise ValueError("saml_idp_metadata, saml_sp_entity_id and saml_acs_url must be set")
        return cls(
            entity_id=s.saml_sp_entity_id,
            acs_url=s.saml_acs_url,
            idp_metadata=s.saml_idp_metadata,
            key_file=s.saml_sp_key_file,
            cert_file=s.saml_sp_cert_file,
            username_attribute=s.saml_username_attribute,
            roles_attribute=s.saml_roles_attribute,
            attribute_roles=s.saml_attribute_roles,
        )

    def client(self) -> Saml2Client:
        if self._client is None:
            conf = SPConfig()
            conf.load(
                sp_config_dict(
                    self.entity_id, self.acs_url, self.idp_metadata, self.key_file, self.cert_file
                )
            )
            self._client = Saml2Client(config=conf)
        return self._client

    def begin(self, relay_state: str, *, force: bool = False) -> tuple[str, str]:
        """(request id to remember, URL to send the browser to).

        ``force`` (an e-signature) sends ``ForceAuthn="true"``: the IdP must
        authenticate the user again rather than reuse its session.
        """
        extra = {"force_authn": "true"} if force else {}
        request_id, info = self.client().prepare_for_authenticate(
            relay_state=relay_state, binding=BINDING_HTTP_REDIRECT, **extra
        )
        location = dict(info["headers"])["Location"]
        return str(request_id), str(location)

    def finish(self, saml_response: str, request_id: str) -> tuple[str, dict[str, list[str]]]:
        """(name, attributes) from a verified response to ``request_id``."""
        name, attrs, _ = self.finish_with_instant(saml_response, request_id)
        return name, attrs

    def finish_with_instant(
        self, saml_response: str, request_id: str
    ) -> tuple[str, dict[str, list[str]], float]:
        """Like :meth:`finish`, plus the assertion's AuthnInstant (epoch seconds, 0 if absent)."""
        try:
            response = self.client().parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={request_id: "/"}
            )
        except Exception as exc:  # pysaml2 raises many types; each means "not signed in"
            log.info("SAML response refused: %s: %s", type(exc).__name__, exc)
            raise AuthFailed() from None
        if response is None or not response.assertion:
            raise AuthFailed()
        attrs = {k: [str(v) for v in vs] for k, vs in (response.get_identity() or {}).items()}
        subject = response.get_subject()
        values = attrs.get(self.username_attribute) or []
        name = values[0] if values else (subject.text if subject is not None else "")
        if not name:
            raise AuthFailed()
        return str(name), attrs, _authn_instant(response.assertion)

    def external_id(self, name: str) -> str:
        """The account key: IdP entity id and name, as ``sign_in`` stores it."""
        idp = self.client().metadata.identity_providers()
        return f"{idp[0] if idp else ''}|{name}"

    def sign_in(self, db: Database, name: str, attrs: Mapping[str, list[str]]) -> int:
        return sign_in_external(
            db,
            "saml",
            username=name,
            external_id=self.external_id(name),
            grants=map_grants(attrs.get(self.roles_attribute, []), self.attribute_roles),
            display_name=(attrs.get("displayName") or attrs.get("cn") or [""])[0],
            email=(attrs.get("mail") or attrs.get("email") or [""])[0],
        )


def _authn_instant(assertion: Any) -> float:
    """Latest AuthnInstant of the assertion's AuthnStatements (0 when there is none)."""
    from saml2.time_util import str_to_time

    found = 0.0
    statements = getattr(assertion, "authn_statement", None) or []
    for statement in statements:
        instant = getattr(statement, "authn_instant", None)
        if instant:
            found = max(found, calendar.timegm(str_to_time(instant)))
    return found
