"""ddcmi: dataset distillation with class-aware conditional mutual information (CMI).

Re-implements Zhong et al., "Going Beyond Feature Similarity: Effective Dataset Distillation based on
Class-aware Conditional Mutual Information" (ICLR 2025, arXiv 2412.09945).
"""
__version__ = "0.1.0"

from ._startup import interrupt_guard as _interrupt_guard  # noqa: E402

with _interrupt_guard():  # Ctrl-C while the command line starts: one line, no traceback
    from . import _malloc  # noqa: E402

    _malloc.tune()  # before any large tensor exists: glibc keeps freed buffers (see ddcmi/_malloc.py)

    from . import keys, rng, store  # noqa: E402,F401
    from .utils import loaded_commit as _loaded_commit  # noqa: E402

    _loaded_commit()  # the commit of the code being imported, for every provenance this process writes
    from .cmi import CMIConfig, CMIRegularizer, empirical_cmi, measure_cmi, proxy_probabilities  # noqa: E402
    from .config import DistillConfig  # noqa: E402
    from .data import Dataset, list_datasets, load_dataset  # noqa: E402
    from .distill import Distiller, DistillResult, distill  # noqa: E402
    from .errors import (ArtefactError, ConfigError, DatasetNotFoundError, DDCMIError,  # noqa: E402
                         NonFiniteLossError, UnknownNameError)
    from .evaluate import EvalConfig, evaluate_synset  # noqa: E402
    from .methods import list_methods  # noqa: E402
    from .models import create_model, list_models  # noqa: E402
    from .profiles import PROFILES, make_config, resolve_config  # noqa: E402
    from .proxy import PoolConfig, ProxyPool  # noqa: E402
    from .synset import SyntheticSet  # noqa: E402

__all__ = [
    "__version__", "empirical_cmi", "measure_cmi", "proxy_probabilities", "CMIConfig", "CMIRegularizer",
    "DistillConfig", "Dataset", "list_datasets", "load_dataset", "Distiller", "DistillResult", "distill",
    "DDCMIError", "ArtefactError", "ConfigError", "DatasetNotFoundError", "NonFiniteLossError", "UnknownNameError",
    "EvalConfig", "evaluate_synset", "list_methods", "create_model", "list_models", "PROFILES", "make_config", "resolve_config", "store",
    "PoolConfig", "ProxyPool", "SyntheticSet",
]
