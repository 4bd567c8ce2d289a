# Copyright (c) mmtfclip contributors. All rights reserved.
from .identity_sampler import IdentityBalancedSampler

__all__ = ['IdentityBalancedSampler']
