"""RadAssist training module: headless MONAI transfer learning that writes the app's model files.

Qt-free. Modules (one job each) are listed in training/README.md.
"""

import logging

logging.getLogger("training").addHandler(logging.NullHandler())
