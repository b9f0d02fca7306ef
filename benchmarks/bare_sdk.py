"""The floor for model calls: the official OpenAI SDK alone, one client, `CONCURRENCY`
threads calling `chat.completions.create` as fast as the server answers; no Django. Prints
the CPU seconds and wall seconds its `CALLS` calls took (after a warm-up of one call per
thread, so that every connection is open, as a worker's are).

    python -m benchmarks.bare_sdk BASE_URL CALLS CONCURRENCY
"""

import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import openai


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(base_url: str, calls: int, concurrency: int) -> dict:
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=60)

    def call(index: int) -> str:
        response = client.chat.completions.create(
            model="gpt-5-mini",
            messages=[{"role": "user", "content": f"Describe Item {index}"}],
        )
        return response.choices[0].message.content

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(call, range(concurrency)))
        cpu, started = _cpu_s(), time.perf_counter()
        answers = list(pool.map(call, range(calls)))
        wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
    assert all(answers), "an empty answer"
    return {"cpu_s": cpu, "wall_s": wall}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
