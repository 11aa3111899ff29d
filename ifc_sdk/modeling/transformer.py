"""The IFC transformer: encoder with memory-bus inter-frame communication, and the clip decoder.

Tensors are batch-first ``(N, L, C)`` throughout (the reference is sequence-first); attention runs through
``F.scaled_dot_product_attention`` on CUDA. Parameter names equal the reference's (``self_attn.in_proj_weight``,
``norm1``, ``linear1``, ``memory_bus``, ...), so its checkpoints load unchanged. All layers are post-norm
(the reference's ``PRE_NORM=False``), so there is no final encoder norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ifc_sdk.modeling import kernels


def frame_slices(n: int, chunk: int | None) -> list[slice]:
    """Slices of ``n`` frames in groups of ``chunk`` (None: one group). A trailing group of one frame is merged
    into the previous one: CPU kernels pick another algorithm for a batch of one, which would change the last
    bits of the result; any other grouping gives bit-identical results."""
    if chunk is None or chunk >= n:
        return [slice(0, n)]
    starts = list(range(0, n, chunk))
    if n - starts[-1] == 1 and len(starts) > 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, [*starts[1:], n])]


class MultiheadAttention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameters, batch-first.

    On accelerators it runs ``F.scaled_dot_product_attention`` (fused kernels). On the CPU it runs the
    reference's own computation (``F.multi_head_attention_forward``, explicit softmax), which reproduces its
    fp32 outputs bit for bit (`ifc_sdk.modeling.kernels`).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query (N, Lq, C)``, ``key/value (N, Lk, C)``, ``key_padding_mask (N, Lk)`` True = ignore
        -> ``(N, Lq, C)``."""
        dropout = self.dropout if self.training else 0.0
        if kernels.reference_kernels(query.device):
            out, _ = F.multi_head_attention_forward(
                query.transpose(0, 1),
                key.transpose(0, 1),
                value.transpose(0, 1),
                query.shape[-1],
                self.num_heads,
                self.in_proj_weight,
                self.in_proj_bias,
                None,
                None,
                False,
                dropout,
                self.out_proj.weight,
                self.out_proj.bias,
                training=self.training,
                key_padding_mask=key_padding_mask,
                need_weights=True,
            )
            return out.transpose(0, 1)
        n, lq, c = query.shape
        lk = key.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        h = self.num_heads
        q = F.linear(query, w_q, b_q).view(n, lq, h, c // h).transpose(1, 2)  # (N, h, Lq, C/h)
        k = F.linear(key, w_k, b_k).view(n, lk, h, c // h).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(n, lk, h, c // h).transpose(1, 2)
        attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        return self.out_proj(out.transpose(1, 2).reshape(n, lq, c))


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class EncoderLayer(nn.Module):
    """Post-norm DETR encoder layer: self-attention, then a ReLU feed-forward, each with residual + LayerNorm."""

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``src (N, L, C)`` -> ``(N, L, C)``."""
        q = k = _with_pos(src, pos)
        src = self.norm1(src + self.dropout(self.self_attn(q, k, src, key_padding_mask)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


class DecoderLayer(nn.Module):
    """Post-norm DETR decoder layer: query self-attention, cross-attention to memory, feed-forward."""

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads, dropout)
        self.multihead_attn = MultiheadAttention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``tgt (N, Q, C)``, ``memory/pos (N, L, C)``, ``query_pos (N, Q, C)`` -> ``(N, Q, C)``."""
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout(self.self_attn(q, k, tgt)))
        attn = self.multihead_attn(tgt + query_pos, memory + pos, memory, memory_key_padding_mask)
        tgt = self.norm2(tgt + self.dropout(attn))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ffn))


class IFCEncoder(nn.Module):
    """Frame encoder layers interleaved with memory-bus layers (inter-frame communication).

    Per layer: each frame's tokens plus its M bus tokens go through ``enc_layers[i]`` (bus tokens are never
    masked); then, for each bus slot, the slot's tokens of the clip's T frames attend to each other in
    ``bus_layers[i]`` (no positions, no mask).
    """

    def __init__(
        self, dim: int, num_heads: int, dim_feedforward: int, num_layers: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.enc_layers = nn.ModuleList(
            EncoderLayer(dim, num_heads, dim_feedforward, dropout) for _ in range(num_layers)
        )
        self.bus_layers = nn.ModuleList(
            EncoderLayer(dim, num_heads, dim_feedforward, dropout) for _ in range(num_layers)
        )

    def frame_layer(
        self,
        index: int,
        src: torch.Tensor,
        bus: torch.Tensor,
        pos: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``enc_layers[index]`` over each frame's tokens followed by its bus tokens.

        ``src (N, HW, C)``, ``bus (N, M, C)``, ``pos (N, HW+M, C)`` (frame then bus positions), mask
        ``(N, HW+M)`` -> (src, bus). Frames do not interact in this layer.
        """
        hw = src.shape[1]
        x = self.enc_layers[index](torch.cat([src, bus], dim=1), pos, key_padding_mask)
        return x[:, :hw], x[:, hw:]

    def forward(
        self,
        src: torch.Tensor,
        bus: torch.Tensor,
        pos: torch.Tensor,
        bus_pos: torch.Tensor,
        num_frames: int,
        key_padding_mask: torch.Tensor | None = None,
        first_layer_done: bool = False,
        frame_chunk: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``src/pos (B*T, HW, C)``, ``bus/bus_pos (B*T, M, C)``, mask ``(B*T, HW)`` -> (src, bus), same shapes.

        ``first_layer_done``: ``src``/``bus`` are already the outputs of ``enc_layers[0]`` (`frame_layer`).
        The first frame layer sees only the frame itself and the learned initial bus, so a caller sliding
        overlapping windows over a video can compute it once per frame.
        ``frame_chunk``: run the frame layers on groups of this many frames (same result; smaller
        intermediate activations, which the CPU allocates and page-faults afresh when they are large).
        """
        bt, hw, c = src.shape
        m = bus.shape[1]
        b = bt // num_frames
        pos = torch.cat([pos, bus_pos], dim=1)  # (B*T, HW+M, C)
        if key_padding_mask is not None:
            key_padding_mask = F.pad(key_padding_mask, (0, m), value=False)
        groups = frame_slices(bt, frame_chunk)
        for i, bus_layer in enumerate(self.bus_layers):
            if i > 0 or not first_layer_done:
                parts = [
                    self.frame_layer(
                        i, src[g], bus[g], pos[g], None if key_padding_mask is None else key_padding_mask[g]
                    )
                    for g in groups
                ]
                src, bus = parts[0] if len(parts) == 1 else (torch.cat(p) for p in zip(*parts))
            bus = (
                bus.reshape(b, num_frames, m, c).transpose(1, 2).reshape(b * m, num_frames, c)
            )  # (B*M, T, C)
            bus = bus_layer(bus)
            bus = bus.reshape(b, m, num_frames, c).transpose(1, 2).reshape(bt, m, c)  # (B*T, M, C)
        return src, bus


class ClipDecoder(nn.Module):
    """DETR decoder over the whole clip; returns every layer's output after the final LayerNorm."""

    def __init__(
        self, dim: int, num_heads: int, dim_feedforward: int, num_layers: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(dim, num_heads, dim_feedforward, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        memory: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None = None,
        return_intermediate: bool = True,
    ) -> torch.Tensor:
        """``memory/pos (B, L, C)``, ``query_pos (B, Q, C)`` -> ``(num_layers or 1, B, Q, C)``."""
        out = torch.zeros_like(query_pos)
        intermediate = []
        for layer in self.layers:
            out = layer(out, memory, pos, query_pos, memory_key_padding_mask)
            if return_intermediate:
                intermediate.append(self.norm(out))
        return torch.stack(intermediate) if return_intermediate else self.norm(out)[None]


class IFCTransformer(nn.Module):
    """Encoder + decoder of IFC with ``num_memory_bus`` learned bus tokens and their positions."""

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 8,
        dim_feedforward: int = 2048,
        num_enc_layers: int = 3,
        num_dec_layers: int = 3,
        num_memory_bus: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.memory_bus = nn.Parameter(torch.randn(num_memory_bus, dim))
        self.memory_pos = nn.Parameter(torch.randn(num_memory_bus, dim))
        self.encoder = IFCEncoder(dim, num_heads, dim_feedforward, num_enc_layers, dropout)
        self.clip_decoder = ClipDecoder(dim, num_heads, dim_feedforward, num_dec_layers, dropout)
        for name, p in self.named_parameters():
            if p.dim() > 1 and "memory" not in name:
                nn.init.xavier_uniform_(p)

    def forward(
        self,
        src: torch.Tensor,
        pos: torch.Tensor,
        query_embed: torch.Tensor,
        num_frames: int,
        mask: torch.Tensor | None = None,
        return_intermediate: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run one batch of clips.

        Args:
            src: ``(B*T, C, h, w)`` projected res5 features, frames of a clip consecutive.
            pos: ``(B*T, C, h, w)`` positional encoding.
            query_embed: ``(Q, C)`` learned query positions.
            num_frames: T.
            mask: ``(B*T, h, w)`` bool padding mask or None.

        Returns:
            hs: ``(L, B, Q, C)`` decoder outputs (L = decoder layers, or 1 without intermediates).
            memory: ``(B*T, C, h, w)`` encoder output of the frame tokens (input of the mask head).
        """
        bt, c, h, w = src.shape
        src = src.flatten(2).transpose(1, 2)  # (B*T, HW, C)
        pos = pos.flatten(2).transpose(1, 2)
        flat_mask = None if mask is None else mask.flatten(1)  # (B*T, HW)
        bus = self.memory_bus[None].expand(bt, -1, c)
        return self.forward_tokens(
            src, bus, pos, query_embed, num_frames, (h, w), flat_mask, return_intermediate
        )

    def first_frame_layer(
        self, src: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The window-independent start of the encoder: the first frame layer over each frame's tokens and
        the learned initial memory bus.

        ``src/pos (N, C, h, w)``, mask ``(N, h, w)`` -> tokens ``(N, HW, C)``, bus ``(N, M, C)`` and the
        position tokens ``(N, HW, C)``; pass them to `forward_tokens` with ``first_layer_done=True``.
        """
        n, c = src.shape[:2]
        m = self.memory_bus.shape[0]
        src = src.flatten(2).transpose(1, 2)
        pos = pos.flatten(2).transpose(1, 2)
        bus = self.memory_bus[None].expand(n, m, c)
        pos_all = torch.cat([pos, self.memory_pos[None].expand(n, m, c)], dim=1)
        key_padding_mask = None if mask is None else F.pad(mask.flatten(1), (0, m), value=False)
        tokens, bus = self.encoder.frame_layer(0, src, bus, pos_all, key_padding_mask)
        return tokens, bus, pos

    def forward_tokens(
        self,
        src: torch.Tensor,
        bus: torch.Tensor,
        pos: torch.Tensor,
        query_embed: torch.Tensor,
        num_frames: int,
        size: tuple[int, int],
        flat_mask: torch.Tensor | None = None,
        return_intermediate: bool = True,
        first_layer_done: bool = False,
        frame_chunk: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` on token layouts: ``src/pos (B*T, HW, C)``, ``bus (B*T, M, C)``, ``flat_mask (B*T, HW)``,
        ``size = (h, w)``. With ``first_layer_done`` the first frame layer has already run
        (`first_frame_layer`); ``frame_chunk``: see `IFCEncoder.forward`."""
        bt, _, c = src.shape
        h, w = size
        b, t, m = bt // num_frames, num_frames, self.memory_bus.shape[0]
        bus_pos = self.memory_pos[None].expand(bt, m, c)
        src, bus = self.encoder(
            src, bus, pos, bus_pos, t, flat_mask, first_layer_done=first_layer_done, frame_chunk=frame_chunk
        )

        # Decoder memory: all frames' tokens (frame-major), then all frames' bus tokens.
        memory = torch.cat([src.reshape(b, t * h * w, c), bus.reshape(b, t * m, c)], dim=1)
        mem_pos = torch.cat([pos.reshape(b, t * h * w, c), bus_pos.reshape(b, t * m, c)], dim=1)
        mem_mask = None
        if flat_mask is not None:
            mem_mask = F.pad(flat_mask.reshape(b, t * h * w), (0, t * m), value=False)
        query_pos = query_embed[None].expand(b, -1, -1)
        hs = self.clip_decoder(memory, mem_pos, query_pos, mem_mask, return_intermediate)
        return hs, src.transpose(1, 2).reshape(bt, c, h, w)
