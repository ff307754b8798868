# Ablation of the paper config configs/ntu60_xsub/j.py: MASKS ONLY.
# Everything as the paper config (the official critical-joint masks, the joint-constraint
# loss), but no text alignment: weight_2=0, so no description and no text encoder take part.
# The follow-up rounds only ever change descriptions (the official agent keeps its masks), so
# with the texts unused they are not asked either (agent.interval=0, the head's
# interval_epoch with it): no LLM is called. docs/ablation.md lists every ablation.
_base_ = ['../ntu60_xsub/j.py']

ablation = ('masks only: no text-alignment loss (weight_2=0, no text encoder), no follow-up '
            'rounds (they change only the unused descriptions)')
work_dir = './work_dirs/ablation/masks_only'

model = dict(cls_head=dict(work_dir=work_dir, weight_2=0, interval_epoch=0))
agent = dict(interval=0)
