# Prints a TCP port free on 127.0.0.1, chosen outside this machine's ephemeral range (what the kernel
# hands to outgoing connections: /proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default,
# lower on some hosts) so that no connection of a concurrent process takes it between this check
# and its use.
import random
import socket

try:
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
except OSError:
    low, high = 32768, 60999
# The wide range below the ephemeral one when there is room (fewer collisions between concurrent
# tests than the few thousand ports above it).
ranges = [r for r in ((10000, low - 1), (high + 1, 65535)) if r[1] - r[0] >= 1000] or [(20000, 32000)]
ranges.sort(key=lambda r: r[1] - r[0], reverse=True)
for _ in range(200):
    port = random.randint(*ranges[0])
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit(f"no free port in {ranges}")
