# Ablation of the paper config configs/ntu60_xsub/j.py: NO AGENT AT ALL.
# The same GCN, data, schedule and seed (pass the same --seed to both runs), trained with its
# classification losses only (cross-entropy and the skeleton mixup): no descriptions, no
# text encoder, no joint masks, no LLM. docs/ablation.md lists every ablation.
_base_ = ['../ntu60_xsub/j.py']

ablation = ('no agent: cross-entropy + mixup only (weight_1=0, weight_2=0, agent=None): '
            'no descriptions, no joint masks, no LLM rounds')
work_dir = './work_dirs/ablation/no_agent'

model = dict(cls_head=dict(work_dir=work_dir, weight_1=0, weight_2=0))
agent = None
