"""Runtime hook of a CPU-only bundle (CPU_ONLY=1): hide any GPU from PyTorch.

A CPU-only bundle leaves out the CUDA libraries that PyTorch loads only when it uses a GPU
(cuDNN's engines, cuSOLVER...), so on a machine that does have an NVIDIA GPU, `auto` must
still pick the CPU instead of failing in the first convolution. ``--device cuda`` then says
that no usable CUDA device was found and runs on the CPU.
"""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("RADASSIST_BUNDLE_FLAVOUR", "cpu-only")
