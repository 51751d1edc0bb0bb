"""SOAP faults with ONVIF subcodes (Core spec 5.11, "Error handling"), and their wire form.

Handlers raise a `SoapFault`; the HTTP layer turns it into `fault_envelope(...)` with
`fault.http_status`, the one place where errors become wire codes. HTTP status (SOAP 1.2 HTTP
binding, which the ONVIF Core spec follows): 400 for env:Sender, 500 for everything else.

Authentication (Core spec 5.12.1 and the interop notes): a request that carries *no* credentials
for an operation that needs them gets HTTP 401 with a Digest challenge (the client may have meant
HTTP Digest), still with a SOAP fault body (env:Sender / ter:NotAuthorized) so that clients that
only read SOAP see why. `not_authorized(challenge=True)` marks that case: `http_status` is then
401 and the HTTP layer adds `WWW-Authenticate` from `DigestAuth.challenge()`. Wrong WS-Security
credentials, or a user whose level does not allow the operation, are a plain 400 fault.
"""

from __future__ import annotations

from vcam.errors import VcamError

SENDER = "Sender"
RECEIVER = "Receiver"
VERSION_MISMATCH = "VersionMismatch"
MUST_UNDERSTAND = "MustUnderstand"
_CODES = (SENDER, RECEIVER, VERSION_MISMATCH, MUST_UNDERSTAND, "DataEncodingUnknown")


class SoapFault(VcamError):
    """A SOAP fault. `subcodes` are prefixed QNames, outermost first (e.g. `ter:InvalidArgVal`,
    `ter:NoProfile`); the prefixes used must be declared on the fault envelope (see soap.NSMAP).
    `reason` and `detail` are sent to the client; `private` is for logs only (never sent: it may
    say whether a user exists)."""

    def __init__(
        self,
        code: str,
        subcodes: list[str] | None = None,
        reason: str = "",
        detail: str | None = None,
        *,
        private: str = "",
        challenge: bool = False,
        status: int | None = None,
    ) -> None:
        if code not in _CODES:
            raise ValueError(f"unknown SOAP fault code {code!r}")
        self.code = code
        self.subcodes = list(subcodes or [])
        self.reason = reason or code
        self.detail = detail
        self.private = private
        self.challenge = challenge
        self._status = status
        super().__init__(f"{code}/{'/'.join(self.subcodes)}: {self.reason}")

    @property
    def http_status(self) -> int:
        if self._status is not None:
            return self._status
        if self.challenge:
            return 401
        return 400 if self.code == SENDER else 500


# -- factories (Core spec table "Generic faults" and the ter: codes the services use) ----------


def not_authorized(private: str = "", *, challenge: bool = False) -> SoapFault:
    # The reason is the same for every cause, so a client cannot probe which users exist.
    return SoapFault(
        SENDER,
        ["ter:NotAuthorized"],
        "Sender not Authorized",
        private=private,
        challenge=challenge,
    )


def action_not_supported(qname: str) -> SoapFault:
    return SoapFault(
        RECEIVER,
        ["ter:ActionNotSupported"],
        "Optional Action Not Implemented",
        detail=f"{qname} is not implemented by this device",
    )


def action_failed(reason: str) -> SoapFault:
    return SoapFault(RECEIVER, ["ter:Action"], reason)


def invalid_arg(reason: str, subcode: str | None = None) -> SoapFault:
    """ter:InvalidArgVal, optionally refined (e.g. `ter:NoProfile`, `ter:NoConfig`)."""
    return SoapFault(SENDER, ["ter:InvalidArgVal", *([subcode] if subcode else [])], reason)


def invalid_args(reason: str) -> SoapFault:
    return SoapFault(SENDER, ["ter:InvalidArgs"], reason)


def well_formed(reason: str) -> SoapFault:
    return SoapFault(SENDER, ["ter:WellFormed"], "XML Well-formed violation", detail=reason)


def tag_mismatch(reason: str) -> SoapFault:
    return SoapFault(SENDER, ["ter:TagMismatch"], "Tag Mismatch", detail=reason)


def version_mismatch(namespace: str) -> SoapFault:
    return SoapFault(
        VERSION_MISMATCH, [], "SOAP version mismatch", detail=f"envelope namespace {namespace!r}"
    )


def must_understand(header: str) -> SoapFault:
    return SoapFault(MUST_UNDERSTAND, [], "SOAP header block not understood", detail=header)


def unsupported_media_type(content_type: str) -> SoapFault:
    return SoapFault(
        SENDER, ["ter:WellFormed"], f"unsupported Content-Type {content_type[:80]!r}", status=415
    )


def too_large(what: str) -> SoapFault:
    return SoapFault(SENDER, ["ter:WellFormed"], "Request too large", detail=what, status=413)


# -- wire form ----------------------------------------------------------------------------------

_SOAP11_CODES = {SENDER: "Client", RECEIVER: "Server"}


def fault_envelope(
    fault: SoapFault, version: str | None = None, relates_to: str | None = None
) -> bytes:
    """The fault as a SOAP envelope in the request's version (SOAP 1.2 when unknown), with the
    WS-Addressing fault action header that event clients look for."""
    # Imported here: soap.py raises these faults, and owns the envelope and namespaces.
    from lxml import etree

    from vcam.onvif.soap import FAULT_ACTION, SOAP11, SOAP12, SoapVersion, envelope

    ver = SoapVersion(version) if version in (SOAP11, SOAP12) else SoapVersion.SOAP12
    env = str(ver)
    xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
    el = etree.Element(f"{{{env}}}Fault")
    if ver is SoapVersion.SOAP12:
        code = etree.SubElement(el, f"{{{env}}}Code")
        etree.SubElement(code, f"{{{env}}}Value").text = f"env:{fault.code}"
        parent = code
        for sub in fault.subcodes:  # nested: Subcode/Value then Subcode inside Subcode
            parent = etree.SubElement(parent, f"{{{env}}}Subcode")
            etree.SubElement(parent, f"{{{env}}}Value").text = sub
        reason = etree.SubElement(el, f"{{{env}}}Reason")
        etree.SubElement(reason, f"{{{env}}}Text", {xml_lang: "en"}).text = fault.reason
        if fault.detail is not None:
            detail = etree.SubElement(el, f"{{{env}}}Detail")
            etree.SubElement(detail, f"{{{env}}}Text", {xml_lang: "en"}).text = fault.detail
    else:  # SOAP 1.1 has no subcodes: they go into detail, after the reason
        code_11 = _SOAP11_CODES.get(fault.code, fault.code)
        etree.SubElement(el, "faultcode").text = f"env:{code_11}"
        etree.SubElement(el, "faultstring", {xml_lang: "en"}).text = fault.reason
        text = " ".join([*fault.subcodes, *([fault.detail] if fault.detail else [])])
        if text:
            etree.SubElement(el, "detail").text = text
    return envelope([el], version=ver, relates_to=relates_to, action=FAULT_ACTION)
