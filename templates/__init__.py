"""Weight-less Cog templates: specs over the inference core."""
