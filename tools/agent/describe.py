"""Generate the initial dialogue of every class with any LLM backend, into a transcript folder.

    # what a training config would use (label map, layout, backend, prompts):
    python tools/agent/describe.py --config configs/ntu60_xsub/j.py --out data/transcripts/ntu60
    # or spelled out:
    python tools/agent/describe.py --label-map ntu60 --layout nturgb+d \\
        --llm '{"type": "OpenAIChat", "model": "gpt-4o"}' --out data/transcripts/ntu60

Resumes where it stopped (complete transcripts are kept). Point a config at the folder with
``--cfg-options agent.transcripts=data/transcripts/ntu60`` to train without LLM calls at start.
Exits with status 1 when some class failed (rerun to retry just those).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from mmengine.config import DictAction  # noqa: E402
from tqdm import tqdm  # noqa: E402

from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', help='training config whose agent settings to use')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='config overrides, e.g. agent.llm.type=Offline')
    parser.add_argument('--label-map', help='label map name or file (overrides the config)')
    parser.add_argument('--layout', help="skeleton layout, e.g. 'nturgb+d' (overrides the config)")
    parser.add_argument('--llm', help='backend config as JSON, e.g. \'{"type": "Offline"}\'')
    parser.add_argument('--out', required=True, help='transcript folder to write')
    parser.add_argument('--chunk-size', type=int, default=16, help='classes asked side by side')
    parser.add_argument('--overwrite', action='store_true', help='redo complete transcripts too')
    return parser.parse_args(argv)


def agent_settings(args: argparse.Namespace) -> dict:
    settings: dict = {}
    if args.config:
        from skeletonagent.agent.settings import agent_settings as from_config
        from skeletonagent.engine.config import load_config
        settings = from_config(load_config(args.config, args.cfg_options)) or {}
    if args.label_map:
        settings['label_map'] = args.label_map
    if args.layout:
        settings['layout'] = args.layout
    if args.llm:
        settings['llm'] = json.loads(args.llm)
    return settings


def main(argv=None) -> int:
    args = parse_args(argv)
    from skeletonagent.agent import build_backend
    from skeletonagent.agent.describe import describe_classes
    from skeletonagent.agent.initial import resolve_class_names
    from skeletonagent.agent.sources import resolve_prompts
    settings = agent_settings(args)
    if 'label_map' not in settings and not settings.get('num_classes'):
        print('describe: give --config or --label-map', file=sys.stderr)
        return 2
    if settings.get('num_classes'):
        class_names = resolve_class_names(settings, settings['num_classes'])
    else:
        from skeletonagent.datasets.label_map import load_label_map
        class_names = load_label_map(settings['label_map'])
    prompts, prompts_source = resolve_prompts(settings, args.config)
    backend = build_backend(settings.get('llm') or dict(type='Offline'))
    print(f'describe: {len(class_names)} classes with {backend.describe()} → {args.out} '
          f'(prompts: {prompts_source})')
    with tqdm(total=len(class_names), unit='class', desc='describe') as bar:
        summary = describe_classes(backend, class_names, settings.get('layout', 'nturgb+d'),
                                   args.out, prompts=prompts,
                                   chunk_size=args.chunk_size, overwrite=args.overwrite,
                                   progress=bar.update)
        bar.update(len(summary.skipped))
    backend.close()
    print(f'describe: {len(summary.written)} written, {len(summary.skipped)} already complete, '
          f'{len(summary.failed)} failed; {summary.stats.summary()}')
    for index, reason in sorted(summary.failed.items()):
        print(f'  {index + 1:03d} {class_names[index]}: {reason}', file=sys.stderr)
    return 1 if summary.failed else 0


if __name__ == '__main__':
    tool_main(main)
