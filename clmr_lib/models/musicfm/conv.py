"""MusicFM's convolutional front-end: two residual 2-D conv blocks that subsample the mel spectrogram 4x."""
import torch
from torch import nn


class Res2dModule(nn.Module):
    """Residual block of two 3x3 convolutions with BatchNorm, as in MusicFM (Won et al., ICASSP 2024).

    ``relu(shortcut(x) + bn2(conv2(relu(bn1(conv1(x))))))`` where the shortcut is a strided 3x3
    convolution with BatchNorm (``conv3``/``bn3``) whenever the channel count or the resolution
    changes, and the identity otherwise.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: ``(frequency, time)`` stride of ``conv1`` and of the shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.has_shortcut_conv = in_channels != out_channels or max(stride) > 1
        if self.has_shortcut_conv:
            self.conv3 = nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride)
            self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``(batch, channels, freq, time)``."""
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        shortcut = self.bn3(self.conv3(x)) if self.has_shortcut_conv else x
        return self.relu(shortcut + out)


class Conv2dSubsampling(nn.Module):
    """Two stride-2 residual blocks, then a linear projection of the flattened ``(channel, freq)`` axes.

    Each stride-2 convolution maps a length ``L`` to ``ceil(L / 2)``, so ``T`` mel frames give
    ``ceil(ceil(T / 2) / 2)`` tokens (100 frames/s to 25 tokens/s).

    Args:
        in_channels: Input channels (1 for a mel spectrogram).
        hidden_channels: Channels of both residual blocks (``conv_dim``, 512 in MusicFM).
        out_dim: Output feature size (``encoder_dim``, 1024 in MusicFM).
        strides: Time strides of the two blocks (the frequency stride is always 2).
        n_bands: Number of input frequency bands.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_dim: int,
        strides: tuple[int, int] = (2, 2),
        n_bands: int = 128,
    ) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            Res2dModule(in_channels, hidden_channels, (2, strides[0])),
            Res2dModule(hidden_channels, hidden_channels, (2, strides[1])),
        )
        self.linear = nn.Linear(hidden_channels * (n_bands // 4), out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample a spectrogram.

        Args:
            x: ``(batch, n_bands, frames)`` or ``(batch, in_channels, n_bands, frames)``.

        Returns:
            ``(batch, tokens, out_dim)``.
        """
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = self.conv(x)
        batch, channels, bands, frames = x.shape
        # Channel-major flattening ("b c f t -> b t (c f)") is what the projection was trained on.
        x = x.permute(0, 3, 1, 2).reshape(batch, frames, channels * bands)
        return self.linear(x)
