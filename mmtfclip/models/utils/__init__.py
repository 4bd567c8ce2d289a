# Copyright (c) mmtfclip contributors. All rights reserved.
from .attention import MultiheadAttention
from .identity_prompt_learner import IdentityPromptLearner
from .pretrained_init import StrictPretrainedInit
from .sequence_specific_prompt import SequenceSpecificPrompt, SSPDecoderLayer

__all__ = [
    'MultiheadAttention', 'SSPDecoderLayer', 'SequenceSpecificPrompt',
    'StrictPretrainedInit', 'IdentityPromptLearner'
]
