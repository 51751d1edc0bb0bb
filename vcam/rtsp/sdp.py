"""SDP (RFC 4566) session descriptions for RTSP DESCRIBE (RFC 2326): H.264 and ONVIF metadata.

Control URLs are relative (`trackID=0`): clients resolve them against the Content-Base that the
server sends with the description.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class H264Track:
    payload_type: int
    control: str
    sps: bytes  # NAL unit without start code
    pps: bytes
    width: int
    height: int
    fps: float = 0.0  # 0: unknown, no a=framerate
    port: int = 0  # 0 for RTSP (the transport is negotiated in SETUP)


@dataclass(frozen=True, slots=True)
class MetadataTrack:
    payload_type: int
    control: str
    port: int = 0


SdpTrack = H264Track | MetadataTrack


def profile_level_id(sps: bytes) -> str:
    """profile_idc, constraint flags and level_idc of an SPS NAL unit: 6 hex digits."""
    if len(sps) < 4 or sps[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    return sps[1:4].hex()


def sprop_parameter_sets(sps: bytes, pps: bytes) -> str:
    return f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"


def build_sdp(
    *,
    session_id: int,
    address: str,
    session_name: str,
    tracks: Sequence[SdpTrack],
    connection: str = "0.0.0.0",
) -> str:
    """The session description; `address` is the server's (origin line), `connection` the c=."""
    name = " ".join(session_name.split()) or "-"  # one line, never empty
    lines = [
        "v=0",
        f"o=- {session_id} {session_id} IN {_ip(address)} {address}",
        f"s={name}",
        f"c=IN {_ip(connection)} {connection}",
        "t=0 0",
        "a=control:*",
        "a=range:npt=now-",
    ]
    for track in tracks:
        pt = track.payload_type
        if isinstance(track, H264Track):
            lines += [
                f"m=video {track.port} RTP/AVP {pt}",
                f"a=rtpmap:{pt} H264/90000",
                f"a=fmtp:{pt} packetization-mode=1;"
                f"profile-level-id={profile_level_id(track.sps)};"
                f"sprop-parameter-sets={sprop_parameter_sets(track.sps, track.pps)}",
                f"a=x-dimensions:{track.width},{track.height}",
            ]
            if track.fps > 0:
                lines.append(f"a=framerate:{track.fps:.3f}".rstrip("0").rstrip("."))
        else:
            lines += [
                f"m=application {track.port} RTP/AVP {pt}",
                f"a=rtpmap:{pt} vnd.onvif.metadata/90000",
            ]
        lines.append(f"a=control:{track.control}")
    return "\r\n".join(lines) + "\r\n"


def _ip(address: str) -> str:
    return "IP6" if ":" in address else "IP4"
