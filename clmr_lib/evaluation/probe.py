"""Linear and MLP probes on frozen embeddings (CLMR's linear evaluation), trained with Lightning."""
from __future__ import annotations

import copy
import logging
import warnings
from contextlib import contextmanager
from typing import Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clmr_lib.evaluation.threads import single_threaded
from clmr_lib.models.heads import ProbeHead


class Probe(L.LightningModule):
    """A probe on standardised embeddings: ``head((x - mean) / std)``.

    Inputs are chunk embeddings ``(batch, dim)``, or ``(batch, n_layers, dim)`` from an encoder that
    returns every layer; the probe then learns a softmax-weighted sum of the standardised layers
    before the head (the weighted-layer probe of SUPERB, Yang et al. 2021). Loss: binary
    cross-entropy for multi-label tasks, cross-entropy for single-label ones. Adam with weight decay,
    learning rate reduced by 10× after 5 epochs without validation improvement (CLMR's defaults).

    Args:
        in_dim: Embedding size (per layer).
        n_classes: Number of classes.
        task_type: ``"multilabel"`` or ``"multiclass"``.
        mlp: One hidden layer of ``hidden_dim`` units instead of a linear map.
        hidden_dim: Hidden units of the MLP probe.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay.
        n_layers: Layers of 3-D inputs; 0 for plain ``(batch, dim)`` embeddings.
        monitor: Metric ReduceLROnPlateau watches (``train/loss`` when there is no validation split).
    """

    def __init__(self, in_dim: int, n_classes: int, task_type: str, mlp: bool = False, hidden_dim: int = 512,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-6, n_layers: int = 0,
                 monitor: str = "valid/loss"):
        super().__init__()
        self.save_hyperparameters()
        shape = (n_layers, in_dim) if n_layers else (in_dim,)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))
        self.layer_logits = nn.Parameter(torch.zeros(n_layers)) if n_layers else None
        self.model = ProbeHead(in_dim, n_classes, mlp=mlp, hidden_dim=hidden_dim)
        self.loss_fn = nn.BCEWithLogitsLoss() if task_type == "multilabel" else nn.CrossEntropyLoss()

    def set_normalisation(self, embeddings: torch.Tensor) -> None:
        """Standardise inputs with the training embeddings' per-dimension (and per-layer) statistics."""
        self.mean.copy_(embeddings.mean(0))
        self.std.copy_(embeddings.std(0).clamp_min(1e-6))

    def layer_weights(self) -> Optional[torch.Tensor]:
        """Softmax weights of the layers (``None`` for 2-D inputs)."""
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.layer_logits is not None:
            x = torch.einsum("bld,l->bd", x, self.layer_weights())
        return self.model(x)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid (multi-label) or softmax (single-label) of the logits."""
        logits = self(x)
        return torch.sigmoid(logits) if self.hparams.task_type == "multilabel" else torch.softmax(logits, dim=-1)

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Chunk probabilities of a NumPy array of chunk embeddings (the interface all probes share)."""
        self.eval()
        return self.probabilities(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()

    def _loss(self, batch):
        x, y = batch
        target = y if self.hparams.task_type == "multilabel" else y.argmax(dim=-1)
        return self.loss_fn(self(x), target)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, on_epoch=True, on_step=False, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("valid/loss", self._loss(batch), on_epoch=True, prog_bar=True, batch_size=len(batch[0]))

    def configure_optimizers(self):
        optimizer = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.learning_rate,
                                     weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.monitor}}


class History(Callback):
    """Per-epoch training and validation loss (the probe's training curves) and the best-epoch weights.

    Early stopping ends training ``patience`` epochs after the best validation loss; the weights
    of that best epoch are restored at the end, so the probe evaluated is the one validation chose.

    Args:
        monitor: Metric that picks the best epoch (lower is better).
    """

    def __init__(self, monitor: str = "valid/loss"):
        self.monitor = monitor
        self.epochs: list[dict] = []
        self.best: Optional[float] = None
        self.best_state: Optional[dict] = None
        self.best_epoch: Optional[int] = None

    def on_train_epoch_end(self, trainer, module):
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch,
               "lr": float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else None}
        for key in ("train/loss", "valid/loss"):
            if key in metrics:
                row[key.replace("/", "_")] = float(metrics[key])
        self.epochs.append(row)
        value = metrics.get(self.monitor)
        if value is not None and (self.best is None or float(value) < self.best):
            self.best, self.best_epoch = float(value), trainer.current_epoch
            self.best_state = copy.deepcopy(module.state_dict())

    def on_train_end(self, trainer, module):
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def as_dict(self) -> dict:
        """The curves and the chosen epoch, JSON-ready."""
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "monitor": self.monitor, "best": self.best}


@contextmanager
def quiet_lightning():
    """Silence Lightning's per-fit banner (devices, tips, model summary), which would repeat for every probe."""
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
            yield
    finally:
        lightning_log.setLevel(level)


def chunk_arrays(embeddings: Sequence, labels: Sequence[Optional[np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-track chunk embeddings into one chunk-level dataset; each chunk carries its track's label.

    Tracks without embeddings (unreadable) or without a label (``None``) are left out.
    """
    xs, ys = [], []
    for emb, label in zip(embeddings, labels):
        if emb is None or len(emb) == 0 or label is None:
            continue
        xs.append(emb)
        ys.append(np.repeat(np.asarray(label, dtype=np.float32)[None], len(emb), axis=0))
    if not xs:
        return torch.zeros(0), torch.zeros(0)
    return torch.from_numpy(np.concatenate(xs)).float(), torch.from_numpy(np.concatenate(ys)).float()


def fit_probe(train: tuple[torch.Tensor, torch.Tensor], valid: Optional[tuple[torch.Tensor, torch.Tensor]],
              task_type: str, mlp: bool = False, max_epochs: int = 200, batch_size: int = 256,
              learning_rate: float = 1e-3, weight_decay: float = 1e-6, patience: int = 10, seed: int = 42,
              progress: bool = False, logger=False) -> Probe:
    """Train a probe on chunk embeddings (2-D, or 3-D with layers) with CLMR's linear evaluation recipe.

    Early stopping on the validation loss (patience 10) and learning rate ÷10 after 5 epochs
    without improvement; the best validation epoch's weights are kept. Without a validation split
    the probe trains for ``max_epochs`` and the plateau schedule watches the training loss.
    The training curves are in ``probe.history`` (see :class:`History`).
    """
    L.seed_everything(seed, workers=True, verbose=False)
    x, y = train
    has_valid = valid is not None and len(valid[0]) > 0
    monitor = "valid/loss" if has_valid else "train/loss"
    probe = Probe(x.shape[-1], y.shape[1], task_type, mlp=mlp, learning_rate=learning_rate,
                  weight_decay=weight_decay, n_layers=x.shape[1] if x.dim() == 3 else 0, monitor=monitor)
    probe.set_normalisation(x)
    train_loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    valid_loader = DataLoader(TensorDataset(*valid), batch_size=1024) if has_valid else None
    history = History(monitor if has_valid else "train/loss")
    callbacks = [history] + ([EarlyStopping("valid/loss", patience=patience, mode="min")] if has_valid else [])
    with quiet_lightning(), single_threaded():
        trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=logger, callbacks=callbacks,
                            enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                            num_sanity_val_steps=0, limit_val_batches=1.0 if has_valid else 0,
                            log_every_n_steps=1, deterministic=True)
        trainer.fit(probe, train_loader, valid_loader)
    probe.history = history.as_dict()
    probe.eval()
    return probe


def track_predictions(probe, embeddings: Sequence) -> list[Optional[np.ndarray]]:
    """Track-level predictions: the mean of the chunk probabilities (CLMR's evaluation).

    Args:
        probe: Anything with ``predict_proba(chunks) -> (n_chunks, n_classes)`` probabilities
            (:class:`Probe`, the scikit-learn probes, the supervised model's head).
        embeddings: Per-track chunk embeddings; ``None`` for unreadable tracks.

    Returns:
        One ``(n_classes,)`` array per track, ``None`` where the track had no embeddings.
    """
    with single_threaded():
        return [None if emb is None or len(emb) == 0 else np.asarray(probe.predict_proba(emb)).mean(0)
                for emb in embeddings]
