"""`tinygrad_edu.nn.functional`, PyTorch's place for the functional forms of the ops:
`import tinygrad_edu.nn.functional as F`. The functions live in `tinygrad_edu.functional`."""

from ..functional import *  # noqa: F403 (this module is the re-export)
from ..functional import __all__  # noqa: F401
