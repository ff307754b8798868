# Ablation of the hard demo (configs/demo/hard_j.py): the same run without the agent.
# Everything else is the base config's: data, model, schedule; start both from the same
# --seed. See docs/ablation.md.
_base_ = ['../demo/hard_j.py']

ablation = ('no agent: cross-entropy + mixup only (weight_1=0, weight_2=0, agent=None): '
            'no descriptions, no joint masks, no LLM rounds')
work_dir = './work_dirs/ablation/demo_hard_no_agent'

model = dict(cls_head=dict(work_dir=work_dir, weight_1=0, weight_2=0))
agent = None
