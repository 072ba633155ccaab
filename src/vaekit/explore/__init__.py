"""``vaekit explore``: walk through a trained run's latent space in the browser. :mod:`.state` computes what the
page shows and answers its requests; :mod:`.server` serves the page (``page.html``) and the API on 127.0.0.1;
:mod:`.standalone` writes the page as one file with the model's weights embedded."""

from .server import make_server
from .standalone import export_page
from .state import Explorer

__all__ = ["Explorer", "export_page", "make_server"]
