"""sense_nodes: airspace and user awareness from cellular base stations.

The generated message code (``sense_nodes.msg``, ``sense_nodes.srv``) is
installed by the ROS build into its own ``sense_nodes`` directory; extending
``__path__`` makes it and this source tree one package.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
