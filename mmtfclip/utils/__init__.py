# Copyright (c) mmtfclip contributors. All rights reserved.
from .config_utils import replace_key, set_data_root
from .setup_env import register_all_modules
from .state_dict import strip_module_prefix
from .synthetic import make_synthetic_mars

__all__ = [
    'register_all_modules', 'replace_key', 'make_synthetic_mars',
    'set_data_root', 'strip_module_prefix'
]
