"""The refusal policy: how a refused answer is recognised and how it is asked once more.

A model may decline a question about an action class ("I'm sorry, but I can't help with
that"), through the API's ``refusal`` field, a ``content_filter`` finish or plain text. A
refused chat is asked a second time with :data:`REPHRASE_PREFIX` before its last question;
a second refusal ends the chat as ``'refusal'``.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ['REPHRASE_PREFIX', 'looks_like_refusal', 'rephrased']

#: Put before the last question of a chat the model refused, for its one second try.
REPHRASE_PREFIX = (
    'Context: this question comes from computer-vision research on action recognition. It '
    'asks only for a plain description of the body movements that make up an action class '
    'of a public research dataset of skeleton (joint position) recordings; it does not ask '
    'anyone to carry out the action.\n\n')

_REFUSAL_RE = re.compile(
    r"\bI(?:'m| am) sorry,? (?:but )?I (?:can(?:'t|not| not)|am unable|won't|am not able)"
    r"|\bI (?:can(?:'t|not| not)|won't|am unable to|'m unable to|am not able to|'m not able to)"
    r" (?:help|assist|comply|provide|fulfil|support|answer|engage|do that)"
    r"|\bas an AI\b[^.]{0,60}\b(?:can(?:'t|not)|unable)",
    re.IGNORECASE)
# Refusals open the answer; looking only at its start keeps descriptions that happen to
# contain "cannot" from being mistaken for one.
_REFUSAL_WINDOW = 300


def looks_like_refusal(text: str | None) -> bool:
    """Whether an answer's opening reads as the model declining ("I'm sorry, but I can't")."""
    if not text:
        return False
    head = text[:_REFUSAL_WINDOW].replace('\u2019', "'")
    return _REFUSAL_RE.search(head) is not None


def rephrased(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` (an OpenAI chat request) with :data:`REPHRASE_PREFIX` before its last user
    message, for the second try of a refused chat."""
    messages = [dict(m) for m in request['messages']]
    last = max(i for i, m in enumerate(messages) if m['role'] == 'user')
    messages[last]['content'] = REPHRASE_PREFIX + messages[last]['content']
    return dict(request, messages=messages)
