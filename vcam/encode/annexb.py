"""H.264 Annex-B helpers: split a byte stream at start codes, read NAL unit types.

Shared by the encoder (to label access units) and later by the RTP packetiser (RFC 6184), which
needs the NAL units without their start codes.
"""

from __future__ import annotations

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

_START = b"\x00\x00\x01"


def parse_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte string, without start codes.

    Accepts 3- and 4-byte start codes; bytes before the first start code are ignored. Trailing
    zero bytes before a start code (the leading zero of a 4-byte code, trailing_zero_8bits) are
    stripped, as FFmpeg does: a NAL unit never legitimately ends with 0x00.
    """
    units: list[bytes] = []
    pos = data.find(_START)
    while pos >= 0:
        begin = pos + 3
        nxt = data.find(_START, begin)
        end = len(data) if nxt < 0 else nxt
        while end > begin and data[end - 1] == 0:
            end -= 1
        if end > begin:
            units.append(data[begin:end])
        pos = nxt
    return units


def nal_type(nal: bytes) -> int:
    """nal_unit_type (the low 5 bits of the header byte) of one NAL unit without start code."""
    if not nal:
        raise ValueError("empty NAL unit")
    return nal[0] & 0x1F


def nal_types(data: bytes) -> tuple[int, ...]:
    """The NAL unit types of an Annex-B byte string, in order."""
    return tuple(nal_type(n) for n in parse_nal_units(data))


def sps_profile_idc(sps: bytes) -> int:
    """profile_idc of an SPS NAL unit (66 Baseline, 77 Main, 100 High)."""
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    return sps[1]
