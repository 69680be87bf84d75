"""Frame-sequence networks: a per-frame CNN front-end, the LRCN classifier (CNN per frame -> RNN -> head), its
order-blind baseline (:class:`FramePoolingNet`), a ConvLSTM next-frame predictor and an SSIM score.

LRCN: Donahue et al. 2015, "Long-term Recurrent Convolutional Networks for Visual Recognition and Description"
(CVPR). Each frame is encoded on its own by a CNN, the sequence of frame vectors is read by a recurrent encoder,
and the pooled encoder output is classified. Because the CNN sees one frame at a time, everything about motion
(direction, speed, order) has to be learned by the recurrent encoder.

Shapes: N = batch, L = frames, C = channels, H x W = frame size, F = features per frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.conv_recurrent import ConvLSTM
from seqmodels.nn.masking import as_lengths
from seqmodels.nn.networks import ManyToOneNet
from seqmodels.nn.pooling import MeanPooling
from seqmodels.nn.recurrent import RecurrentEncoder


class SmallFrameCNN(nn.Module):
    """(B, C, H, W) -> (B, channels[-1] * (pooled_size**2 + 1)): what is in a frame and where.

    One block per entry of ``channels``: 3x3 convolution + ReLU + 2x2 max-pooling. The last feature maps are read
    twice: a global max over the frame (what: the same wherever the object is) and an adaptive average pool to
    ``pooled_size`` x ``pooled_size`` (where: which motion needs), concatenated.

    No batch normalisation: its batch statistics would let padded frames change the results of real ones.
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32), pooled_size: int = 4) -> None:
        super().__init__()
        if not channels or pooled_size < 1:
            raise ValueError(f"need at least one channel width and pooled_size >= 1, got {channels}, {pooled_size}")
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, int(width), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            previous = int(width)
        self.features = nn.Sequential(*layers)
        self.where = nn.AdaptiveAvgPool2d(pooled_size)
        self.output_size = previous * (pooled_size**2 + 1)

    def forward(self, frames: Tensor) -> Tensor:
        maps = self.features(frames)
        return torch.cat([maps.amax(dim=(2, 3)), self.where(maps).flatten(1)], dim=1)


class FrameEncoder(nn.Module):
    """Applies an image encoder to every frame: (N, L, C, H, W) -> (N, L, output_size); (N, C, H, W) -> (N, F).

    Args:
        in_channels: C of the frames (used by the default CNN).
        output_size: F, features per frame (after ``projection``).
        encoder: any module mapping (B, C, H, W) -> (B, F_enc) (e.g. a torchvision backbone with its classifier
            removed); None: :class:`SmallFrameCNN`.
        encoder_output_size: F_enc for a given ``encoder``; None: found by running it on one frame of
            ``frame_size``.
        frame_size: (H, W) used to find ``encoder_output_size``.
        channels, pooled_size: of the default CNN.
        dropout: dropout on the frame features.

    A linear layer + ReLU projects F_enc to ``output_size``. The ``output_size`` attribute lets
    :class:`~seqmodels.nn.ManyToOneNet` check it against its encoder's ``input_size``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        output_size: int = 64,
        encoder: nn.Module | None = None,
        encoder_output_size: int | None = None,
        frame_size: Sequence[int] = (32, 32),
        channels: Sequence[int] = (16, 32),
        pooled_size: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1 or output_size < 1:
            raise ValueError(f"in_channels and output_size must be >= 1, got {in_channels}, {output_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if encoder is None:
            encoder = SmallFrameCNN(in_channels, tuple(channels), pooled_size)
            encoder_output_size = encoder.output_size
        elif encoder_output_size is None:
            probe = torch.zeros(1, in_channels, *tuple(frame_size))
            with torch.no_grad():
                was_training = encoder.training
                encoder.eval()
                encoder_output_size = int(encoder(probe).flatten(1).shape[1])
                encoder.train(was_training)
        self.encoder = encoder
        self.projection = nn.Sequential(nn.Linear(encoder_output_size, output_size), nn.ReLU(), nn.Dropout(dropout))
        self.in_channels = in_channels
        self.output_size = output_size

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() == 4:
            return self.projection(self.encoder(frames).flatten(1))
        if frames.dim() != 5:
            raise ValueError(
                f"FrameEncoder expects frames (N, L, C, H, W) or (N, C, H, W), got shape {tuple(frames.shape)}"
            )
        N, L = frames.shape[:2]
        if frames.shape[2] != self.in_channels:
            raise ValueError(
                f"frames have {frames.shape[2]} channels but in_channels={self.in_channels}; set in_channels"
            )
        features = self.encoder(frames.reshape(N * L, *frames.shape[2:])).flatten(1)
        return self.projection(features).view(N, L, -1)


class LRCN(ManyToOneNet):
    """LRCN (Donahue et al. 2015): :class:`FrameEncoder` per frame -> recurrent encoder -> masked pooling -> head.

    A :class:`~seqmodels.nn.ManyToOneNet` whose front-end is a :class:`FrameEncoder`, so it has the same inputs
    ``(frames (N, L, C, H, W), lengths (N,))``, output (N, num_outputs) and step mode (one frame (N, C, H, W) at a
    time, for a prediction after every frame).

    Args:
        encoder: a ``batch_first=True`` :class:`~seqmodels.nn.RecurrentEncoder` with ``input_size`` =
            ``frame_encoder.output_size``.
        num_outputs: classes (logits) or regression targets.
        frame_encoder: a :class:`FrameEncoder` (None: the default small CNN for ``in_channels`` channels with
            ``encoder.input_size`` features).
        in_channels: channels of the frames, for the default frame encoder.
        pooling, head_hidden_size, dropout: as :class:`~seqmodels.nn.ManyToOneNet`.
    """

    def __init__(
        self,
        encoder: RecurrentEncoder,
        num_outputs: int,
        frame_encoder: FrameEncoder | None = None,
        in_channels: int = 1,
        pooling: str = "last",
        head_hidden_size: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        if frame_encoder is None:
            frame_encoder = FrameEncoder(in_channels=in_channels, output_size=encoder.input_size)
        super().__init__(
            encoder,
            num_outputs,
            frontend=frame_encoder,
            pooling=pooling,
            head_hidden_size=head_hidden_size,
            dropout=dropout,
        )


class FramePoolingNet(nn.Module):
    """The order-blind baseline of :class:`LRCN`: :class:`FrameEncoder` per frame -> mean over valid frames -> head.

    The mean of per-frame features is the same for any order of the frames, so this network can tell what is in a
    clip but not which way it moves; the gap between it and an LRCN with the same frame encoder is what the
    recurrence adds.

    Inputs ``(frames (N, L, C, H, W), lengths (N,))``; output (N, num_outputs).
    """

    def __init__(self, frame_encoder: FrameEncoder, num_outputs: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.frontend = frame_encoder
        self.pooling = MeanPooling()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(frame_encoder.output_size, num_outputs))
        self.num_outputs = num_outputs

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        lengths = as_lengths(lengths)
        return self.head(self.pooling(self.frontend(inputs), lengths))


class ConvLSTMFramePredictor(nn.Module):
    """Next-frame prediction with a :class:`~seqmodels.nn.conv_recurrent.ConvLSTM` (Shi et al. 2015), many-to-many.

    The ConvLSTM reads the context frames (padded past each length: its state is taken at each clip's last valid
    frame), then keeps going in its step mode for ``horizon`` more steps, each fed the frame it has just predicted.
    A 1x1 convolution maps its last layer's hidden channels to frame channels: with ``residual`` (the default) a
    change to the frame it has just read, ``clamp(frame + tanh(change), 0, 1)``, starting at zero so an untrained
    predictor copies the last frame; otherwise the frame itself through a sigmoid (which tends to settle on a
    blank, blurred frame: the MSE-optimal guess before motion is learned). Frames are in [0, 1].

    Args:
        in_channels: C of the frames.
        hidden_size: hidden channels of every ConvLSTM layer.
        num_layers, kernel_size: of the ConvLSTM.
        horizon: frames predicted after the context.
        residual: predict a change to the current frame (see above) rather than the frame.

    Inputs ``(frames (N, L, C, H, W), lengths (N,))``; output (N, horizon, C, H, W).
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden_size: int = 32,
        num_layers: int = 2,
        kernel_size: int = 3,
        horizon: int = 4,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.rnn = ConvLSTM(in_channels, hidden_size, kernel_size, num_layers=num_layers, batch_first=True)
        self.to_frame = nn.Conv2d(hidden_size, in_channels, 1)
        self.horizon = horizon
        self.residual = residual
        if residual:
            nn.init.zeros_(self.to_frame.weight)
            nn.init.zeros_(self.to_frame.bias)

    def _next_frame(self, hidden: Tensor, frame: Tensor) -> Tensor:
        if self.residual:
            return (frame + torch.tanh(self.to_frame(hidden))).clamp(0.0, 1.0)
        return torch.sigmoid(self.to_frame(hidden))

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        lengths = as_lengths(lengths, inputs.device)
        outputs, state = self.rnn(inputs, lengths)
        index = (lengths - 1).view(-1, 1, 1, 1, 1)
        hidden = outputs.gather(1, index.expand(-1, 1, *outputs.shape[2:])).squeeze(1)
        frame = inputs.gather(1, index.expand(-1, 1, *inputs.shape[2:])).squeeze(1)  # the last context frame
        predicted = []
        for step in range(self.horizon):
            if step:
                hidden, state = self.rnn.step(frame, state)
            frame = self._next_frame(hidden, frame)
            predicted.append(frame)
        return torch.stack(predicted, dim=1)


def ssim(predicted: Tensor, target: Tensor, window: int = 7, data_range: float = 1.0) -> Tensor:
    """Mean structural similarity (Wang et al. 2004) of two image batches (..., C, H, W), a uniform ``window``.

    Uses the usual constants (K1 = 0.01, K2 = 0.03) and a ``window`` x ``window`` box filter without padding (a
    small window suits small frames; 1 means identical).
    """
    if predicted.shape != target.shape or predicted.dim() < 3:
        raise ValueError(
            f"ssim needs two (..., C, H, W) batches of one shape, got {tuple(predicted.shape)}, {tuple(target.shape)}"
        )
    x = predicted.reshape(-1, 1, *predicted.shape[-2:]).double()
    y = target.reshape(-1, 1, *target.shape[-2:]).double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = F.avg_pool2d(x, window, 1), F.avg_pool2d(y, window, 1)
    var_x = F.avg_pool2d(x * x, window, 1) - mu_x**2
    var_y = F.avg_pool2d(y * y, window, 1) - mu_y**2
    cov = F.avg_pool2d(x * y, window, 1) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.mean().to(predicted.dtype)


__all__ = ["LRCN", "ConvLSTMFramePredictor", "FrameEncoder", "FramePoolingNet", "SmallFrameCNN", "ssim"]
