"""Runtime hook: a UTF-8 character locale when the environment names none.

A session started without any locale variable (a bare service account, ``env -i``) gets the
C locale, and Qt then warns on stderr that it switches to C.UTF-8. Say it first; a locale the
user did set is left alone. (Python's own I/O is UTF-8 already: the executables run in UTF-8
mode, see radassist.spec.)
"""

import os
import sys

if sys.platform.startswith("linux") and not any(
    os.environ.get(name) for name in ("LC_ALL", "LC_CTYPE", "LANG")
):
    os.environ["LC_CTYPE"] = "C.UTF-8"
