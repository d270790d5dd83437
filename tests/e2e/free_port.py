# Prints a TCP port free on 127.0.0.1, chosen below Linux's ephemeral range (32768+) so that no
# outgoing connection of a concurrent process takes it between this check and its use.
import random
import socket

for _ in range(200):
    port = random.randint(20000, 32000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port in 20000..32000")
