# Copyright (c) mmtfclip contributors. All rights reserved.
from .tfclip import TFCLIP

__all__ = ['TFCLIP']
