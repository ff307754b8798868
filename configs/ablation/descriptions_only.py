# Ablation of the paper config configs/ntu60_xsub/j.py: DESCRIPTIONS ONLY.
# Everything as the paper config (the official dialogues, the follow-up rounds every 5 epochs,
# the text alignment), but no joint masks: the joint-constraint loss is off (weight_1=0), so
# the critical-joint masks take no part in training. docs/ablation.md lists every ablation.
_base_ = ['../ntu60_xsub/j.py']

ablation = 'descriptions only: no joint-constraint loss (weight_1=0), the masks are unused'
work_dir = './work_dirs/ablation/descriptions_only'

model = dict(cls_head=dict(work_dir=work_dir, weight_1=0))
