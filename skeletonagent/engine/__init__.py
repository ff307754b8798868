"""Config translation, runners, distributed setup and checkpoint files on mmengine."""
from .checkpoint import atomic_write_bytes, find_resume_checkpoint, load_checkpoint_file, update_latest_link
from .config import ConfigError, RunOptions, load_config, to_runner_kwargs
from .dist import init_distributed

__all__ = ['atomic_write_bytes', 'find_resume_checkpoint', 'load_checkpoint_file',
           'update_latest_link', 'ConfigError', 'RunOptions', 'load_config',
           'to_runner_kwargs', 'init_distributed', 'build_runner', 'train', 'test']


def __getattr__(name):  # the runner imports every room; load it only when asked for
    if name in ('build_runner', 'train', 'test', 'build_model'):
        from . import runner
        return getattr(runner, name)
    raise AttributeError(name)
