# TF-CLIP on MARS on 8 GPUs x 2 sequences: the paper's global batch of 16
# (4 identities x 4 tracklets), drawn once per step and split across the
# GPUs. Triplets are mined over the whole batch (features all-gathered with
# their gradient) and the BNNecks normalise with the statistics of all 16
# (SyncBN), so each update is the single-GPU recipe's.
#   tools/dist_train.sh \
#     configs/tfclip/tfclip_vit-b16-clip-openai-pre_8xb2-t8-80e_mars.py 8
_base_ = ['./tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

train_dataloader = dict(
    batch_size=2,  # per GPU; tools/train.py derives it from the global 16
    sampler=dict(batch_size=16, split_global_batch=True))
model = dict(head=dict(loss_triplet=dict(gather=True)))
sync_bn = 'torch'
