"""The OpenAI-compatible test server's timing: overlapping latencies and a client timeout.

``FakeLLMServer(latency=L)`` makes every request wait L seconds in its own thread, like a
remote model; tests/agent/test_agent_llm_server.py checks that requests are answered concurrently
and that a hanging request ends in the client's timeout. Printed side by side in one run,
with the real ``openai`` client:

* --requests concurrent requests at --latency: the wall time, against one latency (all
  overlapping) and --requests latencies (one after the other);
* a request the server hangs for --hang seconds, asked with a --timeout client timeout: the
  time until the client gives up, against the timeout.

    python bench/llm_server.py [--requests 6] [--latency 0.3] [--hang 5] [--timeout 0.3]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--requests', type=int, default=6)
    parser.add_argument('--latency', type=float, default=0.3)
    parser.add_argument('--hang', type=float, default=5.0)
    parser.add_argument('--timeout', type=float, default=0.3)
    args = parser.parse_args(argv)

    import _common as C
    import openai

    from skeletonagent.testing import FakeLLMServer, Fault

    def ask(srv, timeout: float):
        client = openai.OpenAI(api_key='EMPTY', base_url=srv.base_url, max_retries=0,
                               timeout=timeout)
        return client.chat.completions.create(
            model='fake-llm', messages=[{'role': 'user', 'content': 'hello'}])

    print(C.machine_line())
    with FakeLLMServer(responder=lambda body: 'ok', latency=args.latency) as srv:
        ask(srv, 30.0)                                         # client and server warm
        threads = [threading.Thread(target=ask, args=(srv, 30.0)) for _ in range(args.requests)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    print(f'{args.requests} concurrent requests at {args.latency:.2f} s latency: {wall:.2f} s | '
          f'all overlapping {args.latency:.2f} s | one after the other '
          f'{args.requests * args.latency:.2f} s')

    with FakeLLMServer() as srv:
        srv.script([Fault.hang(args.hang)])
        start = time.perf_counter()
        try:
            ask(srv, args.timeout)
            outcome = 'answered (no timeout)'
        except openai.APITimeoutError:
            outcome = 'client timeout'
        waited = time.perf_counter() - start
    print(f'a {args.hang:.1f} s hang with a {args.timeout:.2f} s client timeout: {outcome} after '
          f'{waited:.2f} s | timeout {args.timeout:.2f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
