# TF-CLIP on MARS with the authors' recipe; see configs/tfclip/README.md.
#   tools/dist_train.sh configs/tfclip_mars.py 8
# The paper's global batch of 16 on any number of processes: each step
# draws one batch of 4 identities x 4 tracklets and each of N processes
# takes 16 / N of it, with triplets mined over all processes and SyncBN in
# the BNNecks (docs/training.md). On one process this is the 1xb16 config.
_base_ = ['./tfclip/tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

train_dataloader = dict(sampler=dict(split_global_batch=True))
model = dict(head=dict(loss_triplet=dict(gather=True)))
sync_bn = 'torch'
