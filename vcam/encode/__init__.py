"""Encoding masked frames once per output stream.

`h264.H264Encoder` turns `MaskedFrame`s into Annex-B `EncodedUnit`s (SPS/PPS before every IDR,
no B-frames, keyframes on demand) that every RTSP session and WebRTC peer shares through the
encoded-output bus; `annexb` splits and labels NAL units for the encoder and the packetisers.
"""
