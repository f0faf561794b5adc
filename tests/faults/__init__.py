"""A loopback HTTP server that misbehaves on request, shared by every connector's fault tests."""
