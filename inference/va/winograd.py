"""FaceChannel fp32 inference with Winograd F(4x4, 3x3) convolutions: fewer arithmetic operations.

ONNX Runtime runs the port at the CPU's matrix-product rate (benchmarks/va_throughput.py), so only doing
fewer operations makes it faster. Winograd's F(4x4, 3x3) computes a 4x4 output tile of a 3x3 convolution
from a 6x6 input tile with 36 multiplications per (input, output) channel pair instead of 144; per layer:
- input transform (numba, channels innermost): the padded NHWC activations -> V (36, tiles, C);
- 36 matrix products M[p] = V[p] @ U[p], U (36, C, K) the weights transformed once at load (BatchNorm
  folded in); conv10 and conv10_inhibition share their input, so they are one product with K = 512;
- output transform (numba): M -> 4x4 tiles, plus bias, ReLU, and where the layer is followed by 2x2 max
  pooling the pooling (2x2 windows lie inside a 4x4 tile), or the shunting inhibition
  relu(conv10) / (0.5 + relu(conv10_inhibition)) and its pooling; written into the next layer's zero-bordered
  buffer, so padding costs nothing.
The first convolution (one input channel) is direct. Activations stay channels-last (NHWC); the dense layer's
rows are permuted to that order at load.

Threads: no numba parallelism (its default workqueue threading layer aborts when two threads call a parallel
function at once, and the VA pipeline calls the model from worker threads). Instead the batch is split
between `threads` worker threads of this model's own pool; the numba kernels release the GIL (nogil) and
each worker's matrix products run single-threaded, so the workers do not contend; concurrent forward()
calls queue on that pool. Each worker keeps its own scratch buffers (thread-local). A batch of one image
runs on the calling thread, its matrix products on all threads (0.86x ONNX Runtime's batch-1 rate, measured
loaded); the VA stage runs batches of up to 32.
The matrix products: an ONNX Runtime MatMul session with one intra-op thread (MLAS), shared by the workers
(concurrent runs execute on the callers' threads), and one with all threads for single images. numpy's matmul (OpenBLAS) was as fast with OpenBLAS
limited to one thread, but that limit is process-wide, and OpenBLAS's idle threads spin after each call
and took the cores from the workers (-35 % measured); the dense layer uses torch for the same reason.

Accuracy: the outputs differ from the eager port by < 1e-6 (7.5e-7 at most on the fixture, the sample faces
and random faces; ONNX Runtime's 7.2e-7); the load-time self-check and the tests bound it by 1e-4.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

try:  # numba is a requirement, but the ONNX Runtime model remains when it cannot be imported
    import numba
except ImportError:  # pragma: no cover - the tests simulate it in `numba_module`
    numba = None

logger = logging.getLogger(__name__)
MAX_DEVIATION = 1e-4  # the self-check's bound on |dVA| against the eager port (measured: < 1e-6)


class WinogradUnavailableError(RuntimeError):
    """numba is missing, or the built model failed its self-check against the port."""


def numba_module() -> Any:
    """numba, imported now (so a test can make it fail), or WinogradUnavailableError saying why not."""
    try:
        import numba as module
    except ImportError as exc:
        raise WinogradUnavailableError(f"numba cannot be imported ({exc}); it is in requirements.txt") from exc
    return module


# Winograd F(4x4, 3x3) (Lavin & Gray 2016): Y = A^T [(G g G^T) * (B^T d B)] A.
BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], dtype=np.float64)

PLAIN, POOL, SHUNT_POOL = 0, 1, 2  # output transform modes
TARGET_TILES = 256  # tiles per matrix product: enough rows for the GEMM, small enough to stay in cache

_F2, _F4, _F5, _F8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)
_ZERO = np.float32(0)


CACHE_NOTE = ""  # why the kernels are not cached on disk, if they are not


def _jit(function: Any) -> Any:
    """numba.njit, compiled on first call and cached on disk: in the package's __pycache__, or where that is
    read-only (a container's /app) the user's cache (~/.cache/numba), or NUMBA_CACHE_DIR. With no writable
    place at all numba refuses cache=True; then each process compiles (~6 s on the first call)."""
    global CACHE_NOTE  # noqa: PLW0603 - set once, at import
    if numba is None:  # pragma: no cover
        return function
    options = {"fastmath": True, "nogil": True, "error_model": "numpy"}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available"
        CACHE_NOTE = f"numba cannot cache the kernels ({exc}); set NUMBA_CACHE_DIR to a writable folder"
        return numba.njit(**options)(function)


@_jit
def _bt(d0, d1, d2, d3, d4, d5):  # pragma: no cover - numba-compiled (inlined by LLVM)
    """B^T d for one line of 6 input values."""
    return (_F4 * d0 - _F5 * d2 + d4, -_F4 * (d1 + d2) + d3 + d4, _F4 * (d1 - d2) - d3 + d4,
            _F2 * (d3 - d1) - d2 + d4, _F2 * (d1 - d3) - d2 + d4, _F4 * d1 - _F5 * d3 + d5)


@_jit
def _at(m0, m1, m2, m3, m4, m5):  # pragma: no cover - numba-compiled (inlined by LLVM)
    """A^T m for one line of 6 products."""
    s12, d12, s34, d34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + s12 + s34, d12 + _F2 * d34, s12 + _F4 * s34, d12 + _F8 * d34 + m5


@_jit
def conv1_direct(x, w, b, y):  # pragma: no cover - numba-compiled
    # x (N, H+2, W+2) padded gray; w (3, 3, K); b (K); y (N, H+2, W+2, K) padded: relu(conv + b).
    n_images, hp, wp = x.shape
    k_out = w.shape[2]
    for n in range(n_images):
        for i in range(hp - 2):
            for j in range(wp - 2):
                x00 = x[n, i, j]
                x01 = x[n, i, j + 1]
                x02 = x[n, i, j + 2]
                x10 = x[n, i + 1, j]
                x11 = x[n, i + 1, j + 1]
                x12 = x[n, i + 1, j + 2]
                x20 = x[n, i + 2, j]
                x21 = x[n, i + 2, j + 1]
                x22 = x[n, i + 2, j + 2]
                for k in range(k_out):
                    acc = (b[k] + x00 * w[0, 0, k] + x01 * w[0, 1, k] + x02 * w[0, 2, k]
                           + x10 * w[1, 0, k] + x11 * w[1, 1, k] + x12 * w[1, 2, k]
                           + x20 * w[2, 0, k] + x21 * w[2, 1, k] + x22 * w[2, 2, k])
                    y[n, i + 1, j + 1, k] = max(acc, _ZERO)

@_jit
def input_transform(x, v, tmp):  # pragma: no cover - numba-compiled
    # x (N, H+2, W+2, C) zero-bordered; v (36, N*(H/4)*(W/4), C); tmp (6, 6, C) scratch.
    n_images, hp, wp, channels = x.shape
    th = (hp - 2) // 4
    tw = (wp - 2) // 4
    for n in range(n_images):
        for ty in range(th):
            for tx in range(tw):
                t = (n * th + ty) * tw + tx
                y0 = 4 * ty
                x0 = 4 * tx
                for i in range(6):  # B^T along each row of the 6x6 tile
                    for c in range(channels):
                        (tmp[i, 0, c], tmp[i, 1, c], tmp[i, 2, c], tmp[i, 3, c], tmp[i, 4, c],
                         tmp[i, 5, c]) = _bt(x[n, y0 + i, x0, c], x[n, y0 + i, x0 + 1, c], x[n, y0 + i, x0 + 2, c],
                                             x[n, y0 + i, x0 + 3, c], x[n, y0 + i, x0 + 4, c], x[n, y0 + i, x0 + 5, c])
                for j in range(6):  # then down each column
                    for c in range(channels):
                        (v[j, t, c], v[6 + j, t, c], v[12 + j, t, c], v[18 + j, t, c], v[24 + j, t, c],
                         v[30 + j, t, c]) = _bt(tmp[0, j, c], tmp[1, j, c], tmp[2, j, c], tmp[3, j, c], tmp[4, j, c],
                                                tmp[5, j, c])


@_jit
def output_transform(m, b, y, tmp, out, mode, decay):  # pragma: no cover - numba-compiled
    # m (36, N*th*tw, K); b (K); tmp (6, 4, K), out (4, 4, K) scratch. y: PLAIN (N, 4th+2, 4tw+2, K)
    # zero-bordered; POOL (N, 2th+2, 2tw+2, K) zero-bordered; SHUNT_POOL (N, 2th, 2tw, K/2).
    k_all = m.shape[2]
    if mode == 2:
        n_images = y.shape[0]
        th = y.shape[1] // 2
        tw = y.shape[2] // 2
    elif mode == 1:
        n_images = y.shape[0]
        th = (y.shape[1] - 2) // 2
        tw = (y.shape[2] - 2) // 2
    else:
        n_images = y.shape[0]
        th = (y.shape[1] - 2) // 4
        tw = (y.shape[2] - 2) // 4
    half = k_all // 2
    for n in range(n_images):
        for ty in range(th):
            for tx in range(tw):
                t = (n * th + ty) * tw + tx
                for i in range(6):  # A^T along each row of the 6x6 product tile
                    p = 6 * i
                    for k in range(k_all):
                        tmp[i, 0, k], tmp[i, 1, k], tmp[i, 2, k], tmp[i, 3, k] = _at(
                            m[p, t, k], m[p + 1, t, k], m[p + 2, t, k], m[p + 3, t, k], m[p + 4, t, k], m[p + 5, t, k])
                for j in range(4):  # then down each column, plus the bias
                    for k in range(k_all):
                        e0, e1, e2, e3 = _at(tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k], tmp[4, j, k],
                                             tmp[5, j, k])
                        bias = b[k]
                        out[0, j, k], out[1, j, k], out[2, j, k], out[3, j, k] = e0 + bias, e1 + bias, e2 + bias, e3 + bias
                if mode == 0:
                    for r in range(4):
                        for j in range(4):
                            for k in range(k_all):
                                y[n, 1 + 4 * ty + r, 1 + 4 * tx + j, k] = max(out[r, j, k], _ZERO)
                elif mode == 1:
                    for r in range(2):
                        for j in range(2):
                            for k in range(k_all):
                                a = max(out[2 * r, 2 * j, k], out[2 * r, 2 * j + 1, k])
                                c = max(out[2 * r + 1, 2 * j, k], out[2 * r + 1, 2 * j + 1, k])
                                y[n, 1 + 2 * ty + r, 1 + 2 * tx + j, k] = max(max(a, c), _ZERO)
                else:
                    for r in range(2):
                        for j in range(2):
                            for k in range(half):
                                best = _ZERO
                                for u in range(2):
                                    for w in range(2):
                                        num = max(out[2 * r + u, 2 * j + w, k], _ZERO)
                                        den = decay + max(out[2 * r + u, 2 * j + w, half + k], _ZERO)
                                        best = max(best, num / den)
                                y[n, 2 * ty + r, 2 * tx + j, k] = best



def kernels() -> dict[str, Any]:
    """The numba kernels (compiled on their first call), or WinogradUnavailableError without numba."""
    numba_module()
    return {"conv1_direct": conv1_direct, "input_transform": input_transform, "output_transform": output_transform}


def winograd_weights(weight: np.ndarray) -> np.ndarray:
    """(K, C, 3, 3) convolution weights -> U (36, C, K) = G g G^T per (C, K), float32 (computed in float64)."""
    u = np.einsum("ai,kcij,bj->abck", G, weight.astype(np.float64), G)
    return np.ascontiguousarray(u.reshape(36, weight.shape[1], weight.shape[0]), dtype=np.float32)


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    weight = conv.weight.detach().double().numpy()
    bias = conv.bias.detach().double().numpy()
    if norm is not None:
        scale = norm.weight.detach().double().numpy() / np.sqrt(norm.running_var.detach().double().numpy() + norm.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - norm.running_mean.detach().double().numpy()) * scale + norm.bias.detach().double().numpy()
    return weight, bias


class _Layer:
    def __init__(self, weight: np.ndarray, bias: np.ndarray, size: int, mode: int) -> None:
        self.u = winograd_weights(weight)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)
        self.channels, self.filters = self.u.shape[1], self.u.shape[2]
        self.size = size  # input height = width
        self.mode = mode
        self.tiles = (size // 4) ** 2  # per image

    def out_shape(self, n: int) -> tuple[int, ...]:
        if self.mode == PLAIN:
            return (n, self.size + 2, self.size + 2, self.filters)
        if self.mode == POOL:
            return (n, self.size // 2 + 2, self.size // 2 + 2, self.filters)
        return (n, self.size // 2, self.size // 2, self.filters // 2)


class WinogradFaceChannel(nn.Module):
    """The port's network with Winograd convolutions, called like it: (N, 1, 64, 64) -> (N, 2)."""

    def __init__(self, port: Any, *, threads: int | None = None) -> None:
        super().__init__()
        from inference.va.facechannel import INPUT_SIZE, POOL_AFTER

        self._k = kernels()
        self.deviation: float | None = None  # set by winograd_build's self-check
        port = port.eval()
        with torch.no_grad():
            w1, b1 = _fold(port.convs[0], port.norms[0])
            self.w1 = np.ascontiguousarray(w1[:, 0].transpose(1, 2, 0), dtype=np.float32)  # (3, 3, K)
            self.b1 = b1.astype(np.float32)
            self.layers: list[_Layer] = []
            size = INPUT_SIZE
            for i in range(1, len(port.convs)):
                weight, bias = _fold(port.convs[i], port.norms[i])
                pool = i in POOL_AFTER
                self.layers.append(_Layer(weight, bias, size, POOL if pool else PLAIN))
                size //= 2 if pool else 1
            w10, b10 = _fold(port.conv10, None)
            wi, bi = _fold(port.conv10_inhibition, None)
            self.layers.append(_Layer(np.concatenate([w10, wi]), np.concatenate([b10, bi]), size, SHUNT_POOL))
            self.decay = np.float32(port.inhibition_decay)
            side = size // 2
            channels = w10.shape[0]
            dense = port.dense.weight.detach().numpy()  # (200, C*H*W) in (C, H, W) order -> (H, W, C) rows
            self.dense_w = torch.from_numpy(np.ascontiguousarray(
                dense.reshape(-1, channels, side, side).transpose(0, 2, 3, 1).reshape(dense.shape[0], -1)))
            self.dense_b = port.dense.bias.detach().clone()
            self.heads_w = torch.cat([port.arousal.weight, port.valence.weight]).detach().clone()  # (2, 200)
            self.heads_b = torch.cat([port.arousal.bias, port.valence.bias]).detach().clone()
        self.input_size = INPUT_SIZE
        self.threads = max(1, threads or torch.get_num_threads())
        # One intra-op thread: concurrent runs execute on the callers' threads (the workers). The second session
        # (all threads) serves a batch too small to split, so its products still use every core.
        self._session, self._wide = _matmul_session(1), _matmul_session(self.threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="winograd") if self.threads > 1 else None
        self._local = threading.local()
        self.runtime = f"winograd F(4x4,3x3), numba {numba.__version__}, ONNX Runtime MatMul"

    # -- one worker's share of the batch --------------------------------------------------------------------
    def _scratch(self, n: int) -> dict[str, Any]:
        """This thread's scratch arrays for up to n images, grown when needed; the activations are sliced to
        the images of the call. Zero borders are never written, so they stay zero (the convolutions' padding)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None or scratch["n"] < n:
            size = self.input_size
            acts = [np.zeros((n, size + 2, size + 2), np.float32),
                    np.zeros((n, size + 2, size + 2, self.w1.shape[2]), np.float32)]
            acts += [np.zeros(layer.out_shape(n), np.float32) for layer in self.layers]
            rows = [self._chunk(layer, n) * layer.tiles for layer in self.layers]
            scratch = self._local.scratch = {
                "n": n, "acts": acts,
                "v": np.empty(36 * max(r * layer.channels for r, layer in zip(rows, self.layers, strict=True)),
                              np.float32),
                "m": np.empty(36 * max(r * layer.filters for r, layer in zip(rows, self.layers, strict=True)),
                              np.float32),
                "tmp_in": np.empty((6, 6, max(layer.channels for layer in self.layers)), np.float32),
                "tmp_out": np.empty((6, 4, max(layer.filters for layer in self.layers)), np.float32),
                "out": np.empty((4, 4, max(layer.filters for layer in self.layers)), np.float32)}
        return scratch

    @staticmethod
    def _chunk(layer: _Layer, n: int) -> int:
        return max(1, min(n, TARGET_TILES // layer.tiles))

    def _matmul(self, index: int, v: np.ndarray, m: np.ndarray, *, wide: bool) -> None:
        """m[p] = v[p] @ u[p] for the 36 positions: on this thread, or with all threads when `wide`."""
        session = self._wide if wide else self._session
        binding = session.io_binding()
        binding.bind_cpu_input("v", v)
        binding.bind_cpu_input("u", self.layers[index].u)
        binding.bind_output("m", "cpu", 0, np.float32, list(m.shape), m.ctypes.data)
        session.run_with_iobinding(binding)

    def _features(self, faces: np.ndarray, wide: bool = False) -> np.ndarray:
        """(n, 64, 64) -> (n, 4096) features in (H, W, C) order, on the calling thread."""
        n = len(faces)
        buf = self._scratch(n)
        acts = [act[:n] for act in buf["acts"]]
        acts[0][:, 1:-1, 1:-1] = faces
        k = self._k
        k["conv1_direct"](acts[0], self.w1, self.b1, acts[1])
        for index, layer in enumerate(self.layers):
            x, y = acts[index + 1], acts[index + 2]
            chunk = self._chunk(layer, n)
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                rows = (stop - start) * layer.tiles
                v = buf["v"][:36 * rows * layer.channels].reshape(36, rows, layer.channels)
                m = buf["m"][:36 * rows * layer.filters].reshape(36, rows, layer.filters)
                k["input_transform"](x[start:stop], v, buf["tmp_in"])
                self._matmul(index, v, m, wide=wide)
                k["output_transform"](m, layer.bias, y[start:stop], buf["tmp_out"], buf["out"], layer.mode, self.decay)
        return acts[-1].reshape(n, -1).copy()

    def _head(self, features: np.ndarray) -> torch.Tensor:
        # torch, not numpy: numpy's OpenBLAS threads spin after each call and would take the cores from the
        # workers (measured: -35 % throughput); torch's honour OMP_WAIT_POLICY=PASSIVE.
        with torch.inference_mode():
            hidden = torch.relu(torch.nn.functional.linear(torch.from_numpy(features), self.dense_w, self.dense_b))
            return torch.tanh(torch.nn.functional.linear(hidden, self.heads_w, self.heads_b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        faces = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        if faces.ndim != 4 or faces.shape[1:] != (1, self.input_size, self.input_size):
            raise ValueError(f"expected (N, 1, {self.input_size}, {self.input_size}) faces, got {faces.shape}")
        faces = faces[:, 0]
        n = len(faces)
        if n == 0:
            return torch.zeros((0, 2), dtype=torch.float32)
        parts = min(self.threads, n)
        if parts == 1 or self._pool is None:
            features = self._features(faces, wide=self.threads > 1)
        else:
            bounds = np.linspace(0, n, parts + 1).round().astype(int)
            futures = [self._pool.submit(self._features, faces[a:b]) for a, b in zip(bounds[:-1], bounds[1:],
                                                                                      strict=True)]
            features = np.concatenate([f.result() for f in futures])
        return self._head(features)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    @classmethod
    def from_port(cls, port: Any, *, threads: int | None = None) -> WinogradFaceChannel:
        return cls(port, threads=threads)


def _matmul_session(threads: int) -> Any:
    """An ONNX Runtime session (MLAS) computing m = v @ u for v (36, rows, C), u (36, C, K), any sizes. u is an
    input bound at each run, not an initializer: ONNX Runtime would keep two more copies of each layer's (its own
    and a prepacked one: 170 MB more for the network); packing it per run cost nothing measurable."""
    from onnx import TensorProto, helper

    from inference.runtime import ort_session

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["v", "u"], ["m"])], "winograd_matmul",
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [36, "rows", "c"]),
         helper.make_tensor_value_info("u", TensorProto.FLOAT, [36, "c", "k"])],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, [36, "rows", "k"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort_session(model.SerializeToString(), threads=threads, what="Winograd matrix product")


def winograd_build(port: Any, *, threads: int | None = None, samples: int = 4, seed: int = 0) -> WinogradFaceChannel:
    """The Winograd model of `port`, checked against it on `samples` seeded random faces (WinogradUnavailableError
    when numba is missing or the largest |dVA| exceeds MAX_DEVIATION). The first call compiles the kernels
    (seconds) unless numba's disk cache has them."""
    if CACHE_NOTE:
        logger.warning("FaceChannel Winograd: %s", CACHE_NOTE)
    model = WinogradFaceChannel.from_port(port, threads=threads)
    faces = torch.from_numpy(np.random.default_rng(seed).random((samples, 1, 64, 64), dtype=np.float32))
    with torch.inference_mode():
        deviation = float((model(faces) - port(faces)).abs().max())
    if not deviation <= MAX_DEVIATION:  # also NaN
        model.close()
        raise WinogradUnavailableError(f"its self-check differs from the port by {deviation:.2e} > {MAX_DEVIATION}")
    model.deviation = deviation
    return model
