"""cvtutor: executable computer-vision tutorials, one per paper, with the code that runs them.

Start a notebook with ``rt = cvtutor.setup(profile, seed)``; show the package's code with
``cvtutor.show(fn)``; see ``python -m cvtutor list`` for the tutorials.
"""
from cvtutor.runtime import setup
from cvtutor.show import show

__version__ = "0.1.0"
__all__ = ["setup", "show", "__version__"]
