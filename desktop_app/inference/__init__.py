"""Running a model file on a series: engine, fast CPU path, heatmaps, findings and overlays.

Modules (one job each):
- engine: InferenceEngine, the model runner shared by the GUI and `radassist predict` (plan -> batches -> findings).
- inputcheck: the check before running (a series' headers against the model's intended input) and InputCheck, the verdict every output carries.
- modelchoice: which model runs on a series with none forced: the first catalog model whose intended input fits its headers.
- sources: what a run iterates over (a volume, stack, file or images) as a SlicePlan.
- fastpath: the CPU forward pass by the fastest exact path (ONNX Runtime, checked vs PyTorch), int8.
- gradcam: heatmaps (LayerCAM fused with CAM, the default; Grad-CAM/CAM) with hooks, leaving the network untouched.
- devices: device choice (auto: CUDA, MPS, CPU), accelerator-failure detection, CPU threads.
- findings: Finding / SeriesResult dataclasses and the versioned findings JSON (to_json/from_json).
- lesiontext: lesions in words (the findings row's text, slices by Instance Number) and the too-many-lesions warning, shared by the GUI and predict.
- lesions: connected components of a mask as lesions (volume, longest diameter, HU, confidence) and their JSON.
- segrun: a segmentation model's run, slice by slice: per-pixel probabilities on the original grid, then the lesion table.
- overlays: peak region box and outline, burned-in overlay images.
- colormaps: the one home of heatmap colours: matplotlib's colour maps, heatmap_rgba.
- firststart: first start's device and measured time per image, cached per machine and model.
"""
