# Copyright (c) mmtfclip contributors. All rights reserved.
from .clip_memory_hook import CLIPMemoryHook
from .config_check_hook import ConfigCheckHook
from .epoch_seed_hook import EpochSeedHook
from .epoch_summary_hook import EpochSummaryHook
from .evaluate_before_train_hook import EvaluateBeforeTrainHook
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .prompt_learning_hook import PromptLearningHook

__all__ = [
    'CLIPMemoryHook', 'ConfigCheckHook', 'EpochSeedHook', 'EpochSummaryHook',
    'EvaluateBeforeTrainHook', 'FiniteLossHook', 'NonFiniteLossError',
    'PromptLearningHook'
]
