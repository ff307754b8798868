"""torchrun, ending as a single process does: ``python -m skeletonagent.engine.launch`` takes
``torch.distributed.run``'s arguments (``tools/dist_train.sh`` and ``tools/dist_test.sh`` call
it).

What changes against plain torchrun:

* Ctrl-C or SIGTERM to the launcher: torchrun passes the signal to every rank, each rank ends
  as a stopped single process does (rank 0 logs the one line saying how to resume), and the
  launcher exits with 128 + the signal without its own traceback and warnings.
* A rank that fails with a user error has printed its ``error: ...`` line; the launcher exits
  with the rank's status instead of adding torchrun's ``ChildFailedError`` report. A rank that
  crashed otherwise (a signal, a traceback) gets one line naming it.
* Each rank ends when the launcher dies, however it dies (:func:`~.dist.init_distributed`
  sets the parent-death signal).
"""
from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

__all__ = ['main']

#: Exit statuses a rank ends with after printing its own one-line message.
_SELF_EXPLAINED = {1, 2, 128 + int(signal.SIGINT), 128 + int(signal.SIGTERM)}


def _failure_line(failures: dict) -> tuple[int, str | None]:
    """(exit status, line or None) for torchrun's failures of the ranks (the first one)."""
    rank = min(failures)
    failure = failures[rank]
    code = int(getattr(failure, 'exitcode', 1) or 1)
    if code < 0:                       # killed by a signal
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f'signal {-code}'
        return 128 - code, (f'error: rank {rank} (PID {getattr(failure, "pid", "?")}) was '
                            f'killed by {name}; its output is above')
    if code in _SELF_EXPLAINED:
        return code, None
    return code, (f'error: rank {rank} (PID {getattr(failure, "pid", "?")}) ended with exit '
                  f'status {code}; its output is above')


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    # torchrun's own notices of a shutdown it was asked for ("Received SIGTERM death signal",
    # "Sending process ... closing signal") say nothing the ranks' line does not
    for name in [n for n in logging.root.manager.loggerDict
                 if n.startswith('torch.distributed.elastic')] + ['torch.distributed.elastic']:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        run(args)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        code, line = _failure_line(exc.failures)
        if line:
            print(line, file=sys.stderr)
        return code
    return 0


if __name__ == '__main__':
    sys.exit(main())
