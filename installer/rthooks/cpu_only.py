"""Runtime hook of the CPU flavour (CPU_ONLY=1): no GPU is ever used.

The CPU flavour carries no PyTorch (the app runs its models with ONNX Runtime's CPU provider),
so ``--device cuda`` or ``mps`` says in one line that it runs on the CPU, and ``radassist info``
says "auto: this is a CPU-only bundle" (from bundle-info.json). Hiding any GPU also keeps a
library that could see one (a future ONNX Runtime provider) on the CPU, as this flavour promises.
"""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("RADASSIST_BUNDLE_FLAVOUR", "cpu-only")
