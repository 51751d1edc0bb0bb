"""Digest authentication and the user store, including real third-party clients."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import threading
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcam.auth.digest import DigestAuth, Throttle, digest_response, parse_authorization
from vcam.auth.users import (
    InvalidPassword,
    InvalidUsername,
    UnknownUser,
    User,
    UserError,
    UserLevel,
    UsernameClash,
    UsernameTooLong,
    UserStore,
)
from vcam.rtsp.messages import RequestParser, RtspRequest

REALM = "vcam"
ADMIN = User("admin", "s3cret-pass", UserLevel.ADMINISTRATOR)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock: Clock) -> DigestAuth:
    store = UserStore([ADMIN, User("viewer", "view-only-1", UserLevel.USER)])
    return DigestAuth(store, REALM, clock=clock, secret=b"k" * 32)


def nonce_of(challenge: str) -> str:
    parsed = parse_authorization(challenge)
    assert parsed is not None and parsed[0] == "digest"
    return parsed[1]["nonce"]


def libav(
    challenge: str,
    method: str,
    uri: str,
    *,
    user: str = "admin",
    password: str = "s3cret-pass",
    nc: int = 1,
    qop: bool = True,
    cnonce: str = "13562db57098bc39",
) -> str:
    """An Authorization header formatted and computed as libavformat's httpauth.c does."""
    nonce = nonce_of(challenge)
    if not qop:
        response = digest_response("MD5", user, REALM, password, method, uri, nonce)
        return (
            f'Digest username="{user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}"'
        )
    ncs = f"{nc:08x}"
    response = digest_response(
        "MD5", user, REALM, password, method, uri, nonce, "auth", ncs, cnonce
    )
    return (
        f'Digest username="{user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm="MD5", qop="auth", cnonce="{cnonce}", nc={ncs}'
    )


URI = "rtsp://127.0.0.1:8554/main"


# -- known answers --------------------------------------------------------------------------


def test_rfc2617_example() -> None:
    assert (
        digest_response(
            "MD5",
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "auth",
            "00000001",
            "0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_rfc7616_sha256_example() -> None:
    # RFC 7616 §3.9.1 (qop=auth, SHA-256).
    assert (
        digest_response(
            "SHA-256",
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "auth",
            "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_responses_captured_from_real_ffmpeg() -> None:
    """ffmpeg 5.1 answered challenge nonce 0a4f113b6629fae4 with these (corpus file)."""
    data = (Path(__file__).parent / "corpus/rtsp/ffmpeg5_udp_digest_session.txt").read_bytes()
    checked = 0
    for req in RequestParser().feed(data):
        assert isinstance(req, RtspRequest)
        header = req.headers.get("Authorization")
        if header is None:
            continue
        parsed = parse_authorization(header)
        assert parsed is not None
        p = parsed[1]
        assert p["uri"] == req.uri and p["qop"] == "auth"
        expected = digest_response(
            "MD5", "admin", "vcam", "s3cret-pass", req.method, p["uri"], p["nonce"],
            p["qop"], p["nc"], p["cnonce"],
        )  # fmt: skip
        assert p["response"] == expected
        checked += 1
    assert checked == 4


# -- verification -----------------------------------------------------------------------------


def test_challenge_format(auth: DigestAuth) -> None:
    (value,) = auth.challenge()
    assert value.startswith('Digest realm="vcam", nonce="')
    assert value.endswith('", algorithm=MD5, qop="auth"')
    assert auth.challenge(stale=True)[0].endswith(", stale=true")
    assert nonce_of(auth.challenge()[0]) != nonce_of(value)
    both = DigestAuth(UserStore(), REALM, algorithms=("MD5", "SHA-256")).challenge()
    assert [v.split("algorithm=")[1].split(",")[0] for v in both] == ["MD5", "SHA-256"]
    assert nonce_of(both[0]) == nonce_of(both[1])


@pytest.mark.parametrize("qop", [True, False])
def test_libavformat_style_client(auth: DigestAuth, qop: bool) -> None:
    challenge = auth.challenge()[0]
    for nc, (method, uri) in enumerate(
        [("DESCRIBE", URI), ("SETUP", URI + "/trackID=0"), ("PLAY", URI + "/")], start=1
    ):
        result = auth.verify(method, libav(challenge, method, uri, nc=nc, qop=qop), "10.0.0.1")
        assert result.ok and result.user == ADMIN and result.reason == "ok"


def test_sha256(clock: Clock) -> None:
    auth = DigestAuth(UserStore([ADMIN]), REALM, clock=clock, algorithms=("MD5", "SHA-256"))
    nonce = nonce_of(auth.challenge()[1])
    response = digest_response(
        "SHA-256", "admin", REALM, "s3cret-pass", "GET", "/x", nonce, "auth", "00000001", "c"
    )
    header = (
        f'Digest username="admin", realm="vcam", nonce="{nonce}", uri="/x", '
        f'response="{response}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"'
    )
    assert auth.verify("GET", header, "c1").ok
    md5_only = DigestAuth(UserStore([ADMIN]), REALM, clock=clock)
    assert md5_only.verify("GET", header, "c1").reason == "algorithm SHA-256 not offered"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"password": "wrong"}, "wrong password"),
        ({"user": "nobody"}, "unknown user"),
        ({"method": "PLAY"}, "wrong password"),  # signed for DESCRIBE
    ],
)
def test_wrong_credentials(auth: DigestAuth, change: dict[str, str], reason: str) -> None:
    kwargs = {"user": "admin", "password": "s3cret-pass"}
    kwargs.update({k: v for k, v in change.items() if k != "method"})
    header = libav(auth.challenge()[0], "DESCRIBE", URI, **kwargs)
    result = auth.verify(change.get("method", "DESCRIBE"), header, "10.0.0.1")
    assert not result.ok and result.user is None and not result.stale
    assert result.reason == reason


def test_stale_nonce(auth: DigestAuth, clock: Clock) -> None:
    challenge = auth.challenge()[0]
    clock.now += 299
    assert auth.verify("DESCRIBE", libav(challenge, "DESCRIBE", URI), "c").ok
    clock.now += 2
    header = libav(challenge, "DESCRIBE", URI, nc=2)
    result = auth.verify("DESCRIBE", header, "c")
    assert (result.ok, result.stale, result.reason) == (False, True, "stale nonce")
    wrong = libav(challenge, "DESCRIBE", URI, nc=3, password="bad")
    assert not auth.verify("DESCRIBE", wrong, "c").stale  # stale only for right credentials
    fresh = auth.challenge(stale=True)[0]
    assert auth.verify("DESCRIBE", libav(fresh, "DESCRIBE", URI), "c").ok


@pytest.mark.parametrize(
    "forge",
    [
        lambda n: n[:-1] + ("0" if n[-1] != "0" else "1"),  # MAC altered
        lambda n: "0" * 16 + n[16:],  # timestamp altered
        lambda n: n.upper(),
        lambda n: n[:-2],
        lambda n: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        lambda n: "z" * 64,
        lambda n: DigestAuth(UserStore(), REALM, secret=b"other").new_nonce(),
        lambda n: DigestAuth(UserStore(), "other", secret=b"k" * 32).new_nonce(),
    ],
)
def test_forged_nonce(auth: DigestAuth, forge: object) -> None:
    assert callable(forge)
    nonce = forge(nonce_of(auth.challenge()[0]))
    challenge = f'Digest realm="vcam", nonce="{nonce}"'
    result = auth.verify("DESCRIBE", libav(challenge, "DESCRIBE", URI), "c")
    assert (result.ok, result.stale, result.reason) == (False, False, "forged nonce")


def test_nonce_from_the_future_is_refused(auth: DigestAuth, clock: Clock) -> None:
    challenge = auth.challenge()[0]
    clock.now -= 10
    assert auth.verify("DESCRIBE", libav(challenge, "DESCRIBE", URI), "c").reason == "forged nonce"


def test_replayed_nonce_count(auth: DigestAuth) -> None:
    challenge = auth.challenge()[0]
    first = libav(challenge, "DESCRIBE", URI, nc=5)
    assert auth.verify("DESCRIBE", first, "c").ok
    assert auth.verify("DESCRIBE", first, "c").reason == "replayed nonce count"
    older = libav(challenge, "DESCRIBE", URI, nc=4)
    assert auth.verify("DESCRIBE", older, "c").reason == "replayed nonce count"
    assert auth.verify("DESCRIBE", libav(challenge, "DESCRIBE", URI, nc=6), "c").ok
    # ffmpeg changes cnonce every request; a new cnonce starts its own count.
    assert auth.verify("DESCRIBE", libav(challenge, "DESCRIBE", URI, cnonce="ab"), "c").ok
    bad_nc = libav(challenge, "DESCRIBE", URI, nc=7).replace("nc=00000007", "nc=0x7")
    assert not auth.verify("DESCRIBE", bad_nc, "c").ok


def test_nonce_count_cache_is_bounded(clock: Clock) -> None:
    auth = DigestAuth(UserStore([ADMIN]), REALM, clock=clock, max_nonce_counts=3)
    challenge = auth.challenge()[0]
    for i in range(10):
        assert auth.verify("GET", libav(challenge, "GET", "/", cnonce=f"c{i}"), "c").ok
    assert len(auth._counts) == 3


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no credentials"),
        ("Basic YWRtaW46czNjcmV0LXBhc3M=", "basic scheme refused"),
        ("Digest", "incomplete Digest parameters"),
        ('Digest username="admin", realm="vcam"', "incomplete Digest parameters"),
        ('Digest username="admin, realm=vcam', "malformed Authorization"),
        ("Digest a=1, a=2", "malformed Authorization"),
        (
            'Digest username="admin", realm="other", nonce="n", uri="/", response="r"',
            "wrong realm",
        ),
        (
            'Digest username="admin", realm="vcam", nonce="n", uri="/", response="r", '
            "algorithm=MD5-sess",
            "algorithm MD5-sess not offered",
        ),
        (
            'Digest username="admin", realm="vcam", nonce="n", uri="/", response="r", '
            'qop=auth-int, nc=00000001, cnonce="x"',
            "unsupported qop 'auth-int'",
        ),
        (
            'Digest username="admin", realm="vcam", nonce="n", uri="/", response="r", qop=auth',
            "unsupported qop 'auth'",
        ),
    ],
)
def test_refusals(auth: DigestAuth, header: str | None, reason: str) -> None:
    result = auth.verify("DESCRIBE", header, "c")
    assert (result.ok, result.reason) == (False, reason)


# -- throttling ---------------------------------------------------------------------------------


def test_throttle_then_recovery(auth: DigestAuth, clock: Clock) -> None:
    good = lambda nc: libav(auth.challenge()[0], "DESCRIBE", URI, nc=nc)  # noqa: E731
    bad = libav(auth.challenge()[0], "DESCRIBE", URI, password="guess")
    for _ in range(4):
        assert auth.verify("DESCRIBE", bad, "10.0.0.9").reason == "wrong password"
    assert auth.verify("DESCRIBE", bad, "10.0.0.9").reason == "wrong password"  # 5th: locks
    result = auth.verify("DESCRIBE", good(1), "10.0.0.9")
    assert (result.ok, result.reason, result.retry_after_s) == (False, "throttled", 2.0)
    assert auth.verify("DESCRIBE", good(1), "10.0.0.10").ok  # other clients unaffected
    clock.now += 2.0
    for _ in range(5):  # second lock-out lasts twice as long
        auth.verify("DESCRIBE", bad, "10.0.0.9")
    assert auth.verify("DESCRIBE", good(1), "10.0.0.9").retry_after_s == 4.0
    clock.now += 3.9
    assert auth.verify("DESCRIBE", good(1), "10.0.0.9").reason == "throttled"
    clock.now += 0.2
    assert auth.verify("DESCRIBE", good(1), "10.0.0.9").ok
    for _ in range(2):  # a success resets the count: 3 + 3 failures lock nothing
        for _ in range(3):
            assert auth.verify("DESCRIBE", bad, "10.0.0.9").reason == "wrong password"
        assert auth.verify("DESCRIBE", good(1), "10.0.0.9").ok
    for _ in range(5):  # ... and the back-off starts again from its first step
        auth.verify("DESCRIBE", bad, "10.0.0.9")
    assert auth.verify("DESCRIBE", good(1), "10.0.0.9").retry_after_s == 2.0


def test_throttle_window_and_cap(clock: Clock) -> None:
    throttle = Throttle(max_failures=2, window_s=10, backoff_s=1, max_backoff_s=3)
    auth = DigestAuth(UserStore([ADMIN]), REALM, clock=clock, throttle=throttle)
    bad = libav(auth.challenge()[0], "GET", "/", password="guess")
    auth.verify("GET", bad, "c")
    clock.now += 11  # outside the window: the count starts again
    auth.verify("GET", bad, "c")
    assert auth.verify("GET", bad, "c").reason == "wrong password"
    waits = []
    for _ in range(4):
        assert auth.verify("GET", bad, "c").reason == "throttled"
        waits.append(auth.verify("GET", bad, "c").retry_after_s)
        clock.now += 5
        auth.verify("GET", bad, "c")
        auth.verify("GET", bad, "c")
    assert waits == [1, 2, 3, 3]


def test_no_credentials_and_stale_do_not_count(auth: DigestAuth, clock: Clock) -> None:
    challenge = auth.challenge()[0]
    clock.now += 1000
    for nc in range(1, 20):
        assert auth.verify("DESCRIBE", None, "c").reason == "no credentials"
        assert auth.verify("DESCRIBE", libav(challenge, "DESCRIBE", URI, nc=nc), "c").stale


def test_throttle_memory_is_bounded(clock: Clock) -> None:
    auth = DigestAuth(UserStore([ADMIN]), REALM, clock=clock, throttle=Throttle(max_clients=10))
    bad = libav(auth.challenge()[0], "GET", "/", password="guess")
    for i in range(1000):
        auth.verify("GET", bad, f"10.0.{i // 256}.{i % 256}")
    assert len(auth._clients) == 10


# -- header parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Digest username="a"', ("digest", {"username": "a"})),
        ("DIGEST  Username=a ,REALM = b", ("digest", {"username": "a", "realm": "b"})),
        ('digest uri="/a,b", nc=00000001', ("digest", {"uri": "/a,b", "nc": "00000001"})),
        (r'Digest username="a\"b\\c"', ("digest", {"username": 'a"b\\c'})),
        ("Digest\tusername=a,,realm=b,", ("digest", {"username": "a", "realm": "b"})),
        ('Digest username=""', ("digest", {"username": ""})),
        ("Digest username", None),
        ('Digest username="a" realm="b"', None),
        ('Digest username="a', None),
        ("", None),
        ("Digest " + "a=b," * 2000, None),
    ],
)
def test_parse_authorization(header: str, expected: object) -> None:
    assert parse_authorization(header) == expected


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(lambda s: "Digest " + s, st.text(max_size=300)),
        st.builds(
            lambda names, values: (
                "Digest " + ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=False))
            ),
            st.lists(
                st.sampled_from(
                    [
                        "username",
                        "realm",
                        "nonce",
                        "uri",
                        "response",
                        "qop",
                        "nc",
                        "cnonce",
                        "algorithm",
                    ]
                )
            ),
            st.lists(st.text(max_size=20) | st.builds(lambda s: f'"{s}"', st.text(max_size=20))),
        ),
    )
)
def test_fuzz_verify_never_raises(header: str) -> None:
    auth = DigestAuth(UserStore([ADMIN]), REALM, secret=b"k" * 32)
    result = auth.verify("DESCRIBE", header, "fuzz")
    assert not result.ok


# -- the user store -----------------------------------------------------------------------------


def test_user_store() -> None:
    store = UserStore()
    store.add(ADMIN)
    assert store.get("admin") == ADMIN and store.get("Admin") is None
    with pytest.raises(UsernameClash, match="exists already"):
        store.add(User("admin", "x" * 8))
    store.set(User("admin", "new-pass-1", UserLevel.OPERATOR))
    assert store.get("admin") == User("admin", "new-pass-1", UserLevel.OPERATOR)
    with pytest.raises(UnknownUser):
        store.set(User("ghost", "x" * 8))
    store.add(User("viewer", "pw", UserLevel.USER))
    assert [u.username for u in store.users()] == ["admin", "viewer"] and len(store) == 2
    store.delete("admin")
    with pytest.raises(UnknownUser):
        store.delete("admin")
    assert store.users() == [User("viewer", "pw")]
    assert "pw" not in repr(store.users())


@pytest.mark.parametrize(
    ("user", "error", "message"),
    [
        (User("", "pw"), InvalidUsername, "empty"),
        (User("a" * 65, "pw"), UsernameTooLong, "longer than 64"),
        (User("a:b", "pw"), InvalidUsername, "may only contain"),
        (User('a"b', "pw"), InvalidUsername, "may only contain"),
        (User("a b", "pw"), InvalidUsername, "may only contain"),
        (User("é", "pw"), InvalidUsername, "may only contain"),
        (User("a", ""), InvalidPassword, "empty"),
        (User("a", "p" * 129), InvalidPassword, "longer than 128"),
        (User("a", "p\nq"), InvalidPassword, "control character"),
        (User("a", "pw", "Administrator"), UserError, "UserLevel"),  # type: ignore[arg-type]
    ],
)
def test_user_validation(user: User, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as err:
        UserStore().add(user)
    assert isinstance(err.value, ValueError)
    with pytest.raises(error):  # validation comes before the existence check
        UserStore().set(user)


def test_user_store_is_thread_safe() -> None:
    store = UserStore()

    def work(prefix: str) -> None:
        for i in range(200):
            store.add(User(f"{prefix}{i}", "pw"))
            store.set(User(f"{prefix}{i}", "pw2", UserLevel.OPERATOR))
            if i % 2:
                store.delete(f"{prefix}{i}")

    threads = [threading.Thread(target=work, args=(p,)) for p in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.users()) == 400
    assert all(u.level is UserLevel.OPERATOR for u in store.users())


# -- real third-party clients over HTTP -------------------------------------------------------


def _wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(1600))
    return buf.getvalue()


class _Server:
    def __init__(self, auth: DigestAuth) -> None:
        self.auth = auth
        self.results: list[str] = []
        body = _wav()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                result = outer.auth.verify(
                    "GET", self.headers.get("Authorization"), self.client_address[0]
                )
                outer.results.append(result.reason)
                if not result.ok:
                    self.send_response(401)
                    for value in outer.auth.challenge(stale=result.stale):
                        self.send_header("WWW-Authenticate", value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/clip.wav"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(DigestAuth(UserStore([ADMIN]), REALM))
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _urllib_get(url: str, password: str) -> bytes:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url, "admin", password)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
    with opener.open(url, timeout=10) as reply:
        return bytes(reply.read())


def test_python_urllib_digest_client(server: _Server) -> None:
    assert _urllib_get(server.url, "s3cret-pass") == _wav()
    assert server.results == ["no credentials", "ok"]
    with pytest.raises(urllib.error.HTTPError) as err:
        _urllib_get(server.url, "wrong")
    assert err.value.code == 401 and "wrong password" in server.results


def test_curl_digest_client(server: _Server) -> None:
    def curl(password: str) -> str:
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--digest", "-u",
             f"admin:{password}", server.url],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        return out.stdout

    assert curl("s3cret-pass") == "200"
    assert curl("nope") == "401"
    assert server.results == ["no credentials", "ok", "no credentials", "wrong password"]


def test_ffmpeg_digest_client(server: _Server) -> None:
    """libavformat's httpauth.c is the same code its RTSP client uses."""

    def ffprobe(password: str) -> int:
        url = server.url.replace("http://", f"http://admin:{password}@")
        cmd = ["ffprobe", "-v", "error", "-show_entries", "format=duration", url]
        return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode

    assert ffprobe("s3cret-pass") == 0
    assert "ok" in server.results and "wrong password" not in server.results
    assert ffprobe("nope") != 0
    assert "wrong password" in server.results
    # Why only MD5 is offered by default: ffmpeg answers the *last* challenge, and cannot do
    # SHA-256, so listing MD5 then SHA-256 (RFC 7616's order) locks ffmpeg out.
    server.auth = DigestAuth(UserStore([ADMIN]), REALM, algorithms=("MD5", "SHA-256"))
    server.results.clear()
    assert ffprobe("s3cret-pass") != 0
    assert "ok" not in server.results
    server.auth = DigestAuth(UserStore([ADMIN]), REALM, algorithms=("SHA-256", "MD5"))
    assert ffprobe("s3cret-pass") == 0


def test_md5_hash_helper_matches_hashlib() -> None:
    ha1 = hashlib.md5(b"admin:vcam:s3cret-pass").hexdigest()
    ha2 = hashlib.md5(b"GET:/").hexdigest()
    expected = hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()
    assert digest_response("MD5", "admin", "vcam", "s3cret-pass", "GET", "/", "n") == expected


def test_a_digest_is_bound_to_its_uri(auth: DigestAuth) -> None:
    header = libav(auth.challenge()[0], "DESCRIBE", URI)
    assert auth.verify("DESCRIBE", header, "10.0.0.1", URI).ok
    # The same resource written relatively, or with a trailing slash, is the same target.
    header = libav(auth.challenge()[0], "DESCRIBE", URI, nc=1, cnonce="a")
    assert auth.verify("DESCRIBE", header, "10.0.0.1", "/main/").ok
    # A response computed for one URL is not accepted on another.
    other = libav(auth.challenge()[0], "GET", "/snapshot/sub.jpg")
    result = auth.verify("GET", other, "10.0.0.1", "/snapshot/main.jpg")
    assert not result.ok and result.reason == "Digest for another URI"


def test_a_throttled_client_is_told_when_to_retry(auth: DigestAuth) -> None:
    for _ in range(10):
        auth.verify("DESCRIBE", libav(auth.challenge()[0], "DESCRIBE", URI, password="no"), "x")
    result = auth.verify("DESCRIBE", libav(auth.challenge()[0], "DESCRIBE", URI), "x")
    assert not result.ok and result.reason == "throttled"
    assert result.retry_after_s is not None and result.retry_after_s > 0
