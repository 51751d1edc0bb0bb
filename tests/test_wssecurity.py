"""WS-Security UsernameToken: the known-answer vector, refusals, client variants, replay, and a
real third-party implementation (zeep) building the header."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
from lxml import etree

from vcam.auth.users import User, UserLevel, UserStore
from vcam.onvif.faults import SoapFault
from vcam.onvif.soap import SOAP12, WSSE, WSU, parse_envelope
from vcam.onvif.wssecurity import (
    PASSWORD_DIGEST,
    PASSWORD_TEXT,
    UsernameTokenAuth,
    parse_created,
    password_digest,
)

CORPUS = Path(__file__).parent / "corpus" / "soap"
B64 = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
PW = "Vcam-Test-Pass1"
T0 = parse_created("2024-05-01T10:00:00Z")
USERS = UserStore(
    [
        User("admin", PW, UserLevel.ADMINISTRATOR),
        User("user", "userpassword", UserLevel.USER),
        User("spacey", " pass word ", UserLevel.USER),
    ]
)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(
    *,
    user: str | None = "admin",
    password: str = PW,
    nonce: bytes | None = b"0123456789abcdef",
    created: str | None = "2024-05-01T10:00:00Z",
    ptype: str | None = PASSWORD_DIGEST,
    digest: str | None = None,
    encoding: str | None = B64,
    default_ns: bool = False,
    created_ns: str = WSU,
    extra: str = "",
) -> etree._Element:
    """A soap Header with one UsernameToken, written as clients write it."""
    if digest is None:
        digest = password_digest(nonce or b"", created or "", password)
    if ptype == PASSWORD_TEXT:
        digest = password
    p = "" if default_ns else "wsse:"
    parts = [f"<{p}Username>{user}</{p}Username>" if user is not None else ""]
    type_attr = f' Type="{ptype}"' if ptype is not None else ""
    parts.append(f"<{p}Password{type_attr}>{digest}</{p}Password>")
    if nonce is not None:
        enc = f' EncodingType="{encoding}"' if encoding is not None else ""
        parts.append(f"<{p}Nonce{enc}>{base64.b64encode(nonce).decode()}</{p}Nonce>")
    if created is not None:
        parts.append(f'<c:Created xmlns:c="{created_ns}">{created}</c:Created>')
    body = "".join(parts) + extra
    if default_ns:
        sec = (
            f'<Security s:mustUnderstand="1" xmlns="{WSSE}"><UsernameToken>{body}</UsernameToken>'
            "</Security>"
        )
    else:
        sec = (
            f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>{body}</wsse:UsernameToken>'
            "</wsse:Security>"
        )
    return etree.fromstring(f'<s:Header xmlns:s="{SOAP12}">{sec}</s:Header>')


def auth(clock: Clock | None = None, **kw: object) -> UsernameTokenAuth:
    return UsernameTokenAuth(USERS, clock=clock or Clock(), **kw)  # type: ignore[arg-type]


def refused(a: UsernameTokenAuth, header: etree._Element) -> SoapFault:
    with pytest.raises(SoapFault) as info:
        a.verify(header)
    fault = info.value
    # Every cause looks the same on the wire: no probing for user names.
    assert (fault.code, fault.subcodes, fault.reason) == (
        "Sender",
        ["ter:NotAuthorized"],
        "Sender not Authorized",
    )
    assert fault.http_status == 400 and not fault.challenge
    return fault


# -- the known-answer vector -------------------------------------------------------------------


def test_known_answer_vector() -> None:
    nonce = base64.b64decode("LKqI6G/AikKCQrN0zqZFlg==")
    assert password_digest(nonce, "2010-09-16T07:50:45Z", "userpassword") == (
        "tuOSpGlFlIXsozq4HFNeeGeFLEI="
    )
    header = token(
        user="user",
        nonce=nonce,
        created="2010-09-16T07:50:45Z",
        digest="tuOSpGlFlIXsozq4HFNeeGeFLEI=",
    )
    a = auth(Clock(parse_created("2010-09-16T07:50:45Z") + 10))
    user = a.verify(header)
    assert user is not None and user.username == "user"


# -- Created formats ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2024-05-01T10:00:00Z", 0.0),
        ("2024-05-01T10:00:00.123Z", 0.123),
        ("2024-05-01T10:00:00.123456789Z", 0.123456),  # go2rtc: nanoseconds
        ("2024-05-01T10:00:00+00:00", 0.0),  # zeep
        ("2024-05-01T10:00:00.5+00:00", 0.5),
        ("2024-05-01T12:00:00+02:00", 0.0),
        ("2024-05-01T07:30:00-0230", 0.0),
        ("2024-05-01T10:00:00", 0.0),  # no zone: UTC
        ("2024-05-01t10:00:00z", 0.0),
        (" 2024-05-01T10:00:00Z\n", 0.0),
    ],
)
def test_parse_created(text: str, offset: float) -> None:
    assert parse_created(text) == pytest.approx(T0 + offset, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2024-05-01",
        "2024-13-01T10:00:00Z",
        "2024-05-01T25:00:00Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_parse_created_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_created(text)


# -- refusals ----------------------------------------------------------------------------------


def test_no_security_header_means_no_ws_credentials() -> None:
    a = auth()
    assert a.verify(None) is None
    other = etree.fromstring(f'<s:Header xmlns:s="{SOAP12}"><x xmlns="urn:x"/></s:Header>')
    assert a.verify(other) is None


@pytest.mark.parametrize(
    ("case", "kwargs"),
    [
        ("no nonce", {"nonce": None}),
        ("no created", {"created": None}),
        ("no username", {"user": None}),
        ("empty username", {"user": ""}),
        ("unknown user", {"user": "mallory"}),
        ("wrong password", {"password": "guess"}),
        ("wrong digest", {"digest": "tuOSpGlFlIXsozq4HFNeeGeFLEI="}),
        ("digest not base64 of sha1", {"digest": "x"}),
        ("stale", {"created": "2024-05-01T09:54:59Z"}),
        ("future", {"created": "2024-05-01T10:05:01Z"}),
        ("malformed created", {"created": "1714557600"}),
        ("bad nonce base64", {"extra": "", "encoding": B64, "nonce": b"ok", "digest": None}),
        ("empty nonce", {"nonce": b""}),
        ("hex nonce", {"encoding": "http://x#HexBinary"}),
        ("unknown password type", {"ptype": "urn:x#PasswordHash"}),
        ("plain text by default", {"ptype": PASSWORD_TEXT}),
    ],
)
def test_refusals(case: str, kwargs: dict[str, object]) -> None:
    header = token(**kwargs)  # type: ignore[arg-type]
    if case == "bad nonce base64":
        nonce_el = header.find(f".//{{{WSSE}}}Nonce")
        assert nonce_el is not None
        nonce_el.text = "!!not base64!!"
    refused(auth(), header)


def test_refusal_reasons_are_logged_not_sent() -> None:
    fault = refused(auth(), token(user="mallory"))
    assert "unknown user" in fault.private
    assert "wrong digest" in refused(auth(), token(password="guess")).private


@pytest.mark.parametrize(
    "extra",
    [
        # A second token, or a second Security header: ambiguous, refused.
        "second_token",
        "second_security",
        "empty_security",
        "duplicate_nonce",
    ],
)
def test_ambiguous_tokens(extra: str) -> None:
    header = token()
    sec = header[0]
    if extra == "second_token":
        sec.append(token(user="user", password="userpassword")[0][0])
    elif extra == "second_security":
        header.append(token(user="user", password="userpassword")[0])
    elif extra == "empty_security":
        sec.remove(sec[0])
    else:
        tok = sec[0]
        nonce = tok.find(f"{{{WSSE}}}Nonce")
        assert nonce is not None
        tok.append(etree.fromstring(etree.tostring(nonce)))
    refused(auth(), header)


def test_oversized_fields_are_refused() -> None:
    refused(auth(), token(user="a" * 5000))


def test_password_text_only_when_allowed() -> None:
    a = auth(allow_password_text=True)
    assert a.verify(token(ptype=PASSWORD_TEXT)) is not None
    refused(a, token(ptype=PASSWORD_TEXT, password="guess"))
    refused(a, token(ptype=PASSWORD_TEXT, user="nobody"))
    # Spaces in a password are part of it: the text is compared as sent.
    assert a.verify(token(user="spacey", password=" pass word ", ptype=PASSWORD_TEXT)) is not None
    refused(a, token(user="spacey", password="pass word", ptype=PASSWORD_TEXT))
    # No Type and no Nonce: the WSS default, PasswordText.
    assert a.verify(token(ptype=None, nonce=None, created=None, digest=PW)) is not None
    refused(auth(), token(ptype=None, nonce=None, created=None, digest=PW))


# -- freshness and replay ------------------------------------------------------------------------


def test_window_edges_both_ways() -> None:
    clock = Clock()
    a = auth(clock, window_s=300)
    for i, skew in enumerate((-300.0, 300.0, -299.999, 0.0)):
        clock.now = T0 - skew
        assert a.verify(token(nonce=b"edge-%d" % i)) is not None, skew
    for i, skew in enumerate((-300.001, 300.001, -86400.0, 86400.0)):
        clock.now = T0 - skew
        refused(a, token(nonce=b"beyond-%d" % i))


def test_replay_is_refused_for_the_whole_window_and_then_stale() -> None:
    clock = Clock()
    a = auth(clock)
    header = token()
    assert a.verify(header) is not None
    for now in (T0, T0 + 1, T0 + 299):
        clock.now = now
        assert "replayed" in refused(a, header).private
    clock.now = T0 + 301
    assert "window" in refused(a, header).private
    # The same nonce with another Created needs the password: it is a new, valid token only for
    # its owner; a replay cache keyed on the nonce refuses it within the window regardless.
    clock.now = T0 + 10
    assert "replayed" in refused(a, token(created="2024-05-01T10:00:10Z")).private


def test_failed_attempts_do_not_burn_a_nonce() -> None:
    a = auth()
    refused(a, token(password="guess"))
    assert a.verify(token()) is not None  # same nonce, right password


def test_replay_cache_is_bounded_and_never_reopens_a_replay() -> None:
    clock = Clock()
    a = auth(clock, replay_cache=3)
    first = token(nonce=b"n0", created="2024-05-01T10:00:00Z")
    assert a.verify(first) is not None
    for i in range(1, 6):
        assert a.verify(token(nonce=b"n%d" % i, created=f"2024-05-01T10:00:0{i}Z")) is not None
        assert len(a._seen) <= 3
    # n0 was evicted, yet its replay is refused: its Created is behind the horizon.
    assert "horizon" in refused(a, first).private
    # Later tokens are still accepted.
    assert a.verify(token(nonce=b"n9", created="2024-05-01T10:00:09Z")) is not None


def test_replay_cache_expires_entries() -> None:
    clock = Clock()
    a = auth(clock, replay_cache=100, window_s=60)
    for minute in range(30):
        clock.now = T0 + 60 * minute
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now))
        for i in range(10):
            assert a.verify(token(nonce=b"%d-%d" % (minute, i), created=created)) is not None
        assert len(a._seen) <= 20  # this minute's and the previous minute's


# -- client variants (by namespace, never by prefix) ---------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_ns": True, "created": "2024-05-01T10:00:00.123Z"},  # npm onvif, UniFi
        {"encoding": None},  # Synology: no EncodingType
        {"created": "2024-05-01T10:00:00.123456789Z", "default_ns": True},  # go2rtc
        {"created": "2024-05-01T10:00:00+00:00"},  # zeep default
        {"created_ns": WSSE},  # Created in the wsse namespace
        {"ptype": None},  # digest without a Type attribute
        {"encoding": "Base64Binary#Base64Binary"},
    ],
)
def test_client_variants(kwargs: dict[str, object]) -> None:
    user = auth().verify(token(**kwargs))  # type: ignore[arg-type]
    assert user is not None and user.level is UserLevel.ADMINISTRATOR


def test_hikvision_must_understand_true_and_wsu_id() -> None:
    n, c = b"hik-nonce-000001", "2024-05-01T10:00:00Z"
    header = etree.fromstring(
        f'<soap:Header xmlns:soap="{SOAP12}"><wsse:Security soap:mustUnderstand="true" '
        f'xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken wsu:Id="UsernameToken-7">'
        f"<wsse:Username>admin</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_DIGEST}">{password_digest(n, c, PW)}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{B64}">{base64.b64encode(n).decode()}</wsse:Nonce>'
        f"<wsu:Created>{c}</wsu:Created></wsse:UsernameToken></wsse:Security></soap:Header>"
    )
    assert auth().verify(header) is not None


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.xml")), ids=lambda p: p.name)
def test_corpus_tokens_are_accepted(path: Path) -> None:
    data = path.read_bytes()
    ct = re.search(rb"<!-- content-type: (.*?) -->", data)
    assert ct is not None
    req = parse_envelope(data, ct.group(1).decode())
    created = re.search(rb"Created[^>]*>([^<]+)<", data)
    clock = Clock(parse_created(created.group(1).decode()) + 1 if created else T0)
    user = auth(clock).verify(req.header)
    if b"UsernameToken" in data:
        assert user is not None and user.username == "admin"
    else:
        assert user is None


# -- a real third-party client: zeep builds the header -------------------------------------------


def zeep_request(password: str, zulu: bool) -> bytes:
    zeep_username = pytest.importorskip("zeep.wsse.username")
    envelope = etree.fromstring(
        f'<soap-env:Envelope xmlns:soap-env="{SOAP12}"><soap-env:Body>'
        '<ns0:GetDeviceInformation xmlns:ns0="http://www.onvif.org/ver10/device/wsdl"/>'
        "</soap-env:Body></soap-env:Envelope>"
    )
    wsse = zeep_username.UsernameToken("admin", password, use_digest=True, zulu_timestamp=zulu)
    envelope, _ = wsse.apply(envelope, {})
    return bytes(etree.tostring(envelope))


@pytest.mark.parametrize("zulu", [False, True])
def test_zeep_username_token_is_accepted(zulu: bool) -> None:
    data = zeep_request(PW, zulu)
    assert b"PasswordDigest" in data and b"Base64Binary" in data
    req = parse_envelope(data, "application/soap+xml; charset=utf-8")
    a = UsernameTokenAuth(USERS)  # the real clock: zeep stamps Created with the current time
    user = a.verify(req.header)
    assert user is not None and user.username == "admin"
    assert "replayed" in refused(a, req.header).private  # the same header again
    wrong = parse_envelope(zeep_request("not-the-password", zulu), None)
    assert "wrong digest" in refused(a, wrong.header).private
