"""A character-level GPT in Keras 3 (``keras.ops`` only), with a key-value cache."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from genzoo.protocols import DataInfo
from genzoo_transformer.config import TransformerConfig


def _normal(std: float) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(stddev=std)


class Block(layers.Layer):
    """Pre-LayerNorm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: TransformerConfig, **kwargs: Any):
        super().__init__(**kwargs)
        c, self.n_head, self.p = cfg.n_embd, cfg.n_head, cfg.dropout
        proj_init = _normal(0.02 / math.sqrt(2 * cfg.n_layer))  # GPT-2's residual scaling
        self.ln_1 = layers.LayerNormalization(epsilon=1e-5, center=cfg.bias, name="ln_1")
        self.c_attn = layers.Dense(3 * c, use_bias=cfg.bias, kernel_initializer=_normal(0.02),
                                   name="c_attn")
        self.c_proj = layers.Dense(c, use_bias=cfg.bias, kernel_initializer=proj_init,
                                   name="c_proj")
        self.ln_2 = layers.LayerNormalization(epsilon=1e-5, center=cfg.bias, name="ln_2")
        self.fc = layers.Dense(4 * c, use_bias=cfg.bias, kernel_initializer=_normal(0.02),
                               name="fc")
        self.proj = layers.Dense(c, use_bias=cfg.bias, kernel_initializer=proj_init,
                                 name="proj")
        self.attn_drop = layers.Dropout(cfg.dropout, name="attn_drop")
        self.resid_drop = layers.Dropout(cfg.dropout, name="resid_drop")
        self.mlp_drop = layers.Dropout(cfg.dropout, name="mlp_drop")

    def attention(self, q: Any, k: Any, v: Any, causal: bool, training: bool) -> Any:
        """Scaled dot-product attention on (B, T, nh, hs) tensors."""
        if not (training and self.p > 0):  # the fused kernel, where the backend has one
            return ops.dot_product_attention(q, k, v, is_causal=causal)
        scores = ops.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(ops.shape(q)[-1])
        if causal:
            t, s = ops.shape(q)[1], ops.shape(k)[1]
            mask = ops.tril(ops.ones((t, s), "bool"), k=s - t)
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = self.attn_drop(ops.softmax(scores, axis=-1), training=training)
        return ops.einsum("bnts,bsnh->btnh", weights, v)

    def call(self, x: Any, past: tuple[Any, Any] | None = None, training: bool = False
             ) -> tuple[Any, tuple[Any, Any]]:
        b, t, c = ops.shape(x)
        q, k, v = ops.split(self.c_attn(self.ln_1(x)), 3, axis=-1)
        q, k, v = (ops.reshape(z, (b, t, self.n_head, c // self.n_head)) for z in (q, k, v))
        if past is not None:  # one new token attends to every cached position: no mask
            k, v = ops.concatenate([past[0], k], axis=1), ops.concatenate([past[1], v], axis=1)
        y = ops.reshape(self.attention(q, k, v, past is None, training), (b, t, c))
        x = x + self.resid_drop(self.c_proj(y), training=training)
        h = keras.activations.gelu(self.fc(self.ln_2(x)), approximate=False)
        return x + self.mlp_drop(self.proj(h), training=training), (k, v)


class GPT(keras.Model):
    """Token and learned position embeddings, n_layer blocks, a tied output layer."""

    def __init__(self, config: TransformerConfig, info: DataInfo, **kwargs: Any):
        super().__init__(name="gpt", **kwargs)
        self.config = config
        self.wte = layers.Embedding(info.vocab_size, config.n_embd,
                                    embeddings_initializer=_normal(0.02), name="wte")
        self.wpe = layers.Embedding(config.block_size, config.n_embd,
                                    embeddings_initializer=_normal(0.02), name="wpe")
        self.drop = layers.Dropout(config.dropout, name="drop")
        self.blocks = [Block(config, name=f"h{i}") for i in range(config.n_layer)]
        self.ln_f = layers.LayerNormalization(epsilon=1e-5, center=config.bias, name="ln_f")
        self.bpc_tracker = keras.metrics.Mean(name="bpc")
        self.run_tokens(np.zeros((1, 1), "int32"))  # create every weight now

    def run_tokens(self, idx: Any, cache: list[Any] | None = None, start: int = 0,
                training: bool = False) -> tuple[Any, list[Any]]:
        """Logits (B, T, vocab) for tokens at positions start..start+T-1.

        (Not called ``forward``: on Keras's torch backend that name is torch's.)
        """
        t = ops.shape(idx)[1]
        x = self.wte(idx) + self.wpe(ops.arange(start, start + t))  # (B, T, C)
        x = self.drop(x, training=training)
        present = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[i], training=training)
            present.append(kv)
        logits = ops.matmul(self.ln_f(x), ops.transpose(self.wte.embeddings))  # tied
        return logits, present

    def call(self, batch: Any, training: bool = False) -> Any:
        """Logits for a (B, T + 1) batch of windows: every position but the last."""
        return self.run_tokens(batch[:, :-1], training=training)[0]

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        """Mean next-character cross-entropy in nats."""
        loss = ops.mean(ops.sparse_categorical_crossentropy(x[:, 1:], y_pred, from_logits=True))
        self.bpc_tracker.update_state(loss / math.log(2))
        return loss

    # -- generation (the core's sampler drives these) ---------------------------------------
    def prefill(self, ids: Sequence[int]) -> tuple[np.ndarray, list[Any]]:
        logits, cache = self.run_tokens(np.array([list(ids)], "int32"))
        return np.asarray(ops.convert_to_numpy(logits[0, -1]), np.float64), cache

    def extend(self, token: int, cache: list[Any], position: int) -> tuple[np.ndarray, list[Any]]:
        logits, cache = self.run_tokens(np.array([[token]], "int32"), cache, position)
        return np.asarray(ops.convert_to_numpy(logits[0, -1]), np.float64), cache
