# TF-CLIP on PRID-2011 with the authors' recipe; see configs/tfclip/README.md.
# Its global batch of 16 stays 16 on N processes (docs/training.md).
_base_ = ['./tfclip/tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_prid2011.py']

train_dataloader = dict(sampler=dict(split_global_batch=True))
model = dict(head=dict(loss_triplet=dict(gather=True)))
sync_bn = 'torch'
