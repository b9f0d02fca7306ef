"""An OpenAI-compatible server answering every request after a fixed latency, in its own
process so that its CPU time is not the benchmarked process's.

    python -m benchmarks.llm_server PORT LATENCY_S [TIMELINE_FILE]

Each answer reports its own token counts (the prompt's length, an answer length of its
own), as real calls do: what a call's usage costs the product (its price, its counters) is
measured as a user meets it, not from one usage seen over and over.

With TIMELINE_FILE, the calls in flight are sampled every 2 ms and appended to it as
`unix-time count` lines (only changes), flushed every half second: where a run's in-flight
count drops, and for how long."""

import sys
import threading
import time
import zlib

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


def _usage(request: dict) -> tuple[int, int]:
    """(input, output) tokens: a token per 4 characters of the messages and 8 more, and an
    answer of 20-419 tokens that differs from prompt to prompt."""
    text = "".join(message["content"] for message in request.get("messages", []))
    return len(text) // 4 + 8, 20 + zlib.crc32(text.encode()) % 400


if __name__ == "__main__":
    latency = float(sys.argv[2])
    fake, server = start_llm("openai", port=int(sys.argv[1]))
    fake.default = Reply(delay=latency)
    fake.record = False
    fake.usage_of = _usage
    if len(sys.argv) > 3:
        threading.Thread(target=_sample, args=(fake, sys.argv[3]), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
