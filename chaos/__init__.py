"""The chaos harness: fault injectors and scenarios that drive the service from outside.

Nothing under `chaos/` imports the service package; it talks to the service over HTTP and
real sockets only. `chaos.fakes` holds fake upstreams (BGG, the image CDN) with a fault
engine, `chaos.proxy` a TCP fault proxy in the spirit of Toxiproxy.
"""
