"""Events: what the analytics and the camera report, as ONVIF notification messages."""
