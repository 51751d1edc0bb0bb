"""RTSP server: sans-IO messages, sessions, RTP packetisation."""
