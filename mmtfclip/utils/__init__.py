# Copyright (c) mmtfclip contributors. All rights reserved.
from .config_utils import replace_key, set_data_root
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'replace_key', 'set_data_root']
