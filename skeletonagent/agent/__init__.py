"""The agent: LLM dialogues about each action class, turned into class descriptions (text
alignment) and critical-joint masks (the backbone's local branch).

This package holds the static part: transcripts in the official format, prompt templates,
LLM backends (``Offline`` here), the Selector (replies -> joints -> masks) and the initial
state. The live loop (questioner, hook) builds on these.
"""
from .initial import InitialAgent, build_initial_agent, build_initial_state, load_masks, resolve_class_names
from .llm import LLMBackend, Offline, build_backend
from .prompts import FOLLOW_UP, INITIAL_ROUNDS, PromptMatch, PromptSet
from .selector import (
    JointSelection,
    base_stream,
    build_masks,
    critical_joints_from_transcript,
    descriptions_from_transcripts,
    parse_critical_joints,
    trim_words,
)
from .state import AgentState
from .transcripts import (
    TranscriptError,
    Turn,
    parse_transcript,
    read_transcript,
    read_transcript_dir,
    transcript_filename,
    write_transcript,
)

__all__ = [
    "AgentState", "build_initial_state", "build_initial_agent", "InitialAgent", "load_masks", "resolve_class_names",
    'LLMBackend', 'Offline', 'build_backend',
    'PromptSet', 'PromptMatch', 'INITIAL_ROUNDS', 'FOLLOW_UP',
    'JointSelection', 'parse_critical_joints', 'build_masks', 'base_stream',
    'critical_joints_from_transcript', 'descriptions_from_transcripts', 'trim_words',
    'Turn', 'TranscriptError', 'parse_transcript', 'read_transcript', 'read_transcript_dir',
    'transcript_filename', 'write_transcript',
]

# The live loop: confusion counting and one follow-up round.
from .questioner import OFFICIAL_SELECTION, ConfusionCounter, select_confused
from .round import (
    ClassRoundReport,
    MaskFormat,
    RoundQuestions,
    RoundReading,
    RoundResult,
    run_round,
    save_transcripts,
    write_round_report,
)

__all__ += ['ConfusionCounter', 'select_confused', 'OFFICIAL_SELECTION', 'run_round',
            'RoundResult', 'ClassRoundReport', 'write_round_report', 'save_transcripts',
            'RoundQuestions', 'RoundReading', 'MaskFormat']
