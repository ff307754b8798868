"""Running the per-class dialogues with an LLM backend, one round for all classes at a time.

Every round is sent as one ``backend.chat_many`` call holding one chat per class, so a
remote backend can batch or parallelise across classes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .llm.base import LLMBackend, Message
from .prompts import INITIAL_ROUNDS, PromptSet
from .transcripts import Turn, turns_to_messages
from .vocab import LayoutArg

__all__ = ['run_initial_dialogues', 'ask_follow_ups']


def _ask_round(backend: LLMBackend, histories: Sequence[list[Message]],
               questions: Sequence[str]) -> list[str]:
    chats = [history + [{'role': 'user', 'content': q}] for history, q in zip(histories, questions)]
    replies = backend.chat_many(chats)
    if len(replies) != len(chats):
        raise RuntimeError(f'{backend.describe()} answered {len(replies)} of {len(chats)} chats')
    return [str(reply) for reply in replies]


def run_initial_dialogues(backend: LLMBackend, class_names: Sequence[str], layout: LayoutArg,
                          prompts: PromptSet | None = None) -> list[list[Turn]]:
    """The five-round initial dialogue of every class, as turns in class order."""
    prompts = prompts or PromptSet()
    questions = [prompts.initial_questions(name, layout) for name in class_names]
    histories: list[list[Message]] = [[] for _ in class_names]
    transcripts: list[list[Turn]] = [[] for _ in class_names]
    for round_index in range(len(INITIAL_ROUNDS)):
        asked = [qs[round_index] for qs in questions]
        replies = _ask_round(backend, histories, asked)
        for history, turns, question, reply in zip(histories, transcripts, asked, replies):
            history += [{'role': 'user', 'content': question},
                        {'role': 'assistant', 'content': reply}]
            turns.append(Turn(question, reply))
    return transcripts


def ask_follow_ups(backend: LLMBackend, transcripts: Sequence[Sequence[Turn]],
                   class_names: Sequence[str], similar: Mapping[int, Sequence[int]],
                   prompts: PromptSet | None = None) -> list[list[Turn]]:
    """New transcripts after one follow-up round, as the official agent does it.

    Each class keeps its initial rounds (earlier follow-ups are dropped); a class with
    confused classes in ``similar`` gets one follow-up turn naming them, asked after its
    initial rounds. Classes without confusions get their initial rounds back unchanged.
    """
    prompts = prompts or PromptSet()
    num_initial = len(INITIAL_ROUNDS)
    updated = [list(turns[:num_initial]) for turns in transcripts]
    asking = [cls for cls in range(len(transcripts)) if similar.get(cls)]
    if not asking:
        return updated
    histories = [turns_to_messages(updated[cls]) for cls in asking]
    questions = [prompts.follow_up_question(class_names[cls],
                                            [class_names[o] for o in similar[cls]])
                 for cls in asking]
    replies = _ask_round(backend, histories, questions)
    for cls, question, reply in zip(asking, questions, replies):
        updated[cls].append(Turn(question, reply))
    return updated
