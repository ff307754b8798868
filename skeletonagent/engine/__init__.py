"""A config becomes a run: loading, key checks, translation onto mmengine's Runner, the run
spec, the checks before a run, runners, distributed set-up and checkpoint files.

This package's namespace holds what a script needs to read and resolve a config; the
runners (``train``, ``test``, ``build_runner``) are in :mod:`.runner`, which builds every room.
"""
from .checkpoint import atomic_write_bytes, find_resume_checkpoint, load_checkpoint_file, update_latest_link
from .config import ConfigError, RunOptions, load_config
from .dist import init_distributed
from .spec import RunSpec, resolve_run
from .translate import to_runner_kwargs

__all__ = ['atomic_write_bytes', 'find_resume_checkpoint', 'load_checkpoint_file',
           'update_latest_link', 'ConfigError', 'RunOptions', 'load_config',
           'to_runner_kwargs', 'init_distributed', 'RunSpec', 'resolve_run']
