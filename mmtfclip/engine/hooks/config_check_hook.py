# Copyright (c) mmtfclip contributors. All rights reserved.
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtfclip.registry import HOOKS


@HOOKS.register_module()
class ConfigCheckHook(Hook):
    """Check that the model fits the training set before any work is done.

    Runs first among the ``before_train`` hooks (before the CLIP-Memory is
    built) and raises one error naming each config key that does not fit:
    ``model.head.num_classes`` against the training identities, and
    ``model.backbone.num_cams`` against the cameras of the data.
    """

    priority = 'HIGHEST'

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        meta = dataset.metainfo
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        problems = []
        head = getattr(model, 'head', None)
        num_pids = meta.get('num_pids')
        if head is not None and num_pids is not None and getattr(
                head, 'num_classes', num_pids) != num_pids:
            problems.append(
                f'model.head.num_classes = {head.num_classes} but the '
                f'training set has {num_pids} identities')
        backbone_cams = getattr(model.backbone, 'num_cams', 0)
        data_cams = meta.get('num_cams')
        if backbone_cams and data_cams is not None:
            max_cam = max(
                dataset.get_data_info(i)['camid'] for i in range(len(dataset)))
            if max_cam >= backbone_cams:
                problems.append(
                    f'model.backbone.num_cams = {backbone_cams} but the '
                    f'training set has camera id {max_cam} (0-based; '
                    f'{data_cams} cameras)')
        if problems:
            raise ValueError('The config does not fit the training data:\n'
                             '  - ' + '\n  - '.join(problems))
