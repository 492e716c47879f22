"""autointerp scorers: how well an explanation predicts a latent's behaviour."""
