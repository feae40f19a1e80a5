"""The HTTP face: a jupyter_server extension serving `/api/ingestion/*` (`app`), its
OpenAPI document (`spec`) and its typed reads of requests (`params`). It calls the service
only, like every face.

Enabled on install by `etc/jupyter/jupyter_server_config.d/softcopy.json`, which names
this package; jupyter_server then asks it for its extension points.
"""

from softcopy.api.app import SoftcopyAPI, _jupyter_server_extension_points

__all__ = ["SoftcopyAPI", "_jupyter_server_extension_points"]
