"""The model file format, shared by the app and training (training imports it, never the reverse).

Modules (one job each):
- modelfile: the .safetensors model file: manifest, writing, reading and refusing bad files.
- preprocessing: the one preprocessing definition stored in a model file (geometry, scaling, normalization).
- imageio: images for a model (DICOM or PNG) -> float arrays, with their kind.
- networks: the architecture registry (build by name and arguments), heads and their layers.
- paths: where the bundled default model lives (resources/models/), without torch.
"""
