"""Throughput benchmarks behind `alexnet bench`: the training step (`train`) and the LRN
(`lrn`), each measured side by side with the plain PyTorch a user would write."""
