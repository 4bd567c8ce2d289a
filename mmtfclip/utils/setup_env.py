# Copyright (c) mmtfclip contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all modules of mmtfclip into the registries.

    Args:
        init_default_scope (bool): Whether to set the default scope of
            mmengine to ``'mmtfclip'``, so that ``build`` resolves names
            such as ``'TFCLIP'`` in this project first. Defaults to True.
    """
    import mmtfclip.apis  # noqa: F401,F403
    import mmtfclip.datasets  # noqa: F401,F403
    import mmtfclip.engine  # noqa: F401,F403
    import mmtfclip.evaluation  # noqa: F401,F403
    import mmtfclip.models  # noqa: F401,F403
    import mmtfclip.visualization  # noqa: F401,F403

    if not init_default_scope:
        return

    current_scope = DefaultScope.get_current_instance()
    if current_scope is None:
        DefaultScope.get_instance('mmtfclip', scope_name='mmtfclip')
    elif current_scope.scope_name != 'mmtfclip':
        warnings.warn(
            f'The current default scope "{current_scope.scope_name}" '
            'is not "mmtfclip"; `register_all_modules` will force the '
            'current default scope to be "mmtfclip". If this is not '
            'expected, please set `init_default_scope=False`.')
        # Scope names must be unique, hence the timestamp.
        new_instance_name = f'mmtfclip-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmtfclip')
