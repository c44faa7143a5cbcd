"""A character-level GPT in PyTorch: nanoGPT's architecture, with a key-value cache."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.protocols import DataInfo
from genzoo_transformer.config import TransformerConfig

Cache = list[tuple[torch.Tensor, torch.Tensor]]  # per block: keys, values (B, nh, T, hs)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))  # (B, nh, T, hs)
        if past is not None:  # one new token attends to every cached position: no mask
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(  # fused (flash / memory-efficient) where available
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=past is None)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y)), (k, v)


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias), nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias), nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attn, present = self.attn(self.ln_1(x), past)
        x = x + attn
        return x + self.mlp(self.ln_2(x)), present


class GPT(nn.Module):
    """Token and learned position embeddings, n_layer blocks, a tied output layer."""

    def __init__(self, config: TransformerConfig, info: DataInfo):
        super().__init__()
        self.config = config
        vocab = info.vocab_size
        self.wte = nn.Embedding(vocab, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: one matrix in and out
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, cache: Cache | None = None, start: int = 0
                ) -> tuple[torch.Tensor, Cache]:
        """Logits (B, T, vocab) for tokens at positions start..start+T-1."""
        T = idx.shape[1]
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        present = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[i])
            present.append(kv)
        return self.lm_head(self.ln_f(x)), present

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean next-character cross-entropy in nats over a (B, T + 1) batch of windows."""
        x, y = batch[:, :-1], batch[:, 1:]
        logits, _ = self(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        return loss, {"bpc": loss / math.log(2)}

    # -- generation (the core's sampler drives these) ---------------------------------------
    @torch.no_grad()
    def prefill(self, ids: Sequence[int]) -> tuple[np.ndarray, Cache]:
        device = self.wte.weight.device
        logits, cache = self(torch.tensor([list(ids)], device=device))
        return logits[0, -1].float().cpu().numpy(), cache

    @torch.no_grad()
    def extend(self, token: int, cache: Cache, position: int) -> tuple[np.ndarray, Cache]:
        device = self.wte.weight.device
        logits, cache = self(torch.tensor([[token]], device=device), cache, position)
        return logits[0, -1].float().cpu().numpy(), cache
