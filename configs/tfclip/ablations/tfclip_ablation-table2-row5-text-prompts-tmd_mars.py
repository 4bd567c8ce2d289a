# TF-CLIP ablation, main paper Table 2 row 5 (supplement Table 4, B5):
# CLIP-ReID's learned text prompts (as row 1) with TMD: the temporal neck,
# the temporal and frame features and their losses as in the full model,
# no SSP. Our reading of the row (no config of the authors).
_base_ = ['./tfclip_ablation-table2-row1-text-prompts_mars.py']

model = dict(
    # TF-CLIP's TMD, as configs/_base_/models/tfclip_vit-b16.py.
    neck=dict(
        _delete_=True,
        type='TemporalMemoryDiffusion',
        embed_dims=768,
        num_layers=1,
        num_heads=12,
        num_frames=8,
        detach_input=True),
    head=dict(
        with_temporal=True,
        loss_frame=dict(
            _delete_=True,
            type='mmpretrain.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original',
            loss_weight=1.0),
        embedding_parts=('cls', 'proj', 'temporal')))
