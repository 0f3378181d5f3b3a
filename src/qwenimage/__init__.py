"""qwenimage: the Qwen-Image system (MMDiT + Wan VAE + Qwen2.5-VL conditioning), written from scratch.

Time convention, used everywhere in the package: t in [0, 1], t = 1 is pure noise,
x_t = (1 - t) * x0 + t * noise, and the model predicts the velocity v = noise - x0.
"""

__version__ = "0.1.0"
