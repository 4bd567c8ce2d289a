# Copyright (c) mmtfclip contributors. All rights reserved.
from .checkpoint import from_plain_checkpoint, to_plain_checkpoint
from .reid_runner import ReIDRunner

__all__ = ['ReIDRunner', 'from_plain_checkpoint', 'to_plain_checkpoint']
