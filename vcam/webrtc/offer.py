"""Checks of a viewer's SDP offer and of our answer, before aiortc sees them.

The camera only sends what it already encoded: H.264 Baseline (x264 writes constraint_set1, so
it is also Constrained Baseline), Annex-B, with RFC 6184 packetization-mode 1 (FU-A). An offer
must accept that on its first video m-line, and must not send media to the camera (it has
nowhere to put it: a sending offer would fill aiortc's receive queues for nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCRtpSender, sdp
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

MAX_SDP = 32 * 1024  # browsers' offers are 3-8 KB
BASELINE = (sdp.H264Profile.PROFILE_CONSTRAINED_BASELINE, sdp.H264Profile.PROFILE_BASELINE)
# aiortc's own default when profile-level-id is absent (RFC 6184: Baseline level 1.0 anyway)
_DEFAULT_PROFILE_LEVEL_ID = "42e01f"


class OfferError(ValueError):
    """The offer cannot be answered; the message says why, for the viewer."""


@dataclass(frozen=True)
class CheckedOffer:
    description: sdp.SessionDescription
    has_data_channel: bool


def is_baseline_h264(codec: RTCRtpCodecParameters | RTCRtpCodecCapability) -> bool:
    """H.264 with packetization-mode 1 and a Baseline or Constrained Baseline profile."""
    if codec.mimeType.lower() != "video/h264":
        return False
    params = codec.parameters
    try:
        mode = int(str(params.get("packetization-mode", "0")))
        level_id = str(params.get("profile-level-id", _DEFAULT_PROFILE_LEVEL_ID))
        profile, _level = sdp.parse_h264_profile_level_id(level_id)
    except ValueError:
        return False
    return mode == 1 and profile in BASELINE


def check_offer(text: str) -> CheckedOffer:
    """Parse and check an offer; OfferError with a message fit for the viewer if unusable."""
    if len(text) > MAX_SDP:
        raise OfferError(f"offer larger than {MAX_SDP} bytes")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc raises whatever its parser hits
        raise OfferError(f"the offer is not valid SDP: {exc}") from None
    videos = [m for m in description.media if m.kind == "video"]
    if not videos:
        raise OfferError("the offer has no video m-line")
    for m in description.media:
        if m.kind in ("audio", "video") and m.direction in ("sendrecv", "sendonly"):
            raise OfferError(
                f"the offer sends {m.kind} ({m.direction}); the camera only sends: "
                "use a recvonly transceiver"
            )
    if not any(is_baseline_h264(c) for c in videos[0].rtp.codecs):
        offered = sorted({c.mimeType.split("/")[-1] for c in videos[0].rtp.codecs}) or ["none"]
        raise OfferError(
            "the camera sends H.264 Baseline (packetization-mode=1) only; the offer has "
            + ", ".join(offered)
        )
    has_data = any(m.kind == "application" for m in description.media)
    return CheckedOffer(description, has_data)


def h264_preferences() -> list[RTCRtpCodecCapability]:
    """aiortc's H.264 capabilities our stream satisfies (Constrained Baseline first), plus RTX
    for retransmissions; setCodecPreferences with these before setRemoteDescription, or aiortc
    picks VP8 and sends H.264 bytes labelled VP8."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in caps if is_baseline_h264(c)]
    h264.sort(key=lambda c: str(c.parameters.get("profile-level-id", "")) != "42e01f")
    rtx = [c for c in caps if c.mimeType.lower() == "video/rtx"]
    return h264 + rtx[:1]


def check_answer(text: str) -> None:
    """Our answer's video must be H.264 Baseline only (and RTX): never another codec label on
    H.264 bytes. OfferError (a server fault) otherwise."""
    description = sdp.SessionDescription.parse(text)
    for m in description.media:
        if m.kind != "video" or m.direction == "inactive":
            continue
        codecs = [c for c in m.rtp.codecs if c.mimeType.lower() != "video/rtx"]
        if not codecs or not all(is_baseline_h264(c) for c in codecs):
            names = [f"{c.mimeType} {c.parameters}" for c in m.rtp.codecs]
            raise OfferError(f"answer would negotiate {names}")
