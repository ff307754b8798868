"""``python -m skeletonagent.testing.llm_server``: the test server of
:mod:`skeletonagent.testing.fake_llm` in a process of its own, as a remote LLM would be.

The server itself lives in :mod:`~skeletonagent.testing.fake_llm` (re-exported here), so that
importing :mod:`skeletonagent.testing` does not import this module before ``-m`` runs it.
"""
from __future__ import annotations

import argparse
import threading

from .fake_llm import BAD_JOINTS_TEXT, REFUSAL_TEXT, FakeLLMServer, Fault, Record, asks_about

__all__ = ['Fault', 'FakeLLMServer', 'asks_about', 'Record', 'REFUSAL_TEXT', 'BAD_JOINTS_TEXT', 'main']


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted: ``python -m skeletonagent.testing.llm_server --latency 1``.

    Prints ``base_url: http://127.0.0.1:PORT/v1`` once listening (benchmarks read it), so a
    separate process plays the remote LLM, as a real one would be.
    """
    parser = argparse.ArgumentParser(description='OpenAI-compatible test server (offline answers)')
    parser.add_argument('--port', type=int, default=0, help='0 picks a free port')
    parser.add_argument('--latency', type=float, default=0.0, help='seconds per request')
    parser.add_argument('--layout', default='nturgb+d')
    args = parser.parse_args(argv)
    server = FakeLLMServer(latency=args.latency, layout=args.layout, port=args.port).start()
    print(f'base_url: {server.base_url}', flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
