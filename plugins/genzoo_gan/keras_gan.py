"""The GAN in Keras 3: the step is written once in ``keras.ops``; only the gradient
(``genzoo.backends.keras.value_and_grad``) differs between the TensorFlow and torch
backends."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from genzoo.backends.keras import unpack_inputs, value_and_grad
from genzoo.errors import ConfigError
from genzoo.protocols import DataInfo
from genzoo_gan.config import GANConfig

EVAL_SEED = 1234  # evaluation noise is fixed, so validation numbers compare across steps


def discriminator_loss(real_logits: Any, fake_logits: Any, kind: str = "bce") -> Any:
    """``bce``: the sum of two cross-entropies, real images labelled 1, generated ones 0.
    ``hinge``: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    if kind == "hinge":
        return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits: Any, kind: str = "bce") -> Any:
    """``bce``, non-saturating: G is trained to make D answer "real", -log D(G(z)).
    ``hinge``: -E[D(G(z))]."""
    if kind == "hinge":
        return -ops.mean(fake_logits)
    return ops.mean(ops.softplus(-fake_logits))


def _unit(x: Any) -> Any:
    return x / (ops.sqrt(ops.sum(ops.square(x))) + 1e-12)


class _SpectralNorm:
    """Spectral normalisation (Miyato et al., 2018), as PyTorch's ``spectral_norm``: the
    kernel, as a matrix ``W`` of one column per output unit, is divided by ``sigma = u^T
    W^T v``, the estimate of its largest singular value from one power iteration per
    training call (``u``, ``v`` kept as non-trainable weights, started with 15)."""

    kernel: Any

    def _build_vectors(self) -> None:
        rows, cols = int(math.prod(self.kernel.shape[:-1])), int(self.kernel.shape[-1])
        rng = np.random.default_rng(0)
        u, v = rng.standard_normal(cols), rng.standard_normal(rows)
        w = np.asarray(ops.convert_to_numpy(self.kernel)).reshape(rows, cols)
        for _ in range(15):
            v = w @ u
            v /= np.linalg.norm(v) + 1e-12
            u = v @ w
            u /= np.linalg.norm(u) + 1e-12
        self.sn_u = self.add_weight(shape=(cols,), trainable=False, name="sn_u",  # type: ignore[attr-defined]
                                    initializer=keras.initializers.Constant(u))
        self.sn_v = self.add_weight(shape=(rows,), trainable=False, name="sn_v",  # type: ignore[attr-defined]
                                    initializer=keras.initializers.Constant(v))

    def normalized_kernel(self, training: bool) -> Any:
        w = ops.reshape(self.kernel, (-1, self.kernel.shape[-1]))  # (fan-in, units)
        u, v = self.sn_u.value, self.sn_v.value
        if training:
            v = _unit(ops.matmul(ops.stop_gradient(w), u))
            u = _unit(ops.matmul(v, ops.stop_gradient(w)))
            self.sn_u.assign(u)
            self.sn_v.assign(v)
        sigma = ops.sum(u * ops.matmul(v, w))
        return self.kernel / sigma


class SpectralDense(_SpectralNorm, layers.Dense):
    """A ``Dense`` layer whose kernel is spectrally normalised."""

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._build_vectors()

    def call(self, inputs: Any, training: bool = False) -> Any:
        x = ops.matmul(inputs, self.normalized_kernel(training))
        if self.use_bias:
            x = x + self.bias
        return self.activation(x) if self.activation is not None else x


class SpectralConv2D(_SpectralNorm, layers.Conv2D):
    """A channels-last ``Conv2D`` layer whose kernel is spectrally normalised."""

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._build_vectors()

    def call(self, inputs: Any, training: bool = False) -> Any:
        x = self.convolution_op(inputs, self.normalized_kernel(training))
        if self.use_bias:
            x = x + ops.reshape(self.bias, (1, 1, 1, self.filters))
        return self.activation(x) if self.activation is not None else x


def _generator(cfg: GANConfig, shape: tuple[int, ...], classes: int) -> keras.Model:
    h, w, c = shape
    # an InfoGAN's latent is z with its one-hot code beside it
    z = latent = keras.Input((cfg.latent_dim + cfg.info_codes,), name="g_input")
    inputs: Any = latent
    if classes:  # a cGAN: the one-hot label beside z
        label = keras.Input((classes,), name="g_labels")
        inputs = [latent, label]
        z = layers.Concatenate(name="g_with_label")([latent, label])
    if cfg.arch == "mlp":
        for i, width in enumerate(cfg.g_hidden):
            z = layers.Dense(width, name=f"g_dense{i}")(z)
            z = layers.LeakyReLU(cfg.leak, name=f"g_act{i}")(z)
        z = layers.Dense(h * w * c, activation="tanh", name="g_out")(z)
        out = layers.Reshape(shape, name="g_reshape")(z)
    else:
        ch = cfg.channels
        z = layers.Dense(2 * ch * (h // 4) * (w // 4), use_bias=False, name="g_project")(z)
        z = layers.BatchNormalization(name="g_bn0")(z)
        z = layers.ReLU(name="g_act0")(z)
        z = layers.Reshape((h // 4, w // 4, 2 * ch), name="g_reshape")(z)  # (B, H/4, W/4, 2ch)
        z = layers.Conv2DTranspose(ch, 4, strides=2, padding="same", use_bias=False,
                                   name="g_deconv0")(z)
        z = layers.BatchNormalization(name="g_bn1")(z)
        z = layers.ReLU(name="g_act1")(z)  # (B, H/2, W/2, ch)
        out = layers.Conv2DTranspose(c, 4, strides=2, padding="same", activation="tanh",
                                     name="g_deconv1")(z)  # (B, H, W, C)
    return keras.Model(inputs, out, name="g_net")


def _discriminator(cfg: GANConfig, shape: tuple[int, ...], classes: int) -> keras.Model:
    x = image = keras.Input(shape, name="d_input")
    dense = SpectralDense if cfg.spectral_norm else layers.Dense
    conv = SpectralConv2D if cfg.spectral_norm else layers.Conv2D
    if cfg.arch == "mlp":
        x = layers.Flatten(name="d_flatten")(x)
        for i, width in enumerate(cfg.d_hidden):
            x = dense(width, name=f"d_dense{i}")(x)
            x = layers.LeakyReLU(cfg.leak, name=f"d_act{i}")(x)
            x = layers.Dropout(cfg.d_dropout, name=f"d_drop{i}")(x)
    else:
        ch = cfg.channels
        x = conv(ch, 4, strides=2, padding="same", name="d_conv0")(x)
        x = layers.LeakyReLU(cfg.leak, name="d_act0")(x)
        x = conv(2 * ch, 4, strides=2, padding="same", name="d_conv1")(x)
        x = layers.LeakyReLU(cfg.leak, name="d_act1")(x)  # (B, H/4, W/4, 2ch)
        x = layers.Flatten(name="d_flatten")(x)
    logits = dense(1, name="d_logit")(x)  # (B, 1)
    if cfg.info_codes:  # InfoGAN's Q: a linear head on D's features (the torch InfoHeads)
        codes = layers.Dense(cfg.info_codes, name="d_info")(x)  # (B, K)
        return keras.Model(image, [logits, codes], name="d_net")
    if not classes:
        return keras.Model(image, logits, name="d_net")
    # A projection discriminator (Miyato & Koyama, 2018): psi(phi(x)) + <embed(y), phi(x)>,
    # the embedding from zero (D starts as the unconditional one); with aux_weight, an
    # auxiliary classifier on the same features (AC-GAN). See the torch GAN's Projection.
    label = keras.Input((classes,), name="d_labels")
    embedded = layers.Dense(x.shape[-1], use_bias=False, kernel_initializer="zeros",
                            name="d_embed")(label)
    projection = layers.Dot(axes=1, name="d_project")([embedded, x])  # (B, 1)
    logits = layers.Add(name="d_logit_cond")([logits, projection])
    if cfg.aux_weight:
        class_logits = layers.Dense(classes, name="d_classify")(x)  # (B, K)
        return keras.Model([image, label], [logits, class_logits], name="d_net")
    return keras.Model([image, label], logits, name="d_net")


def _stats(loss_d: Any, real_logits: Any, fake_logits: Any, loss_g: Any,
           aux: Any = None, info: Any = None) -> dict[str, Any]:
    extra = {} if aux is None else {"loss_cls": aux}  # the classifier's, on real images
    if info is not None:
        extra["loss_info"] = info  # Q's cross-entropy on the generated images' codes
    return {**extra,
        "loss_d": loss_d,
        "loss_g": loss_g,
        "d_real": ops.mean(ops.sigmoid(real_logits)),  # D(x)
        "d_fake": ops.mean(ops.sigmoid(fake_logits)),  # D(G(z))
        "d_acc_fake": ops.mean(ops.cast(fake_logits < 0, "float32")),  # D's accuracy on fakes
    }


def _one_tensorflow_replica() -> bool:
    """Whether Keras runs on TensorFlow outside a multi-replica distribution strategy."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return bool(tf.distribute.get_strategy().num_replicas_in_sync == 1)


class GAN(keras.Model):
    """G maps noise to images in [-1, 1]; D maps images to a logit of "real"."""

    def __init__(self, config: GANConfig, info: DataInfo, **kwargs: Any):
        super().__init__(name="gan", **kwargs)
        h, w, _ = info.shape
        if config.arch == "dcgan" and (h % 4 or w % 4):
            raise ConfigError(f"DCGAN needs image sides divisible by 4, got {h}x{w}")
        self.config = config
        classes = info.num_classes if config.conditional else 0
        self.g_net = _generator(config, info.shape, classes)
        self.d_net = _discriminator(config, info.shape, classes)
        self.seed_generator = keras.random.SeedGenerator(name="gan_seeds")

    @staticmethod
    def ema_skip(name: str) -> bool:
        """Spectral normalisation's power-iteration vectors stay out of the moving average
        (an average of unit vectors is none): the averaged D uses the trained ones."""
        return name.endswith(("/sn_u", "/sn_v"))

    @staticmethod
    def _with(x: Any, labels: Any) -> Any:
        """A network's input: ``x`` alone, or ``[x, labels]`` for a cGAN."""
        if labels is None:
            return x
        return [ops.convert_to_tensor(x, "float32"), ops.convert_to_tensor(labels, "float32")]

    def call(self, x: Any, training: bool = False) -> Any:
        """D's logit that images ``x`` (NHWC in [0, 1]) are real (a cGAN's ``x`` is the
        pair ``(images, labels)``)."""
        images, labels = unpack_inputs(x)
        return self.judge(images * 2.0 - 1.0, labels, training)[0]

    def noise(self, n: int, seed: Any) -> Any:
        """Sampling's latents: z ~ N(0, temperature² I), and an InfoGAN's code beside it."""
        return self._noise(n, seed, self.config.temperature)

    def _noise(self, n: int, seed: Any, temperature: float = 1.0) -> Any:
        """z ~ N(0, temperature² I), and an InfoGAN's one-hot code drawn uniformly beside it
        (training and validation draw at temperature 1)."""
        z = keras.random.normal((n, self.config.latent_dim), seed=seed)
        if temperature != 1:
            z = z * temperature
        k = self.config.info_codes
        if not k:
            return z
        codes = keras.random.randint((n,), 0, k, seed=seed)
        return ops.concatenate([z, ops.one_hot(codes, k, dtype=z.dtype)], axis=1)

    def render(self, z: Any, labels: Any = None) -> Any:
        """Images NHWC in [0, 1] from latent vectors (and a cGAN's one-hot labels)."""
        return (self.g_net(self._with(z, labels), training=False) + 1.0) / 2.0

    def sample(self, n: int, seed_generator: keras.random.SeedGenerator,
               labels: Any = None) -> Any:
        return self.render(self.noise(n, seed_generator), labels)

    # -- training --------------------------------------------------------------------------
    def configure_optimizers(self, make: Any) -> dict[str, keras.optimizers.Optimizer]:
        """One optimizer per network: a shared one would let each loss move both."""
        return {"d_optimizer": make(lr_scale=self.config.d_lr_scale), "g_optimizer": make()}

    def compile(self, d_optimizer: Any, g_optimizer: Any, **kwargs: Any) -> None:
        if kwargs.get("jit_compile", "auto") == "auto" and _one_tensorflow_replica():
            # XLA even on a CPU (where Keras's "auto" leaves it off): the two updates, spectral
            # normalisation and the noise fuse into one program, and the step runs 1.5-1.8x
            # faster (docs: the GAN page's speed section). Not under MirroredStrategy, whose
            # per-replica seed states XLA cannot reach across devices.
            kwargs["jit_compile"] = True
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        d_optimizer.build(self.d_net.trainable_variables)
        g_optimizer.build(self.g_net.trainable_variables)

    def judge(self, images: Any, labels: Any, training: bool) -> tuple[Any, Any]:
        """D's logits ``(B, 1)`` and a cGAN's auxiliary class logits ``(B, K)`` (or ``None``)."""
        out = self.d_net(self._with(images, labels), training=training)
        return (out[0], out[1]) if isinstance(out, (list, tuple)) else (out, None)

    @staticmethod
    def _aux(classes: Any, labels: Any) -> Any:
        """The auxiliary classifier's cross-entropy on the batch's classes (or ``None``)."""
        if classes is None or labels is None:
            return None
        return ops.mean(ops.categorical_crossentropy(labels, classes, from_logits=True))

    def _info(self, code_logits: Any, z: Any) -> Any:
        """InfoGAN's loss: the cross-entropy of Q's guess of the code that made each image,
        a bound on the mutual information between the code and G's output (or ``None``)."""
        if code_logits is None or not self.config.info_codes:
            return None
        codes = z[:, self.config.latent_dim:]
        return ops.mean(ops.categorical_crossentropy(codes, code_logits, from_logits=True))

    def d_step(self, real: Any, labels: Any = None) -> tuple[Any, Any, Any, Any, Any]:
        """Update D on a real batch and a generated one; G's weights do not move. A cGAN's
        fakes are drawn for the real batch's labels."""
        z = self._noise(ops.shape(real)[0], self.seed_generator)
        fake = ops.stop_gradient(self.g_net(self._with(z, labels), training=True))

        def loss_fn() -> tuple[Any, Any]:
            real_logits, real_classes = self.judge(real, labels, training=True)
            fake_logits, fake_codes = self.judge(fake, labels, training=True)
            loss = discriminator_loss(real_logits, fake_logits, self.config.loss)
            aux = self._aux(real_classes, labels)
            if aux is not None:
                loss = loss + self.config.aux_weight * aux
            info = self._info(fake_codes, z)  # Q learns to recover the code
            if info is not None:
                loss = loss + self.config.info_weight * info
            return loss, (real_logits, fake_logits, aux, info)

        variables = self.d_net.trainable_variables
        loss, (real_logits, fake_logits, aux, info), grads = value_and_grad(loss_fn, variables)
        self.d_optimizer.apply(grads, variables)
        return loss, real_logits, fake_logits, aux, info

    def g_step(self, n: Any, labels: Any = None) -> Any:
        """Update G with fresh noise through D (whose weights this step does not move)."""
        z = self._noise(n, self.seed_generator)

        def loss_fn() -> tuple[Any, Any]:
            fake = self.g_net(self._with(z, labels), training=True)
            logits, classes = self.judge(fake, labels, training=True)
            loss = generator_loss(logits, self.config.loss)
            aux = self._aux(classes, labels)  # AC-GAN: G is trained to be classified as y
            if aux is not None:
                loss = loss + self.config.aux_weight * aux
            info = self._info(classes, z)  # InfoGAN: G makes its code recoverable
            return (loss if info is None else loss + self.config.info_weight * info), None

        variables = self.g_net.trainable_variables
        loss, _, grads = value_and_grad(loss_fn, variables)
        self.g_optimizer.apply(grads, variables)
        return loss

    def train_step(self, data: Any) -> dict[str, Any]:
        x, labels = unpack_inputs(data)
        real = x * 2.0 - 1.0  # the data in [-1, 1], like G's tanh output
        loss_d, real_logits, fake_logits, aux, info = self.d_step(real, labels)
        loss_g = self.g_step(ops.shape(real)[0], labels)
        return _stats(loss_d, real_logits, fake_logits, loss_g, aux, info)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, labels = unpack_inputs(data)
        real = x * 2.0 - 1.0
        z = self._noise(ops.shape(real)[0], EVAL_SEED)
        fake = self.g_net(self._with(z, labels), training=False)
        real_logits, real_classes = self.judge(real, labels, training=False)
        fake_logits, fake_classes = self.judge(fake, labels, training=False)
        loss_d = discriminator_loss(real_logits, fake_logits, self.config.loss)
        loss_g = generator_loss(fake_logits, self.config.loss)
        aux = self._aux(real_classes, labels)
        if aux is not None:
            loss_d = loss_d + self.config.aux_weight * aux
            loss_g = loss_g + self.config.aux_weight * self._aux(fake_classes, labels)
        info = self._info(fake_classes, z)
        if info is not None:
            loss_d = loss_d + self.config.info_weight * info
            loss_g = loss_g + self.config.info_weight * info
        return _stats(loss_d, real_logits, fake_logits, loss_g, aux, info)
