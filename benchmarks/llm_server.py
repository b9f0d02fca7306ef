"""An OpenAI-compatible server answering every request after a fixed latency, in its own
process so that its CPU time is not the benchmarked process's.

    python -m benchmarks.llm_server PORT LATENCY_S [TIMELINE_FILE]

With TIMELINE_FILE, the calls in flight are sampled every 2 ms and appended to it as
`unix-time count` lines (only changes), flushed every half second: where a run's in-flight
count drops, and for how long."""

import sys
import threading
import time

from tests.servers import Reply, start_llm


def _sample(fake, path: str) -> None:
    last, lines, flushed = None, [], time.monotonic()
    with open(path, "a") as out:
        while True:
            count = fake.in_flight
            if count != last:
                lines.append(f"{time.time():.4f} {count}\n")
                last = count
            if lines and time.monotonic() - flushed > 0.5:
                out.writelines(lines)
                out.flush()
                lines, flushed = [], time.monotonic()
            time.sleep(0.002)


if __name__ == "__main__":
    latency = float(sys.argv[2])
    fake, server = start_llm("openai", port=int(sys.argv[1]))
    fake.default = Reply(delay=latency)
    fake.record = False
    if len(sys.argv) > 3:
        threading.Thread(target=_sample, args=(fake, sys.argv[3]), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
