# LS-VID trained on whole tracklets, none dropped, instead of the authors'
# 48-frame chunks of lsvid.py (the test splits are whole in both).
_base_ = ['./lsvid.py']

train_dataloader = dict(
    dataset=dict(train_chunk_len=None, drop_short_tracklets=False))
