"""WebRTC viewers of the already encoded, already masked streams (aiortc).

Each stream is encoded once by the camera; a peer's video track hands the encoded bus's H.264
access units to aiortc as `av.Packet`s, which aiortc only packetises (RFC 6184), so a viewer
costs no encoder. `offer.py` checks offers (H.264 Baseline, packetization-mode 1),
`track.py` is the passthrough track, `ice.py` the ICE servers and host candidates,
`metadata.py` the data channel's JSON, `feed.py` its one shared producer, `peers.py` the bounded
set of peer connections. The HTTP signalling lives in vcam/web/webrtc_http.py.
"""
