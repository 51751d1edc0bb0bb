"""ONVIF device services."""
