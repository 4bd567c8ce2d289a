# Copyright (c) mmtfclip contributors. All rights reserved.
from .tfclip_optim_wrapper_constructor import TFCLIPOptimWrapperConstructor

__all__ = ['TFCLIPOptimWrapperConstructor']
