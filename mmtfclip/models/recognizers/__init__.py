# Copyright (c) mmtfclip contributors. All rights reserved.
from .clipreid import CLIPReID
from .tfclip import TFCLIP

__all__ = ['TFCLIP', 'CLIPReID']
