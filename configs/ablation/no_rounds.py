# Ablation of the paper config configs/ntu60_xsub/j.py: NO FOLLOW-UP ROUNDS.
# Everything as the paper config, but the initial texts and masks (the official GPT-4o
# dialogues) stay fixed for the whole run: the Questioner never asks the LLM again
# (agent.interval=0, the head's interval_epoch with it; the official "semi" models do the
# same). No API key is needed. docs/ablation.md lists every ablation.
_base_ = ['../ntu60_xsub/j.py']

ablation = 'no follow-up rounds: the initial descriptions and masks stay fixed (interval 0)'
work_dir = './work_dirs/ablation/no_rounds'

model = dict(cls_head=dict(work_dir=work_dir, interval_epoch=0))
agent = dict(interval=0)
