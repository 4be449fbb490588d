"""Few-shot synthesis (Table 2): FastGAN with an optional Top-K layer, its training and FID/KID."""
