"""The HTTP server (aiohttp): ONVIF services and the masked snapshot; later WebRTC and the UI."""
