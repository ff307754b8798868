# The hard demo: the embedded demo (j.py, everything else as there) on the 'hard' variant of
# the generated data, whose 12 classes come in pairs that differ in a side or in a few joints
# only (raise / point / touch the head with the left or the right hand, kick vs. lift the
# same knee, tilt the head left or right, nod vs. shake), some samples ambiguous by
# construction: no model reaches 100 % on it. Generated on first use at ann_file.
# Without the agent (the ablation pair of docs/ablation.md): configs/ablation/demo_hard_no_agent.py
_base_ = ['j.py']

work_dir = './work_dirs/demo_hard/j'
ann_file = 'data/demo/demo_hard_3danno.pkl'

model = dict(cls_head=dict(work_dir=work_dir))
agent = dict(label_map='demo_hard')
data = dict(
    train=dict(ann_file=ann_file),
    val=dict(ann_file=ann_file),
    test=dict(ann_file=ann_file))
