"""Measuring the core's models: FLOPs (fvcore, one InternViT block traced per kind) and the timing and
FLOP helpers of the benchmark scripts."""
