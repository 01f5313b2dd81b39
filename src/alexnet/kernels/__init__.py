"""Fused CUDA (Triton) kernels with pure-PyTorch references.

`alexnet.kernels.lrn_triton`: the cross-channel LRN of §3.3, forward and backward; it needs
Triton, so import it where it is used (`alexnet.models.lrn` does, and falls back to
`lrn_reference`).
"""
