"""The public chest X-ray datasets read in their published layouts (``--data`` names the folder
or its labels file); each reader returns ``training.records.Dataset``.

- common: reader options (LayoutOptions), labels tables (CSV or .csv.gz), the file-name index, missing images.
- nih: NIH ChestX-ray14 (Data_Entry_2017*.csv, images*/, BBox_List_2017.csv, official split lists).
- chexpert: CheXpert (train.csv / valid.csv, uncertainty policy, frontal/lateral filter).
- siim: SIIM-ACR Pneumothorax (train-rle.csv, <ImageId>.dcm; the relative RLE masks).
- vindr: VinDr-CXR / VinBigData (one row per box per reader; label rule, fused boxes).
- mimic: MIMIC-CXR-JPG (metadata, CheXpert/NegBio labels per study, split file, files/pNN/...).
- detect: which layout a folder or labels file is, and reading it with its reader.
"""
