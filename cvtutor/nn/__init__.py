"""Building blocks shared by several papers (small CNNs, MLPs, decoders, point-set networks)."""
