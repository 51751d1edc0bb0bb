"""User management: ONVIF CreateUsers/SetUser/DeleteUsers on the one user store, kept on disk.

The end-to-end test creates an account with onvif-zeep-async, plays RTSP with it (ffprobe),
restarts `vcam serve` on the same data directory and finds the account still there.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import onvif
import pytest
from onvif import ONVIFCamera

from vcam.auth.users import User, UserLevel, UserStore
from vcam.onvif.faults import SoapFault
from vcam.onvif.stack import build_dispatcher

from .test_onvif_services import call, env, make_model
from .vcam_process import VcamProcess, free_port, loopback_config

WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
ADMIN_PW = "users-test-admin-pw"


def create(name: str, password: str, level: str) -> bytes:
    return env(
        f"<tds:CreateUsers><tds:User><tt:Username>{name}</tt:Username>"
        f"<tt:Password>{password}</tt:Password><tt:UserLevel>{level}</tt:UserLevel>"
        "</tds:User></tds:CreateUsers>"
    )


def subcodes(fault: SoapFault) -> list[str]:
    return list(fault.subcodes)


def delete(name: str) -> bytes:
    return env(f"<tds:DeleteUsers><tds:Username>{name}</tds:Username></tds:DeleteUsers>")


def test_create_set_delete_and_their_refusals() -> None:
    dispatcher = build_dispatcher()
    model = make_model()
    call(dispatcher, create("op1", "op1-password", "Operator"), model=model)
    assert model.users.get("op1") == User("op1", "op1-password", UserLevel.OPERATOR)
    with pytest.raises(SoapFault) as clash:
        call(dispatcher, create("op1", "another-pw", "User"), model=model)
    assert "ter:UsernameClash" in subcodes(clash.value)
    with pytest.raises(SoapFault) as anon:
        call(dispatcher, create("nobody", "nobody-pw", "Anonymous"), model=model)
    assert "ter:AnonymousNotAllowed" in subcodes(anon.value)
    call(
        dispatcher,
        env(
            "<tds:SetUser><tds:User><tt:Username>op1</tt:Username>"
            "<tt:UserLevel>User</tt:UserLevel></tds:User></tds:SetUser>"
        ),
        model=model,
    )
    assert model.users.get("op1") == User("op1", "op1-password", UserLevel.USER)  # level only
    with pytest.raises(SoapFault) as missing:
        call(
            dispatcher,
            env("<tds:DeleteUsers><tds:Username>ghost</tds:Username></tds:DeleteUsers>"),
            model=model,
        )
    assert "ter:UsernameMissing" in subcodes(missing.value)
    with pytest.raises(SoapFault) as last_admin:
        call(
            dispatcher,
            env("<tds:DeleteUsers><tds:Username>admin</tds:Username></tds:DeleteUsers>"),
            model=model,
        )
    assert "ter:FixedUser" in subcodes(last_admin.value)
    call(
        dispatcher,
        env("<tds:DeleteUsers><tds:Username>op1</tds:Username></tds:DeleteUsers>"),
        model=model,
    )
    assert model.users.get("op1") is None


def test_the_store_keeps_users_on_disk_privately(tmp_path: Path) -> None:
    path = tmp_path / "state" / "users.json"
    store = UserStore(path=path)
    store.add(User("admin", "first-password", UserLevel.ADMINISTRATOR))
    store.add(User("viewer", "viewer-password", UserLevel.USER))
    store.set(User("admin", "second-password", UserLevel.ADMINISTRATOR))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = UserStore.load(path)
    assert {u.username: u.password for u in again.users()} == {
        "admin": "second-password",
        "viewer": "viewer-password",
    }
    again.delete("viewer")
    assert [u.username for u in UserStore.load(path).users()] == ["admin"]


def _ffprobe(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
         "stream=codec_name", "-of", "csv=p=0", url],
        capture_output=True, text=True, timeout=40,
    )  # fmt: skip


def test_a_user_created_over_onvif_streams_and_survives_a_restart(tmp_path: Path) -> None:
    rtsp, http = free_port(), free_port()
    config = loopback_config(
        width=320, height=192, fps=10.0, rtsp_port=rtsp, http_port=http, solid=False,
        tail='[[output.streams]]\nname = "main"',
    )  # fmt: skip

    async def create_user() -> None:
        cam = ONVIFCamera("127.0.0.1", http, "admin", ADMIN_PW, WSDL_DIR)
        try:
            await cam.update_xaddrs()
            dev = await cam.create_devicemgmt_service()
            await dev.CreateUsers(
                {"User": [{"Username": "vms", "Password": "vms-password-1",
                           "UserLevel": "User"}]}
            )  # fmt: skip
            names = {u.Username for u in await dev.GetUsers()}
            assert names == {"admin", "vms"}
        finally:
            await cam.close()

    vcam = VcamProcess(tmp_path, config, ADMIN_PW)
    try:
        vcam.wait_for("ONVIF: http://")
        asyncio.run(create_user())
        ok = _ffprobe(f"rtsp://vms:vms-password-1@127.0.0.1:{rtsp}/main")
        assert ok.returncode == 0 and "h264" in ok.stdout, ok.stderr
    finally:
        vcam.stop()
    assert UserStore.load(tmp_path / "users.json").get("vms") is not None
    again = VcamProcess(tmp_path, config, ADMIN_PW)
    try:
        again.wait_for("RTSP: rtsp://")
        ok = _ffprobe(f"rtsp://vms:vms-password-1@127.0.0.1:{rtsp}/main")
        assert ok.returncode == 0, ok.stderr
        bad = _ffprobe(f"rtsp://vms:wrong-password@127.0.0.1:{rtsp}/main")
        assert bad.returncode != 0 and "401" in bad.stderr
    finally:
        again.stop()


def test_the_configured_password_wins_over_the_kept_one(tmp_path: Path) -> None:
    from vcam.config import config_from_dict
    from vcam.datadir import user_store

    def start(password: str) -> UserStore:
        cfg = config_from_dict({"data_dir": str(tmp_path), "auth": {"password": password}})
        return user_store(cfg)[0]

    assert start("first-password").get("admin") == User(
        "admin", "first-password", UserLevel.ADMINISTRATOR
    )
    assert start("second-password").get("admin").password == "second-password"  # type: ignore[union-attr]
    # The generated password is used only while nobody configured one.
    cfg = config_from_dict({"data_dir": str(tmp_path / "fresh")})
    store, shown, where = user_store(cfg)
    assert shown is not None and where is not None and where.read_text().strip() == shown
    assert store.get("admin").password == shown  # type: ignore[union-attr]
