"""A character-level GPT in Keras 3 (``keras.ops`` only), with a key-value cache."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from genzoo.backends.keras import graph_function
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

    def attention(self, q: Any, k: Any, v: Any, training: bool) -> Any:
        """Causal scaled dot-product attention on (B, T, nh, hs) tensors."""
        if not (training and self.p > 0):  # the fused kernel, where the backend has one
            return ops.dot_product_attention(q, k, v, is_causal=True)
        t = ops.shape(q)[1]
        return self._masked_attention(q, k, v, ops.tril(ops.ones((t, t), "bool")), training)

    def _masked_attention(self, q: Any, k: Any, v: Any, mask: Any, training: bool) -> Any:
        """Attention where ``mask`` (broadcast to (B, nh, T, S)) says what each query sees."""
        scores = ops.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(ops.shape(q)[-1])
        scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = self.attn_drop(ops.softmax(scores, axis=-1), training=training)
        return ops.einsum("bnts,bsnh->btnh", weights, v)

    def _qkv(self, x: Any) -> tuple[Any, Any, Any]:
        b, t, c = ops.shape(x)
        q, k, v = ops.split(self.c_attn(self.ln_1(x)), 3, axis=-1)
        return tuple(ops.reshape(z, (b, t, self.n_head, c // self.n_head)) for z in (q, k, v))

    def _residuals(self, x: Any, y: Any, training: bool) -> Any:
        """Add the attention output ``y`` (B, T, nh, hs), then the MLP."""
        x = x + self.resid_drop(self.c_proj(ops.reshape(y, ops.shape(x))), training=training)
        h = keras.activations.gelu(self.fc(self.ln_2(x)), approximate=False)
        return x + self.mlp_drop(self.proj(h), training=training)

    def call(self, x: Any, training: bool = False) -> tuple[Any, tuple[Any, Any]]:
        """The block's output for (B, T, C) inputs, and their keys and values."""
        q, k, v = self._qkv(x)
        return self._residuals(x, self.attention(q, k, v, training), training), (k, v)

    def step(self, x: Any, keys: Any, values: Any, position: Any
             ) -> tuple[Any, tuple[Any, Any]]:
        """One token (B, 1, C) at ``position``, against caches of fixed size (B, S, nh, hs).

        The token's key and value are written into slot ``position``; it attends to slots
        ``0..position``. Fixed shapes let a graph compiled once serve every position.
        """
        q, k, v = self._qkv(x)
        slots = ops.arange(ops.shape(keys)[1])
        here = ops.reshape(ops.equal(slots, position), (1, -1, 1, 1))
        keys, values = ops.where(here, k, keys), ops.where(here, v, values)
        visible = ops.reshape(ops.less_equal(slots, position), (1, 1, 1, -1))
        y = self._masked_attention(q, keys, values, visible, training=False)
        return self._residuals(x, y, training=False), (keys, values)


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
        self._prefill_graph = graph_function(self._prefill_step)  # traced on first use
        self._extend_graph = graph_function(self._extend_step)
        self.run_tokens(np.zeros((1, 1), "int32"))  # create every weight now

    def run_tokens(self, idx: Any, training: bool = False) -> tuple[Any, list[Any]]:
        """Logits (B, T, vocab) for tokens at positions 0..T-1, and each block's keys and
        values.

        (Not called ``forward``: on Keras's torch backend that name is torch's.)
        """
        x = self.wte(idx) + self.wpe(ops.arange(ops.shape(idx)[1]))  # (B, T, C)
        x = self.drop(x, training=training)
        present = []
        for block in self.blocks:
            x, kv = block(x, training=training)
            present.append(kv)
        return self._logits(x), present

    def _logits(self, x: Any) -> Any:
        return ops.matmul(self.ln_f(x), ops.transpose(self.wte.embeddings))  # tied

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
    # Both steps run on fixed shapes, traced once into a graph on TensorFlow: calling the
    # layers eagerly costs far more per token than their arithmetic. The cache holds
    # ``block_size`` slots per block; slots past the current position are ignored.
    def prefill(self, ids: Sequence[int]) -> tuple[np.ndarray, list[Any]]:
        """Run a context (up to ``block_size`` tokens) padded to the full window: causal
        attention keeps the padding out of every real position."""
        idx = np.zeros((1, self.config.block_size), "int32")
        idx[0, : len(ids)] = ids
        logits, cache = self._prefill_graph(ops.convert_to_tensor(idx),
                                            ops.convert_to_tensor(len(ids) - 1, "int32"))
        return np.asarray(ops.convert_to_numpy(logits), np.float64), cache

    def extend(self, token: int, cache: list[Any], position: int) -> tuple[np.ndarray, list[Any]]:
        logits, cache = self._extend_graph(ops.convert_to_tensor([[token]], "int32"),
                                           ops.convert_to_tensor(position, "int32"), cache)
        return np.asarray(ops.convert_to_numpy(logits), np.float64), cache

    def _prefill_step(self, idx: Any, last: Any) -> tuple[Any, list[Any]]:
        logits, cache = self.run_tokens(idx)
        return ops.take(logits[0], last, axis=0), cache

    def _extend_step(self, idx: Any, position: Any, cache: list[Any]) -> tuple[Any, list[Any]]:
        x = self.wte(idx) + self.wpe(ops.reshape(position, (1,)))  # (1, 1, C)
        present = []
        for block, (keys, values) in zip(self.blocks, cache):
            x, kv = block.step(x, keys, values, position)
            present.append(kv)
        return self._logits(x)[0, -1], present
