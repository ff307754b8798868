"""The interface every LLM backend implements.

A backend answers a chat: a list of messages ``{'role': 'system'|'user'|'assistant',
'content': str}`` whose last message is the user's question. ``chat_many`` answers several
independent chats (one per action class) and is where a remote backend batches or runs
requests concurrently; the default simply loops.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

__all__ = ['Message', 'LLMBackend', 'check_messages']

Message = dict[str, str]

_ROLES = ('system', 'user', 'assistant')


def check_messages(messages: Sequence[Message]) -> None:
    """Raise ``ValueError`` unless ``messages`` is a chat ending with a user message."""
    if not messages:
        raise ValueError('a chat needs at least one message')
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get('role') not in _ROLES \
                or not isinstance(message.get('content'), str):
            raise ValueError(f'message {i} must be a dict with role in {_ROLES} and a str '
                             f'content, got {message!r}')
    if messages[-1]['role'] != 'user':
        raise ValueError(f"the last message must be the user's, got {messages[-1]['role']!r}")


class LLMBackend(ABC):
    """Base class of LLM backends (registered in ``skeletonagent.registry.LLM_BACKENDS``)."""

    def configure(self, layout: Any = None, prompts: Any = None) -> None:
        """Tell the backend the skeleton layout and prompt templates of the dialogue.

        Remote LLMs read everything from the messages and ignore this; the offline backend
        uses it to know which joints the numbers in its answers refer to and to recognise
        the questions.
        """

    @abstractmethod
    def chat(self, messages: Sequence[Message]) -> str:
        """The assistant's reply to the chat ``messages``."""

    def chat_many(self, chats: Sequence[Sequence[Message]]) -> list[str]:
        """Replies to several independent chats, in order."""
        return [self.chat(messages) for messages in chats]

    def close(self) -> None:
        """Release clients or threads (nothing by default)."""

    def describe(self) -> Optional[str]:
        """A short human-readable name for logs."""
        return type(self).__name__
