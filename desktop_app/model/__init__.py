"""The model file format, shared by the app and training (training imports it, never the reverse).

Modules (one job each):
- modelfile: the .safetensors model file: writing, reading and refusing bad files (the public door).
- manifest: what a model file says about itself (ModelManifest), validated strictly.
- applicability: intended input, out-of-distribution statistics (Mahalanobis), temperatures.
- tensorfile: the safetensors container: header parsing with limits, pickle refusal, tensor hash.
- modelcard: the Markdown model card generated from a manifest.
- preprocessing: the one preprocessing definition stored in a model file (geometry, scaling, normalization).
- imageio: images for a model (DICOM or PNG) -> float arrays, with their kind.
- capture: ForwardCapture, a forward hook for one `with` block (the OOD features are caught with it; torch only).
- networks: the architecture registry (build by name and arguments), heads and their layers, the UNet.
- paths: where the bundled default model lives (resources/models/), without torch.
- catalog: the bundled and installed model files, listed from their manifests (unusable ones with their reason).
"""
