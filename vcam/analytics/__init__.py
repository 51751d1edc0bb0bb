"""Analytics outputs: the ONVIF metadata stream (object boxes only, never image data)."""
