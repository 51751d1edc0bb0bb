"""Credentials shared by RTSP Digest, HTTP Digest and ONVIF WS-Security."""
