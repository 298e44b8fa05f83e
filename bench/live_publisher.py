"""P8's publisher: a separate process emitting `bench.ping` through the production path
(app.live.publish → write-only SocketIO on Redis), as a worker does.

    python -m bench.live_publisher RATE SECONDS
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    from app import live
    from workers import app  # builds the app and the write-only publisher, as in a worker

    interval, count = 1.0 / rate, int(rate * seconds)
    start = time.perf_counter()
    with app.app_context():
        for i in range(count):
            target = start + i * interval
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            live.publish("bench.ping", subject=str(i), data={"sent": time.time()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
