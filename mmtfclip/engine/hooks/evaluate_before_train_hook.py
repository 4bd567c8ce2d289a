# Copyright (c) mmtfclip contributors. All rights reserved.
from mmengine.hooks import Hook

from mmtfclip.registry import HOOKS


@HOOKS.register_module()
class EvaluateBeforeTrainHook(Hook):
    """Run the validation loop once before the first training step.

    It shows what the starting weights are worth (the pretrained CLIP
    encoder's zero-shot ReID accuracy, or chance for a random encoder) in the
    same log as the trained model's. The metrics are also kept in the message
    hub as ``metrics_before_train``. A resumed run skips it.

    Its priority (``LOWEST``) runs it after the other ``before_train`` hooks,
    in particular after the CLIP-Memory is built.
    """

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        if runner.iter > 0:
            return
        if runner.val_loop is None:
            raise RuntimeError(
                'EvaluateBeforeTrainHook needs val_dataloader, val_evaluator '
                'and val_cfg in the config.')
        runner.logger.info('Evaluating the starting weights.')
        metrics = runner.val_loop.run()
        runner.message_hub.update_info('metrics_before_train', metrics)
