"""The block a training run ends with (PYSKL prints one too): the best epoch and its
validation figures, the test figures of the last and the best checkpoint, where the
predictions, the report and the TensorBoard logs are, and the command that fuses this stream
with the others (``tools/ensemble.py``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mmengine.config import Config

from ..datasets.config_view import config_datasets

__all__ = ['STREAMS', 'best_record', 'metrics_text', 'fusion_command', 'summary_lines',
           'format_block']

#: The stream configs of a dataset folder (``configs/<dataset>/<stream>.py``), in the order
#: the paper fuses them.
STREAMS = ('j', 'b', 'k', 'jm', 'bm', 'km')

_NAMES = (('acc/top1', 'top-1'), ('acc/top5', 'top-5'), ('acc/mean1', 'mean class'))


def best_record(history: Sequence[Mapping], key: str = 'acc/top1') -> Mapping | None:
    """The validation record with the highest ``key``; the first on ties, as mmengine's
    ``CheckpointHook`` keeps the first best (``rule='greater'``)."""
    best = None
    for record in history:
        if key in record and (best is None or record[key] > best[key]):
            best = record
    return best


def metrics_text(metrics: Mapping) -> str:
    """'top-1 0.9750, top-5 1.0000, mean class 0.9750' from ``acc/*`` metrics."""
    parts = [f'{name} {float(metrics[key]):.4f}' for key, name in _NAMES if key in metrics]
    return ', '.join(parts) if parts else 'no figures (unlabelled test data)'


def fusion_command(cfg: Config, work_dir: str | Path, pred_name: str = 'best_pred.pkl'
                   ) -> tuple[str, list[str]] | None:
    """``(command, streams not trained yet)`` fusing this run's predictions with those of the
    other stream configs next to its config (``configs/<dataset>/{j,b,k,jm,bm,km}.py``, work
    dirs named after them), or None when there is no other stream or the work dirs do not
    follow the config names."""
    config = Path(str(getattr(cfg, 'filename', '') or ''))
    work_dir = Path(work_dir)
    if config.stem not in STREAMS or work_dir.name != config.stem:
        return None
    others = [s for s in STREAMS if s != config.stem and (config.parent / f'{s}.py').is_file()]
    if not others:
        return None
    streams = [s for s in STREAMS if s == config.stem or s in others]
    preds = [work_dir.with_name(s) / pred_name for s in streams]
    missing = [s for s, p in zip(streams, preds) if not p.is_file() and s != config.stem]
    tests = config_datasets(cfg, 'test')
    test = tests[0].settings if tests else {}
    ann, split = test.get('ann_file'), test.get('split')
    if not ann:
        return None
    command = (f'python tools/ensemble.py --ann {ann}' + (f' --split {split}' if split else '')
               + ' --preds ' + ' '.join(str(p) for p in preds))
    return command, missing


def summary_lines(cfg: Config, work_dir: str | Path, max_epochs: int,
                  history: Sequence[Mapping], results: Mapping[str, Mapping],
                  best_ckpt: str | None = None, report: Path | None = None,
                  tensorboard: bool = False) -> dict[str, str]:
    """The summary as ``{label: text}`` (see the module docstring).

    Args:
        history: the run's validation records (``val_history.json``).
        results: the test metrics by checkpoint, ``{'last': {...}, 'best': {...}}``.
        best_ckpt: the best checkpoint mmengine kept (``best_ckpt`` on the message hub).
    """
    work_dir = Path(work_dir)
    lines: dict[str, str] = {}
    best = best_record(history)
    if best is not None:
        epoch = int(best['epoch'])
        ckpt = best_ckpt if best_ckpt and Path(best_ckpt).is_file() else None
        if ckpt is None:
            found = sorted(work_dir.glob(f'best_*_epoch_{epoch}.pth'))
            ckpt = str(found[0]) if found else None
        lines['best epoch'] = (f'{epoch} of {max_epochs}: val {metrics_text(best)}'
                               + (f'; {ckpt}' if ckpt else ''))
    else:
        lines['best epoch'] = 'not known: no validation (train with --validate)'
    epochs = {'last': max_epochs, 'best': int(best['epoch']) if best is not None else None}
    for which in ('last', 'best'):
        if which in results:
            lines[f'test, {which}'] = ((f'epoch {epochs[which]}: ' if epochs[which] else '')
                                       + metrics_text(results[which]))
    preds = [work_dir / f'{which}_pred.pkl' for which in ('last', 'best') if which in results]
    preds = [p for p in preds if p.is_file()]
    lines['predictions'] = ', '.join(map(str, preds)) if preds else \
        'none (add --test-last / --test-best)'
    if report is not None:
        lines['report'] = str(report)
    lines['TensorBoard'] = (f'tensorboard --logdir {work_dir}' if tensorboard
                            else 'off (pip install tensorboard)')
    if preds:
        fusion = fusion_command(cfg, work_dir, preds[-1].name)
        if fusion is not None:
            command, missing = fusion
            lines['fusion'] = command + (f'  (once {", ".join(missing)} '
                                         f'{"is" if len(missing) == 1 else "are"} trained)'
                                         if missing else '')
    return lines


def format_block(title: str, lines: Mapping[str, str]) -> str:
    """``title`` and aligned ``label  text`` lines, as the run's start block."""
    width = max((len(k) for k in lines), default=0)
    return title + '\n' + '\n'.join(f'  {k:<{width}}  {v}' for k, v in lines.items())
