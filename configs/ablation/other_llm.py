# Ablation of the paper config configs/ntu60_xsub/j.py: A DIFFERENT LLM.
# Everything as the paper config (the official prompts, the official agent loop), but every
# text comes from another LLM: the initial dialogues and the critical-joint masks are asked
# at the start of training (instead of the imported GPT-4o ones), and the follow-up rounds
# ask it too. Here DeepSeek's OpenAI-compatible API (key in $DEEPSEEK_API_KEY); any other:
#   --cfg-options agent.llm.model=NAME agent.llm.base_url=URL agent.llm.api_key_env=VAR
# Only the follow-ups from the other LLM (initial texts the official GPT-4o ones):
#   --cfg-options agent.transcripts=official agent.masks=official
# docs/ablation.md lists every ablation.
_base_ = ['../ntu60_xsub/j.py']

ablation = ('a different LLM: deepseek-chat writes the initial dialogues, the masks and the '
            'follow-ups (not the imported GPT-4o texts)')
work_dir = './work_dirs/ablation/other_llm'

model = dict(backbone=dict(llm_model='deepseek-chat'), cls_head=dict(work_dir=work_dir))
agent = dict(transcripts=None, masks=None,
             llm=dict(model='deepseek-chat', base_url='https://api.deepseek.com',
                      api_key_env='DEEPSEEK_API_KEY'))
