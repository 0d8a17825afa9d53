"""Plumbing every other package stands on: no DICOM, no torch, no Qt.

Modules (one job each):
- errors: the project's exceptions; each carries the path and a one-line reason.
- atomicio: whole-file writes through a temporary file and a rename (owner-only where asked); killed writers' temporary files found and removed.
- filelock: an exclusive lock between processes on a lock file (flock / msvcrt).
- userdirs: the user data folder (platformdirs; RADASSIST_DATA_DIR overrides) and its files.
- hashedpaths: instance file names from hashed UIDs (<h(study)>/<h(series)>/<h(sop)>.dcm).
- cancel: the one stop-flag and progress-callback types that long work takes.
- cpus: how many CPUs this process may use (logical, physical cores), without torch.
- safetext: text from files and peers escaped for terminals, logs, TSV/CSV and labels.
- logsetup: the entry points' logging: a rotating log file for everything, only the app's own
  one-line records on the terminal.
"""
