"""An OpenAI-compatible server answering every request after a fixed latency, in its own
process so that its CPU time is not the benchmarked process's.

    python -m benchmarks.llm_server PORT LATENCY_S
"""

import sys
import time

from tests.servers import Reply, start_llm

if __name__ == "__main__":
    latency = float(sys.argv[2])
    fake, server = start_llm("openai", port=int(sys.argv[1]))
    fake.default = Reply(delay=latency)
    fake.record = False
    print("ready", flush=True)
    while True:
        time.sleep(3600)
