"""vaekit: Variational Autoencoders in PyTorch, from the tutorial to honest log-likelihoods.

>>> import vaekit
>>> cfg = vaekit.RunConfig().override(train={"epochs": 5})
>>> result = vaekit.train(cfg, "runs/demo")            # doctest: +SKIP
>>> model = vaekit.load("runs/demo")                    # doctest: +SKIP
>>> vaekit.evaluate(model, data.x, iw_samples=1000)    # doctest: +SKIP
"""

__version__ = "0.1.0"

from . import bounds, kl, objectives  # noqa: E402
from .checkpoint import load  # noqa: E402
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_config  # noqa: E402
from .data import load_dataset  # noqa: E402
from .errors import CheckpointError, DataError, DivergenceError, VaekitError  # noqa: E402
from .evaluate import evaluate  # noqa: E402
from . import fitted  # noqa: E402
from .encode import encode  # noqa: E402  (vaekit.encode: the function; the module stays vaekit.encode's import)
from .fitted import fit_prior  # noqa: E402
from .models import VAE, build_model  # noqa: E402
from .train import train  # noqa: E402
from .tutorial import VariationalAutoencoder  # noqa: E402

__all__ = [
    "VAE", "CheckpointError", "DataConfig", "DataError", "DivergenceError", "ModelConfig", "RunConfig", "TrainConfig",
    "VaekitError", "VariationalAutoencoder", "bounds", "build_model", "encode", "evaluate", "fit_prior", "fitted", "kl", "load", "load_config",
    "load_dataset", "objectives", "train",
]
