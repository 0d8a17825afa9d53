"""Many files as studies: index, DICOMDIR, series assembly, lazy volumes, inspection.

Modules (one job each):
- index: files, folders and DICOMDIRs -> patient/study/series/instance tree (headers only).
- indexcache: the persisted index, InstanceInfo per unchanged file (size, mtime, ctime, inode).
- dicomdir: DICOMDIR record traversal; Referenced File IDs resolved inside the file-set root.
- frames: Number of Frames checked against the limit and what the pixel data holds.
- series: orders a series into slice stacks (head first on axial), names slices, splits, warns.
- volume: a lazily decoded stack (one contiguous stored-value buffer), background loading.
- thumbnails: series thumbnails as small uint8 arrays (middle slice, area-averaged).
- compare: the prior study's matching series; which slice of one stack lies at another's (mm, else index).
- inspection: `radassist inspect` logic: index, assemble, decode every image, versioned report.
- problems: FileProblem, a refused file as one line.
"""
