"""CLMR's contrastive LightningModule: encoder + SimCLR projector + NT-Xent, augmenting on device."""
from __future__ import annotations

from typing import Optional

import lightning as L
import torch

from clmr_lib.augmentations import build_augmentations
from clmr_lib.losses import NTXentLoss
from clmr_lib.models import ProjectionHead, build_encoder
from clmr_lib.training.optim import build_optimizer


class ContrastiveLearning(L.LightningModule):
    """Contrastive learning of musical representations (Spijkervet & Burgoyne, 2021).

    Each batch holds two random crops per track, ``(batch, 2, samples)``, straight from the
    DataLoader. The augmentation chain runs batched on the training device, both views go through
    the encoder in one pass, and NT-Xent pulls the two views of a track together. All arguments
    are plain values saved with ``save_hyperparameters()``, so ``load_from_checkpoint(path)``
    needs nothing else.

    Args:
        encoder: Name in :data:`clmr_lib.models.ENCODERS`.
        encoder_kwargs: Keyword arguments of the encoder.
        projection_dim: Output size of the projector.
        temperature: NT-Xent temperature.
        optimizer: ``"Adam"`` or ``"LARS"``.
        learning_rate: Adam learning rate (LARS scales its own from the batch size).
        weight_decay: Weight decay.
        batch_size: Tracks per batch (for LARS' learning rate).
        max_epochs: Epochs (for LARS' cosine schedule).
        sample_rate: Audio sample rate in Hz (for the filters, delay, pitch and reverb).
        augmentations: Probability of each transform, keyed as in
            :func:`clmr_lib.augmentations.build_augmentations`.
    """

    def __init__(self, encoder: str = "sample_cnn", encoder_kwargs: Optional[dict] = None, projection_dim: int = 64,
                 temperature: float = 0.5, optimizer: str = "Adam", learning_rate: float = 3e-4,
                 weight_decay: float = 1e-6, batch_size: int = 48, max_epochs: int = 200, sample_rate: int = 22050,
                 augmentations: Optional[dict] = None):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = build_encoder(encoder, **(encoder_kwargs or {}))
        dim = self.encoder.embedding_dim
        self.projector = ProjectionHead(dim, dim, projection_dim)
        self.augment = build_augmentations(sample_rate, **(augmentations or {}))
        self.criterion = NTXentLoss(temperature)
        # Indices (per split) of items whose audio could not be read, for the end-of-run report.
        self.failed_indices: dict[str, set[int]] = {"train": set(), "valid": set()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Representation of a waveform batch (the encoder's output, before the projector)."""
        return self.encoder(x)

    def views(self, batch, split: str = "train") -> tuple[torch.Tensor, bool]:
        """Drop unreadable items of a :class:`~clmr_lib.data.crops.RandomCrops` batch.

        Returns the usable crops and whether they form a valid batch. With fewer than two readable
        items the whole batch is returned and flagged, so that the step still runs (and, under
        DDP, still joins the collective gather) but contributes a zero loss.
        """
        audio, _, index, ok = batch
        if not bool(ok.all()):
            self.failed_indices[split].update(int(i) for i in index[~ok])
            if int(ok.sum()) < 2:
                return audio, False
            audio = audio[ok]
        return audio, audio.shape[0] >= 2

    def contrastive_loss(self, audio: torch.Tensor) -> torch.Tensor:
        """NT-Xent loss of ``(batch, 2, samples)`` crops after augmentation."""
        batch = audio.shape[0]
        x = torch.cat([audio[:, 0], audio[:, 1]], dim=0)
        with torch.no_grad():
            x = self.augment(x)
        z = self.projector(self.encoder(x))
        return self.criterion(z[:batch], z[batch:])

    def training_step(self, batch, batch_idx):
        audio, valid = self.views(batch)
        loss = self.contrastive_loss(audio)
        if not valid:
            return loss * 0.0
        self.log("train/loss", loss, prog_bar=True, batch_size=audio.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        audio, valid = self.views(batch, "valid")
        loss = self.contrastive_loss(audio)
        if valid:
            self.log("valid/loss", loss, prog_bar=True, batch_size=audio.shape[0], sync_dist=True)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        # LARS scales its learning rate with the global batch: all processes together.
        world = self.trainer.world_size if self._trainer is not None else 1
        return build_optimizer(self.parameters(), hp.optimizer, hp.learning_rate, hp.weight_decay,
                               hp.batch_size * world, hp.max_epochs)
