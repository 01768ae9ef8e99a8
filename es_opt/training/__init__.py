"""The shell around the ES step: the training loop with its callbacks (progress bar, CSV,
TensorBoard, MLflow and Weights & Biases loggers, checkpoints, early stopping, IPOP/BIPOP
restarts), checkpoint files and learning-curve plots.

``fit``, ``History`` and ``Callback`` live in the core (:mod:`es_opt.loop`, :mod:`es_opt.history`)
because :meth:`ESOptimizer.fit <es_opt.ESOptimizer.fit>` calls them; they are re-exported here
beside the callbacks. Importing this package imports no optional dependency: tqdm, TensorBoard,
MLflow, wandb and matplotlib are imported by the callback or function that uses them.
"""

from ..history import History
from ..loop import Callback, fit
from .callbacks import Checkpoint, CSVLogger, EarlyStopping, ProgressBar, TensorBoardLogger
from .checkpoint import (
    check_architecture,
    load_checkpoint,
    load_state,
    save_checkpoint,
    save_state,
)
from .mlflow_logger import MLflowLogger
from .restarts import RestartOnStop
from .wandb_logger import WandbLogger

__all__ = [
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "MLflowLogger",
    "ProgressBar",
    "RestartOnStop",
    "TensorBoardLogger",
    "WandbLogger",
    "check_architecture",
    "fit",
    "load_checkpoint",
    "load_state",
    "save_checkpoint",
    "save_state",
]
